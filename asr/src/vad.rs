//! Silero VAD v6 on ONNX Runtime (loaded at run time from `libonnxruntime.so`).
//!
//! The model reads 512 new samples plus the previous 64 at 16 kHz (`input` [B, 576]), carries a
//! recurrent `state` [2, B, 128] and gives a speech probability per 32 ms chunk (`output` [B, 1]).
//! [`regions_from_probs`] turns those probabilities into speech regions with the usual Silero
//! defaults (threshold 0.5, min speech 250 ms, min silence 100 ms, 30 ms padding).

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::AsrError;

const SR: usize = 16_000;
const CHUNK: usize = 512;
const CONTEXT: usize = 64;
const STATE: usize = 2 * 128;

/// Turning per-chunk probabilities into regions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadParams {
    pub threshold: f32,
    pub min_speech_s: f64,
    pub min_silence_s: f64,
    pub pad_s: f64,
}

impl Default for VadParams {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_speech_s: 0.25,
            min_silence_s: 0.1,
            pad_s: 0.03,
        }
    }
}

/// Loads ONNX Runtime from `lib` once per process; a missing file is an error, never a panic.
/// The runtime lives in `voxfleet_models::onnx` (shared with the speaker models); this maps its
/// errors into [`AsrError`].
pub fn init_onnxruntime(lib: &Path, origin: &'static str) -> Result<(), AsrError> {
    voxfleet_models::onnx::init_onnxruntime(lib, origin).map_err(onnx_error)
}

/// The process's ONNX Runtime environment (ort allows one per process), once
/// [`init_onnxruntime`] has succeeded: other crates in the same process should build their
/// sessions on it rather than building a second one.
pub use voxfleet_models::onnx::onnx_environment;

/// ONNX Runtime start-up errors as the ASR crate has always reported them: a missing library is
/// [`AsrError::OnnxRuntimeMissing`], a library that does not load is a (retryable)
/// [`AsrError::Runtime`]; anything else (the models directory's copy missing or corrupt) stays a
/// model error.
pub(crate) fn onnx_error(e: voxfleet_models::ModelError) -> AsrError {
    match e {
        voxfleet_models::ModelError::OnnxRuntimeMissing { path, origin } => {
            AsrError::OnnxRuntimeMissing { path, origin }
        }
        voxfleet_models::ModelError::OnnxRuntime { detail } => AsrError::Runtime {
            context: "loading ONNX Runtime",
            source: detail.into(),
        },
        other => AsrError::Model(other),
    }
}

/// A loaded Silero VAD. `Send + Sync`; calls are serialised on one ONNX session (the model is tiny:
/// about 0.1 ms per 32 ms chunk).
pub struct SileroVad {
    session: Mutex<Session>,
    params: VadParams,
    bytes: u64,
}

fn ort_err(context: &'static str) -> impl Fn(ort::Error) -> AsrError {
    move |e| AsrError::ort(context, e)
}

impl SileroVad {
    /// Loads the ONNX model; [`init_onnxruntime`] must have succeeded first.
    pub fn load(model: &Path) -> Result<Self, AsrError> {
        let Some(env) = onnx_environment() else {
            return Err(AsrError::Runtime {
                context: "loading Silero VAD",
                source: "ONNX Runtime is not initialised (call init_onnxruntime first)".into(),
            });
        };
        let bytes = std::fs::metadata(model)
            .map_err(|e| AsrError::Load {
                what: "silero vad",
                path: model.to_path_buf(),
                reason: e.to_string(),
            })?
            .len();
        let session = Session::builder(env)
            .map_err(ort_err("creating the VAD session"))?
            .with_intra_threads(1)
            .map_err(|e| AsrError::ort("configuring the VAD session", e.into()))?
            .commit_from_file(model)
            .map_err(|e| AsrError::Load {
                what: "silero vad",
                path: model.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            session: Mutex::new(session),
            params: VadParams::default(),
            bytes,
        })
    }

    pub fn with_params(mut self, params: VadParams) -> Self {
        self.params = params;
        self
    }

    /// Size of the model file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Speech probability of every 512-sample chunk of 16 kHz `pcm`.
    pub fn probabilities(&self, pcm: &[f32]) -> Result<Vec<f32>, AsrError> {
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut state = vec![0f32; STATE];
        let mut input = vec![0f32; CONTEXT + CHUNK];
        let mut probs = Vec::with_capacity(pcm.len() / CHUNK + 1);
        for chunk in pcm.chunks(CHUNK) {
            // Keep the previous chunk's last 64 samples as context.
            input.copy_within(CHUNK.., 0);
            input[CONTEXT..CONTEXT + chunk.len()].copy_from_slice(chunk);
            input[CONTEXT + chunk.len()..].fill(0.0);
            let x = Tensor::from_array(([1usize, CONTEXT + CHUNK], input.clone()))
                .map_err(ort_err("VAD input"))?;
            let s = Tensor::from_array(([2usize, 1, 128], state.clone()))
                .map_err(ort_err("VAD state"))?;
            let sr = Tensor::from_array(((), vec![SR as i64])).map_err(ort_err("VAD rate"))?;
            let out = session
                .run(ort::inputs!["input" => x, "state" => s, "sr" => sr])
                .map_err(ort_err("running Silero VAD"))?;
            let (_, p) = out["output"]
                .try_extract_tensor::<f32>()
                .map_err(ort_err("VAD output"))?;
            probs.push(p.first().copied().unwrap_or(0.0));
            let (_, next) = out["stateN"]
                .try_extract_tensor::<f32>()
                .map_err(ort_err("VAD state output"))?;
            state.copy_from_slice(&next[..STATE]);
        }
        Ok(probs)
    }

