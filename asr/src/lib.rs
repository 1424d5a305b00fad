//! voxfleet-asr: speech recognition for the worker.
//!
//! - [`cache`]: [`ModelCache`], one per worker process: loads each model once, reports memory.
//! - [`engine`]: [`WhisperEngine`], a loaded Whisper model and the long-form loop (30 s windows,
//!   timestamp seeking, temperature fallback, no-speech skipping, prompt conditioning, VAD skips).
//! - `decode` (private): one window — logit rules, greedy / sampled / beam search.
//! - `model` (private): Whisper's network on candle with self-attention key/value caches.
//! - `tokens` (private): tokenizer and special tokens by name.
//! - [`vad`]: [`SileroVad`] on ONNX Runtime (loaded at run time, never at build time).
//! - [`wer`]: word error rate, for tests and benchmarks.
//! - [`device`]: [`DeviceSpec`] (`cpu`, `cuda:N`) and how the CPU thread count is set.
//!
//! Errors are [`AsrError`] with a stable `code()` and a retry class (`is_permanent()`).

pub mod cache;
mod decode;
pub mod device;
pub mod engine;
mod error;
mod gelu;
mod mel;
mod model;
mod tokens;
mod types;
pub mod vad;
pub mod wer;

pub use cache::{LoadedModel, ModelCache};
pub use device::DeviceSpec;
pub use engine::{WhisperEngine, WhisperSource};
pub use error::AsrError;
pub use types::{Progress, Segment, TranscribeOptions, Transcript};
pub use vad::SileroVad;
