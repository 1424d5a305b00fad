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

/// Computes what each front end feeds the model.
enum Features {
    Fbank(Fbank),
    Ge2e(Ge2eMel),
    Waveform { rank: usize },
}

/// A speaker-embedding model: 16 kHz PCM clips → L2-normalised embeddings of dimension
/// [`Embedder::dim`].
pub struct Embedder {
    /// One single-threaded session per worker (at least one).
    sessions: Vec<Mutex<Session>>,
    input: String,
    output: String,
    front_end: FrontEnd,
    features: Features,
    dim: usize,
    bytes: u64,
}

impl Embedder {
    /// Loads the ONNX model and picks its [`FrontEnd`]: input `feats` (or any [B, T, 80]) →
    /// [`FrontEnd::Fbank80`] with `fbank_window`; `mels` (or [B, T, 40]) →
    /// [`FrontEnd::Ge2eMel40`]; `waveform` (or [B, 1, N], [B, N]) → [`FrontEnd::Waveform`].
    /// The dimension comes from the output shape, or from one probe run when it is dynamic.
    /// Loads one single-threaded session per core, at most [`MAX_EMBED_SESSIONS`].
    pub fn load(path: &Path, fbank_window: WindowType) -> Result<Self, SpeakersError> {
        let count = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_EMBED_SESSIONS);
        const WHAT: &str = "speaker embedding model";
        let (session, bytes) = load_session(path, WHAT, Some(1))?;
        let bad = load_error(WHAT, path);
        let Interface {
            input,
            in_shape,
            output,
            out_shape,
        } = Interface::of(&session, WHAT, path)?;
        let name = input.to_ascii_lowercase();
        let last = in_shape.last().copied();
        let (front_end, features) = if name == "feats" || (in_shape.len() == 3 && last == Some(80))
        {
            let opts = FbankOptions {
                window_type: fbank_window,
                ..FbankOptions::campplus()
            };
            (
                FrontEnd::Fbank80 {
                    window: fbank_window,
                },
                Features::Fbank(Fbank::new(opts)),
            )
        } else if name == "mels" || (in_shape.len() == 3 && last == Some(40)) {
            (FrontEnd::Ge2eMel40, Features::Ge2e(Ge2eMel::new()))
        } else if name == "waveform"
            || (in_shape.len() == 3 && in_shape[1] == 1)
            || in_shape.len() == 2
        {
            let rank = if in_shape.len() == 2 { 2 } else { 3 };
            (FrontEnd::Waveform, Features::Waveform { rank })
        } else {
            return Err(bad(format!(
                "unknown embedding interface: input {input} {in_shape:?} (expected feats [B,T,80], \
                 mels [B,T,40] or waveform [B,1,N])"
            )));
        };
        if !(2..=3).contains(&out_shape.len()) {
            return Err(bad(format!(
                "expected an embedding output [B,D], found {output} {out_shape:?}"
            )));
        }
        let mut sessions = vec![Mutex::new(session)];
        for _ in 1..count {
            let (session, _) = load_session(path, WHAT, Some(1))?;
            sessions.push(Mutex::new(session));
        }
        let mut embedder = Self {
            input,
            output,
            sessions,
            front_end,
            features,
            dim: out_shape.last().copied().filter(|&d| d > 0).unwrap_or(0) as usize,
            bytes: bytes * count as u64,
        };
        if embedder.dim == 0 {
            // Dynamic dimension: one run on 1 s of low noise tells it.
            let probe: Vec<f32> = (0..SAMPLE_RATE)
                .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.01)
                .collect();
            let x = embedder.model_input(&[probe.as_slice()])?;
            let raw = embedder.run_batch(&mut lock(&embedder.sessions[0]), x, 1)?;
            embedder.dim = raw.first().map_or(0, Vec::len);
            if embedder.dim == 0 {
                return Err(bad("the probe run gave an empty embedding".into()));
            }
        }
        tracing::debug!(
            path = %path.display(),
            front_end = ?embedder.front_end,
            dim = embedder.dim,
            "speaker embedding model loaded"
        );
        Ok(embedder)
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn front_end(&self) -> FrontEnd {
        self.front_end
    }

    /// Size of the model file times the number of sessions loaded from it.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Sessions (parallel workers) this embedder runs.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Runs `job(session, j)` for `j in 0..jobs` spread over the sessions (one scoped thread per
    /// session, each taking the next job and locking its own session for it); results in job
    /// order. The first error stops the remaining jobs and is returned.
    fn run_jobs<T: Send>(
        &self,
        jobs: usize,
        job: impl Fn(&mut Session, usize) -> Result<T, SpeakersError> + Sync,
    ) -> Result<Vec<T>, SpeakersError> {
        let workers = self.sessions.len().min(jobs);
        if workers <= 1 {
            let mut session = lock(&self.sessions[0]);
            return (0..jobs).map(|j| job(&mut session, j)).collect();
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let per_worker = std::thread::scope(|scope| {
            let handles: Vec<_> = self.sessions[..workers]
                .iter()
                .map(|session| {
                    let (next, failed, job) = (&next, &failed, &job);
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        while !failed.load(Ordering::Relaxed) {
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            if j >= jobs {
                                break;
                            }
                            let r = job(&mut lock(session), j);
                            if r.is_err() {
                                failed.store(true, Ordering::Relaxed);
                            }
                            done.push((j, r));
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        });
        let mut slots: Vec<Option<T>> = (0..jobs).map(|_| None).collect();
        for (j, r) in per_worker.into_iter().flatten() {
            slots[j] = Some(r?);
        }
        Ok(slots
            .into_iter()
            .map(|t| t.expect("every job ran"))
            .collect())
    }

    /// One L2-normalised embedding per 16 kHz mono clip. Clips of equal length are batched
    /// together (at most [`MAX_EMBED_BATCH`] per run; zero-padding would change the statistics
    /// pooling); clips under [`MIN_CLIP_SAMPLES`] are repeated up to it. An empty clip is
    /// [`SpeakersError::AudioTooShort`].
    pub fn embed_clips(&self, clips: &[&[f32]]) -> Result<Vec<Vec<f32>>, SpeakersError> {
        if let Some(i) = clips.iter().position(|c| c.is_empty()) {
            return Err(SpeakersError::AudioTooShort(format!(
                "clip {i} has no samples"
            )));
        }
        let tiled: Vec<std::borrow::Cow<'_, [f32]>> = clips
            .iter()
            .map(|c| {
                if c.len() >= MIN_CLIP_SAMPLES {
                    std::borrow::Cow::Borrowed(*c)
                } else {
                    std::borrow::Cow::Owned(
                        c.iter().copied().cycle().take(MIN_CLIP_SAMPLES).collect(),
                    )
                }
            })
            .collect();
        if let Features::Ge2e(mel) = &self.features {
            return self.run_jobs(tiled.len(), |session, i| {
                self.embed_ge2e(session, mel, &tiled[i])
            });
        }
        // Group equal lengths (stable sort), then cut each group into batches small enough that
        // every session gets work, at most MAX_EMBED_BATCH clips each.
        let mut order: Vec<usize> = (0..tiled.len()).collect();
        order.sort_by_key(|&i| tiled[i].len());
        let mut batches: Vec<&[usize]> = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let len = tiled[order[start]].len();
            let end = start + order[start..].partition_point(|&i| tiled[i].len() == len);
            let group = &order[start..end];
            let size = group
                .len()
                .div_ceil(self.sessions.len())
                .clamp(1, MAX_EMBED_BATCH);
            batches.extend(group.chunks(size));
            start = end;
        }
        let results = self.run_jobs(batches.len(), |session, b| {
            let batch: Vec<&[f32]> = batches[b].iter().map(|&i| &*tiled[i]).collect();
            let x = self.model_input(&batch)?;
            self.run_batch(session, x, batch.len())
        })?;
        let mut out = vec![Vec::new(); tiled.len()];
        for (batch, embeddings) in batches.iter().zip(results) {
            for (&i, e) in batch.iter().zip(embeddings) {
                out[i] = normalized(e);
            }
        }
        Ok(out)
    }

    /// One speaker's embedding from several regions (seconds) of one 16 kHz recording: regions
    /// are clamped to the audio and taken in time order up to 60 s of speech, cut into
    /// equal-length sub-segments of 2 s (spread evenly over each region; a region under 2 s is
    /// one sub-segment), embedded, averaged weighted by duration and L2-normalised. `None` under
    /// 0.5 s of speech in total.
    pub fn voiceprint(
        &self,
        pcm: &[f32],
        regions: &[(f64, f64)],
    ) -> Result<Option<Vec<f32>>, SpeakersError> {
        const PIECE: usize = 2 * SAMPLE_RATE;
        const MAX_SPEECH: usize = 60 * SAMPLE_RATE;
        const MIN_SPEECH: usize = SAMPLE_RATE / 2;
        let to_sample = |t: f64| {
            if t.is_finite() {
                ((t.max(0.0) * SAMPLE_RATE as f64).round() as usize).min(pcm.len())
            } else {
                0
            }
        };
        let mut spans: Vec<(usize, usize)> = regions
            .iter()
            .map(|&(a, b)| (to_sample(a), to_sample(b)))
            .filter(|(a, b)| b > a)
            .collect();
        spans.sort_unstable();
        // Merge overlaps so no sample counts twice.
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        let mut total = 0usize;
        for (a, b) in merged {
            if total >= MAX_SPEECH {
                break;
            }
            let b = b.min(a + (MAX_SPEECH - total));
            let len = b - a;
            total += len;
            if len <= PIECE {
                pieces.push((a, b));
                continue;
            }
            let n = len.div_ceil(PIECE);
            let span = len - PIECE;
            for k in 0..n {
                let s = a + span * k / (n - 1);
                pieces.push((s, s + PIECE));
            }
        }
        if total < MIN_SPEECH {
            return Ok(None);
        }
        let clips: Vec<&[f32]> = pieces.iter().map(|&(a, b)| &pcm[a..b]).collect();
        let embeddings = self.embed_clips(&clips)?;
        let mut sum = vec![0f32; self.dim];
        for (e, clip) in embeddings.iter().zip(&clips) {
            let w = clip.len() as f32 / SAMPLE_RATE as f32;
            for (s, x) in sum.iter_mut().zip(e) {
                *s += w * x;
            }
        }
        Ok(Some(normalized(sum)))
    }

    /// Resemblyzer's `embed_utterance`: zero-pad to the last partial, mel, embed the 1.6 s
    /// partials (equal length, batched), average, renormalise.
    fn embed_ge2e(
        &self,
        session: &mut Session,
        mel: &Ge2eMel,
        clip: &[f32],
    ) -> Result<Vec<f32>, SpeakersError> {
        let (slices, padded_len) = ge2e::partial_slices(clip.len());
        let mut padded = clip.to_vec();
        padded.resize(padded_len, 0.0);
        let mels = mel.compute(&padded);
        let mut sum = vec![0f32; self.dim];
        for batch in slices.chunks(MAX_EMBED_BATCH) {
            let mut data = Vec::with_capacity(batch.len() * ge2e::PARTIAL_FRAMES * ge2e::N_MELS);
            for s in batch {
                data.extend_from_slice(&mels[s.start * ge2e::N_MELS..s.end * ge2e::N_MELS]);
            }
            let x = Tensor::from_array(([batch.len(), ge2e::PARTIAL_FRAMES, ge2e::N_MELS], data))
                .map_err(|e| SpeakersError::run("embedding input", e))?;
            for e in self.run_batch(session, x, batch.len())? {
                for (s, v) in sum.iter_mut().zip(&e) {
                    *s += v;
                }
            }
        }
        Ok(normalized(sum))
    }

    /// The model input for equal-length clips (fbank or waveform front ends).
    fn model_input(&self, clips: &[&[f32]]) -> Result<Tensor<f32>, SpeakersError> {
        let len = clips.first().map_or(0, |c| c.len());
        let tensor = match &self.features {
            Features::Fbank(fbank) => {
                let frames = fbank.num_frames(len);
                let mut data = Vec::with_capacity(clips.len() * frames * 80);
                for clip in clips {
                    let mut f = fbank.compute(clip);
                    f.mean_normalize();
                    data.extend_from_slice(f.as_slice());
                }
                Tensor::from_array(([clips.len(), frames, fbank.num_bins()], data))
            }
            Features::Ge2e(mel) => {
                let frames = Ge2eMel::num_frames(len);
                let mut data = Vec::with_capacity(clips.len() * frames * ge2e::N_MELS);
                for clip in clips {
                    data.extend(mel.compute(clip));
                }
                Tensor::from_array(([clips.len(), frames, ge2e::N_MELS], data))
            }
            Features::Waveform { rank } => {
                let data: Vec<f32> = clips.iter().flat_map(|c| c.iter().copied()).collect();
                if *rank == 2 {
                    Tensor::from_array(([clips.len(), len], data))
                } else {
                    Tensor::from_array(([clips.len(), 1, len], data))
                }
            }
        };
        tensor.map_err(|e| SpeakersError::run("embedding input", e))
    }

    /// Runs one batch; raw (not normalised) embeddings, one per item.
    fn run_batch(
        &self,
        session: &mut Session,
        x: Tensor<f32>,
        batch: usize,
    ) -> Result<Vec<Vec<f32>>, SpeakersError> {
        let out = session
            .run(ort::inputs![self.input.as_str() => x])
            .map_err(|e| SpeakersError::run("running the speaker embedding model", e))?;
        let (shape, data) = out[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| SpeakersError::run("embedding output", e))?;
        if shape.first().copied() != Some(batch as i64)
            || data.is_empty()
            || data.len() % batch != 0
        {
            return Err(SpeakersError::run(
                "embedding output",
                format!("unexpected shape {shape:?} for a batch of {batch}"),
            ));
        }
        let dim = data.len() / batch;
        if self.dim != 0 && dim != self.dim {
            return Err(SpeakersError::run(
                "embedding output",
                format!("dimension {dim}, expected {}", self.dim),
            ));
        }
        Ok(data.chunks_exact(dim).map(<[f32]>::to_vec).collect())
    }
}

/// `v / |v|`; a zero or non-finite vector is returned as it is (all zeros stay zeros).
pub(crate) fn normalized(v: Vec<f32>) -> Vec<f32> {
    crate::cluster::normalized(&v).unwrap_or(v)
}