    /// Speech regions (start, end) in seconds.
    pub fn speech_regions(&self, pcm: &[f32]) -> Result<Vec<(f64, f64)>, AsrError> {
        let probs = self.probabilities(pcm)?;
        Ok(regions_from_probs(&probs, pcm.len(), &self.params))
    }
}

/// Hysteresis over chunk probabilities (on at `threshold`, off below `threshold − 0.15` for at
/// least `min_silence_s`), dropping regions shorter than `min_speech_s`, then padding each region
/// by `pad_s` (splitting the gap when two regions are closer than twice the padding).
pub fn regions_from_probs(probs: &[f32], n_samples: usize, p: &VadParams) -> Vec<(f64, f64)> {
    let off = p.threshold - 0.15;
    let min_speech = (p.min_speech_s * SR as f64) as usize;
    let min_silence = (p.min_silence_s * SR as f64) as usize;
    let pad = (p.pad_s * SR as f64) as usize;
    let mut regions: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    let mut silence_since: Option<usize> = None;
    for (i, &prob) in probs.iter().enumerate() {
        let at = i * CHUNK;
        if prob >= p.threshold {
            silence_since = None;
            if start.is_none() {
                start = Some(at);
            }
            continue;
        }
        if let Some(s) = start
            && prob < off
        {
            let quiet_from = *silence_since.get_or_insert(at);
            if at - quiet_from >= min_silence {
                if quiet_from - s > min_speech {
                    regions.push((s, quiet_from));
                }
                start = None;
                silence_since = None;
            }
        }
    }
    if let Some(s) = start
        && n_samples.saturating_sub(s) > min_speech
    {
        regions.push((s, n_samples));
    }
    // Padding.
    let n = regions.len();
    for i in 0..n {
        if i == 0 {
            regions[0].0 = regions[0].0.saturating_sub(pad);
        }
        if i + 1 < n {
            let gap = regions[i + 1].0.saturating_sub(regions[i].1);
            if gap < 2 * pad {
                regions[i].1 += gap / 2;
                regions[i + 1].0 = regions[i + 1].0.saturating_sub(gap / 2);
            } else {
                regions[i].1 = (regions[i].1 + pad).min(n_samples);
                regions[i + 1].0 = regions[i + 1].0.saturating_sub(pad);
            }
        } else {
            regions[i].1 = (regions[i].1 + pad).min(n_samples);
        }
    }
    regions
        .into_iter()
        .map(|(a, b)| (a as f64 / SR as f64, b as f64 / SR as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(chunks: usize) -> f64 {
        (chunks * CHUNK) as f64 / SR as f64
    }

    #[test]
    fn regions_follow_probabilities() {
        // 1 s silence, 2 s speech, 1 s silence, 0.1 s blip, 1 s silence, speech to the end.
        let c = |s: f64| (s * SR as f64 / CHUNK as f64) as usize;
        let mut probs = vec![0.0; c(1.0)];
        probs.extend(vec![0.9; c(2.0)]);
        probs.extend(vec![0.0; c(1.0)]);
        probs.extend(vec![0.9; c(0.1)]);
        probs.extend(vec![0.0; c(1.0)]);
        let tail_from = probs.len();
        probs.extend(vec![0.9; c(1.0)]);
        let n = probs.len() * CHUNK;
        let r = regions_from_probs(&probs, n, &VadParams::default());
        assert_eq!(r.len(), 2, "{r:?}");
        assert!((r[0].0 - (secs(c(1.0)) - 0.03)).abs() < 1e-6, "{r:?}");
        assert!(
            (r[0].1 - (secs(c(1.0) + c(2.0)) + 0.03)).abs() < 1e-6,
            "{r:?}"
        );
        assert!((r[1].0 - (secs(tail_from) - 0.03)).abs() < 1e-6, "{r:?}");
        assert!((r[1].1 - n as f64 / SR as f64).abs() < 1e-6);
    }

    #[test]
    fn silence_gives_nothing() {
        assert!(regions_from_probs(&[0.1; 1000], 512_000, &VadParams::default()).is_empty());
    }

    #[test]
    fn short_dip_does_not_split() {
        let mut probs = vec![0.9; 40];
        probs[20] = 0.1; // 32 ms dip < 100 ms min silence
        let r = regions_from_probs(&probs, 40 * CHUNK, &VadParams::default());
        assert_eq!(r.len(), 1);
    }
}
