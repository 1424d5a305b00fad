//! The crate's one error type. Every variant has a stable code and a class
//! ([`Classified`]) so the worker can decide what happens to the job.

use std::path::PathBuf;

use voxfleet_errors::{Classified, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    /// The progress callback asked to stop.
    #[error("transcription cancelled")]
    Cancelled,

    /// A model file is missing or corrupt (the fix is in the message).
    #[error(transparent)]
    Model(#[from] voxfleet_models::ModelError),

    /// ONNX Runtime's shared library is not where it should be.
    #[error(
        "ONNX Runtime library not found at {path} ({origin}); run `voxfleet-worker models fetch` \
         (or `cargo run -p voxfleet-worker -- models fetch`) or point ORT_DYLIB_PATH at libonnxruntime.so"
    )]
    OnnxRuntimeMissing { path: PathBuf, origin: &'static str },

    /// The requested device cannot be used by this build or machine.
    #[error("device {device} is unavailable: {reason}")]
    DeviceUnavailable { device: String, reason: String },

    /// A model file that exists but cannot be loaded (bad config, tokenizer, weights).
    #[error("cannot load {what} from {path}: {reason}")]
    Load {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// The inference runtime failed while running (candle or ONNX Runtime).
    #[error("{context}: {source}")]
    Runtime {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A language the model does not know (or a non-English language on an English-only model).
    #[error("unsupported language `{0}`")]
    UnsupportedLanguage(String),

    /// Options that cannot be honoured (e.g. translation with an English-only model).
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// Loading the model would pass the worker's model memory budget, even after unloading
    /// every model no job is using.
    #[error(
        "loading {model} needs about {need} MiB; {held} MiB of models in use are held on {device}, \
         and the budget is {budget} MiB (raise --model-memory-budget, or run it on another worker)",
        need = need >> 20, held = held >> 20, budget = budget >> 20
    )]
    OverBudget {
        model: String,
        device: String,
        need: u64,
        held: u64,
        budget: u64,
    },
}

impl Classified for AsrError {
    fn code(&self) -> &'static str {
        match self {
            AsrError::Cancelled => "cancelled",
            AsrError::Model(e) => e.code(),
            AsrError::OnnxRuntimeMissing { .. } => "model_missing",
            AsrError::DeviceUnavailable { .. } => "device_unavailable",
            AsrError::Load { .. } => "model_corrupt",
            AsrError::Runtime { .. } => "runtime_error",
            AsrError::UnsupportedLanguage(_) => "unsupported_language",
            AsrError::InvalidOptions(_) => "invalid_options",
            AsrError::OverBudget { .. } => "model_over_budget",
        }
    }

    /// Permanent when retrying the same job on the same worker cannot succeed (bad request,
    /// missing files); runtime failures may not happen again.
    fn class(&self) -> ErrorClass {
        match self {
            AsrError::Cancelled => ErrorClass::Cancelled,
            AsrError::Runtime { .. } => ErrorClass::Retryable,
            // Past the budget alone: never. Past it with other models in use: another attempt
            // may find them unloaded.
            AsrError::OverBudget { need, budget, .. } if need > budget => ErrorClass::Permanent,
            AsrError::OverBudget { .. } => ErrorClass::Retryable,
            AsrError::Model(e) => e.class(),
            AsrError::OnnxRuntimeMissing { .. }
            | AsrError::DeviceUnavailable { .. }
            | AsrError::Load { .. }
            | AsrError::UnsupportedLanguage(_)
            | AsrError::InvalidOptions(_) => ErrorClass::Permanent,
        }
    }
}

impl AsrError {
    pub(crate) fn candle(context: &'static str, e: candle_core::Error) -> Self {
        AsrError::Runtime {
            context,
            source: Box::new(e),
        }
    }

    pub(crate) fn ort(context: &'static str, e: ort::Error) -> Self {
        AsrError::Runtime {
            context,
            source: Box::new(e),
        }
    }
}

/// `?` on candle results inside the decoder.
impl From<candle_core::Error> for AsrError {
    fn from(e: candle_core::Error) -> Self {
        AsrError::candle("candle", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_classes() {
        assert_eq!(AsrError::Cancelled.code(), "cancelled");
        assert_eq!(AsrError::Cancelled.class(), ErrorClass::Cancelled);
        let e = AsrError::OnnxRuntimeMissing {
            path: "/x/libonnxruntime.so".into(),
            origin: "ORT_DYLIB_PATH",
        };
        assert_eq!(e.code(), "model_missing");
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.to_string().contains("models fetch"), "{e}");
        assert_eq!(
            AsrError::UnsupportedLanguage("xx".into()).class(),
            ErrorClass::Permanent
        );
    }
}
