//! The ONNX models: [`Segmenter`] (pyannote segmentation-3.0) and [`Embedder`] (speaker
//! embeddings from any of the interfaces in [`FrontEnd`]).
//!
//! Both run on the process's ONNX Runtime environment (`voxfleet_models::onnx`; start it with
//! `ensure_onnxruntime` first). They are `Send + Sync`: share them in `Arc`s between jobs. The
//! [`Segmenter`] holds one session behind a `Mutex` (calls are serialised, and ONNX Runtime
//! parallelises inside each call with its default intra-op pool). The [`Embedder`] holds one
//! single-threaded session per core (at most [`MAX_EMBED_SESSIONS`]), each behind its own
//! `Mutex`, and spreads the batches of one call over them: many small runs in parallel beat one
//! run split by ONNX Runtime's intra-op pool on these models.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ort::session::Session;
use ort::value::Tensor;

use crate::error::SpeakersError;
use crate::fbank::{Fbank, FbankOptions, WindowType};
use crate::ge2e::{self, Ge2eMel};
use crate::powerset::NUM_CLASSES;

mod embedder;

pub use embedder::Embedder;
pub(crate) use embedder::normalized;

/// Sample rate every model here expects.
pub const SAMPLE_RATE: usize = 16_000;
/// Samples in one segmentation window (10 s).
pub const WINDOW_SAMPLES: usize = 160_000;
/// Most clips one embedding model call takes.
pub const MAX_EMBED_BATCH: usize = 32;
/// Most sessions (worker threads) an [`Embedder`] runs in parallel; it keeps
/// `min(available_parallelism, MAX_EMBED_SESSIONS)`, each with a single-threaded intra-op pool.
pub const MAX_EMBED_SESSIONS: usize = 8;
/// Clips shorter than this (0.2 s) are repeated up to it before embedding: the fbank models need
/// at least 3 frames, and statistics pooling over a few frames is meaningless anyway.
pub const MIN_CLIP_SAMPLES: usize = 3_200;

