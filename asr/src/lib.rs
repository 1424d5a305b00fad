//! voxfleet-asr: speech recognition for the worker.
//!
//! - [`cache`]: [`ModelCache`], one per worker process: loads each model once per device and
//!   reports what it holds (for the heartbeat).
//! - [`engine`]: [`WhisperEngine`], a loaded Whisper model and the long-form loop (30 s windows over
//!   one log-mel of the whole file, timestamp seeking, temperature fallback, no-speech skipping,
//!   prompt conditioning, VAD skips, progress and cancellation between windows).
//! - `ct2` (private): the default engine, Whisper on CTranslate2 (`ct2rs`), reading the
//!   packages' `model.bin`; [`EngineSettings`] chooses it or candle, the compute type and threads.
//! - `decode` (private): one window: suppression and timestamp rules, greedy / sampled / beam
//!   search over a batch of hypotheses.
//! - `model` (private): Whisper's network on candle (weights and names of candle-transformers'
//!   Whisper) with per-call self-attention key/value caches; `kernels`, `mel`: its CPU hot spots.
//! - `tokens` (private): tokenizer and special tokens looked up by name.
//! - [`vad`]: [`SileroVad`] on ONNX Runtime (loaded at run time, never at build time).
//! - [`wer`]: word error rate, for tests and benchmarks.
//! - [`device`]: [`DeviceSpec`] (`cpu`, `cuda:N`); CPU threads follow `RAYON_NUM_THREADS`.
//!
//! ```no_run
//! # use std::ops::ControlFlow;
//! # use voxfleet_asr::*;
//! # fn main() -> Result<(), AsrError> {
//! let cache = ModelCache::new(
//!     voxfleet_models::ModelsDir::new(voxfleet_models::default_models_dir()),
//!     DeviceSpec::Cpu,
//! )?;
//! let whisper = cache.whisper("tiny.en")?;
//! let vad = cache.vad()?;
//! let pcm = vec![0.0f32; 16_000]; // 16 kHz mono
//! let t = whisper.transcribe(&pcm, &TranscribeOptions::default(), Some(&vad), &mut |p| {
//!     println!("{:.0}/{:.0} s", p.processed_s, p.total_s);
//!     ControlFlow::Continue(())
//! })?;
//! println!("{}", t.text());
//! # Ok(())
//! # }
//! ```
//!
//! Errors are [`AsrError`] with a stable `code()` and a retry class (`is_permanent()`).

pub mod cache;
mod ct2;
mod decode;
pub mod device;
pub mod engine;
mod error;
mod kernels;
mod mel;
mod model;
mod tokens;
mod types;
pub mod vad;
pub mod wer;
mod words;

pub use cache::{CacheLimits, LoadedModel, ModelCache};
pub use ct2::cpu_backend;
pub use device::DeviceSpec;
pub use engine::WhisperEngine;
pub use error::AsrError;
pub use types::{
    ComputeType, EngineKind, EngineSettings, Progress, Segment, TranscribeOptions, Transcript, Word,
};
pub use vad::SileroVad;