/// Loads one session; `intra_threads: None` keeps ONNX Runtime's default intra-op pool.
fn load_session(
    path: &Path,
    what: &'static str,
    intra_threads: Option<usize>,
) -> Result<(Session, u64), SpeakersError> {
    let env =
        voxfleet_models::onnx::onnx_environment().ok_or(SpeakersError::RuntimeNotInitialised)?;
    let load = load_error(what, path);
    let bytes = std::fs::metadata(path)
        .map_err(|e| load(e.to_string()))?
        .len();
    let mut builder = Session::builder(env).map_err(|e| load(e.to_string()))?;
    if let Some(n) = intra_threads {
        builder = builder
            .with_intra_threads(n)
            .map_err(|e| load(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| load(e.to_string()))?;
    }
    let session = builder
        .commit_from_file(path)
        .map_err(|e| load(e.to_string()))?;
    Ok((session, bytes))
}

/// A [`SpeakersError::Load`] naming the model kind and its file.
fn load_error<'p>(what: &'static str, path: &'p Path) -> impl Fn(String) -> SpeakersError + 'p {
    move |reason| SpeakersError::Load {
        what,
        path: path.to_path_buf(),
        reason,
    }
}

/// A model's first input and output, with their shapes.
struct Interface {
    input: String,
    in_shape: Vec<i64>,
    output: String,
    out_shape: Vec<i64>,
}

impl Interface {
    fn of(session: &Session, what: &'static str, path: &Path) -> Result<Self, SpeakersError> {
        let (Some(input), Some(output)) = (session.inputs().first(), session.outputs().first())
        else {
            return Err(load_error(what, path)(
                "the model has no input or no output".into(),
            ));
        };
        Ok(Self {
            input: input.name().to_string(),
            in_shape: outlet_shape(input),
            output: output.name().to_string(),
            out_shape: outlet_shape(output),
        })
    }
}

/// Dimensions of an outlet's tensor shape (-1 for dynamic ones); empty when not a tensor.
fn outlet_shape(outlet: &ort::value::Outlet) -> Vec<i64> {
    outlet
        .dtype()
        .tensor_shape()
        .map(|s| s.to_vec())
        .unwrap_or_default()
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// pyannote segmentation-3.0: `waveform` [B, 1, 160000] → `logits` [B, 589, 7] (log-softmax
/// over the powerset classes of [`crate::powerset`]).
pub struct Segmenter {
    session: Mutex<Session>,
    input: String,
    output: String,
    bytes: u64,
}

impl Segmenter {
    /// Loads the ONNX model; checks that it takes one waveform and gives 7 classes per frame.
    pub fn load(path: &Path) -> Result<Self, SpeakersError> {
        const WHAT: &str = "speaker segmentation model";
        let (session, bytes) = load_session(path, WHAT, None)?;
        let Interface {
            input,
            in_shape,
            output,
            out_shape,
        } = Interface::of(&session, WHAT, path)?;
        if in_shape.len() != 3 || out_shape.len() != 3 || out_shape[2] != NUM_CLASSES as i64 {
            return Err(load_error(WHAT, path)(format!(
                "expected waveform [B,1,N] -> logits [B,frames,7], found {input} {in_shape:?} -> \
                 {output} {out_shape:?}"
            )));
        }
        Ok(Self {
            input,
            output,
            session: Mutex::new(session),
            bytes,
        })
    }

    /// Size of the model file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Log-probabilities of 10 s windows: each window is zero-padded (or cut) to 160000 samples;
    /// one `frames × 7` row-major vector per window.
    pub fn segment(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>, SpeakersError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = vec![0f32; windows.len() * WINDOW_SAMPLES];
        for (dst, w) in input.chunks_exact_mut(WINDOW_SAMPLES).zip(windows) {
            let n = w.len().min(WINDOW_SAMPLES);
            dst[..n].copy_from_slice(&w[..n]);
        }
        let x = Tensor::from_array(([windows.len(), 1, WINDOW_SAMPLES], input))
            .map_err(|e| SpeakersError::run("segmentation input", e))?;
        let mut session = lock(&self.session);
        let out = session
            .run(ort::inputs![self.input.as_str() => x])
            .map_err(|e| SpeakersError::run("running speaker segmentation", e))?;
        let (shape, logits) = out[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| SpeakersError::run("segmentation output", e))?;
        if shape.len() != 3 || shape[0] as usize != windows.len() || shape[2] != 7 {
            return Err(SpeakersError::run(
                "segmentation output",
                format!("unexpected shape {shape:?}"),
            ));
        }
        let per_window = logits.len() / windows.len();
        Ok(logits
            .chunks_exact(per_window)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// The input an embedding model takes, chosen from its first input's name and shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    /// `feats` [B, T, 80]: Kaldi fbank, per-utterance mean subtracted (WeSpeaker ResNet,
    /// 3D-Speaker CAM++). `window`: Povey for CAM++, Hamming for WeSpeaker's own models.
    Fbank80 { window: WindowType },
    /// `mels` [B, T, 40]: Resemblyzer GE2E mel power spectrogram in 1.6 s partials
    /// ([`crate::ge2e`]).
    Ge2eMel40,
    /// `waveform` [B, 1, N] (or [B, N]): the raw 16 kHz samples (e.g. pyannote/embedding).
    Waveform,
}

impl FrontEnd {
    /// Default agglomerative-clustering threshold (cosine distance) for this kind of model.
    ///
    /// Fbank models (CAM++): 0.28, chosen on the `tune` part of the diarization development
    /// set (`benches/python/diarize_devset.py`: 30 synthetic conversations of 2–6 espeak-ng
    /// voices, clean, telephone and noisy, and 10 real AMI meeting excerpts) as the value with
    /// the lowest pooled DER among 0.20–0.40 (tied best on speaker count); reported on the
    /// `test` part by `voxfleet-bench-diarize`. On that set the per-window CAM++ embeddings of
    /// one voice lie at cosine 0.73–0.98 to their own centroid, while two voices' centroids
    /// lie at 0.1–0.6 (telephone band: up to 0.8). The earlier 0.6 (similarity 0.4), chosen
    /// on two espeak voices at 0.3, merged most voices of most conversations into one.
    /// GE2E's similarities all lie in `[0, 1]` (same voice ≈ 0.85–0.9, different ≈ 0.6–0.7);
    /// its 0.2 was not re-measured (the diarizer runs the v4 profile's fbank model).
    ///
    /// `narrowband`: telephone-band audio ([`crate::subsegment::is_narrowband`]), where every
    /// voice looks more alike. CAM++: 0.16, the lowest DER of 0.06–0.28 on the `tune` part's
    /// telephone conversations (`voxfleet-bench-diarize --split tune --part synthetic-phone
    /// --sweep-threshold ...`: 33.9 % at 0.28, 11.6 % at 0.16, 12.4–15.4 % at 0.14–0.18).
    /// The wideband 0.28 stays: on the wideband tune parts a lower threshold trades synthetic
    /// DER (17.7 % → 14.5 % at 0.24) for real-meeting DER (AMI 18.6 % → 20.4 %).
    pub fn default_threshold(self, narrowband: bool) -> f32 {
        match (self, narrowband) {
            (FrontEnd::Fbank80 { .. }, false) => 0.28,
            (FrontEnd::Fbank80 { .. }, true) => 0.16,
            // Not measured here (no such model is shipped); the former shared default.
            (FrontEnd::Waveform, _) => 0.6,
            (FrontEnd::Ge2eMel40, _) => 0.2,
        }
    }

    /// Clustering threshold (cosine distance) of the windows method when the embeddings are
    /// centred on the model's [`Background`](crate::Background), on `narrowband` audio or not;
    /// `None` where the windows method does not centre by default.
    ///
    /// CAM++, wideband: 0.35, the lowest synthetic DER among 0.30–0.55 on the `tune` part of
    /// the development set at equal or better speaker counts (`voxfleet-bench-diarize --split
    /// tune --sweep-threshold ...`: synthetic 11.7 % against 17.3 % uncentred at 0.28, AMI
    /// 17.3 % against 17.6 %; on `test` 13.5 % against 16.9 % and 40.0 % against 44.6 %).
    /// Telephone band: `None`, so such audio is clustered
    /// uncentred at [`FrontEnd::default_threshold`]: centred, its best threshold on `tune`
    /// (0.35: 13.1 %) did worse than the uncentred 0.16 (12.0 %).
    pub fn default_background_threshold(self, narrowband: bool) -> Option<f32> {
        match (self, narrowband) {
            (FrontEnd::Fbank80 { .. }, false) => Some(0.35),
            _ => None,
        }
    }

    /// Clustering threshold (cosine distance) of the diarizer's 1.5 s sub-segment embeddings
    /// ([`Method::SubSegments`](crate::diarize::Method::SubSegments)); `narrowband` for
    /// telephone-band audio ([`crate::subsegment::is_narrowband`]), where every voice looks
    /// more alike. CAM++: chosen on the `tune` part of the diarization development set
    /// (`voxfleet-bench-diarize --split tune`), wideband and telephone separately.
    pub fn default_subsegment_threshold(self, narrowband: bool) -> f32 {
        match (self, narrowband) {
            (FrontEnd::Fbank80 { .. }, false) => 0.3,
            (FrontEnd::Fbank80 { .. }, true) => 0.2,
            // Not measured (no such model is shipped, or the diarizer does not run it).
            (FrontEnd::Waveform, _) => 0.6,
            (FrontEnd::Ge2eMel40, _) => 0.2,
        }
    }
}
