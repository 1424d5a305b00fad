//! [`TextEmbedError`]: what chunking and embedding report. Every variant has a stable
//! [`TextEmbedError::code`] that job handlers report as they are.

use std::path::PathBuf;
use voxfleet_errors::{Classified, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum TextEmbedError {
    /// A models-directory file is missing or corrupt, the name is not a text-embedding model,
    /// or ONNX Runtime could not be started.
    #[error(transparent)]
    Models(#[from] voxfleet_models::ModelError),

    /// ONNX Runtime has not been started in this process.
    #[error(
        "ONNX Runtime is not initialised (call voxfleet_models::onnx::ensure_onnxruntime first)"
    )]
    RuntimeNotInitialised,

    /// A model or tokenizer file that cannot be read or does not have the expected layout
    /// (tensor names and shapes, ONNX inputs and outputs).
    #[error("cannot load {what} from {path}: {reason}")]
    InvalidModelFormat {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// The tokenizer or the model failed on some input, or returned an unexpected shape.
    #[error("{context}: {reason}")]
    Inference {
        context: &'static str,
        reason: String,
    },

    /// Options that cannot be honoured (an overlap not smaller than the window, a zero batch).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl TextEmbedError {
    pub(crate) fn inference(context: &'static str, e: impl std::fmt::Display) -> Self {
        TextEmbedError::Inference {
            context,
            reason: e.to_string(),
        }
    }

    pub(crate) fn format(
        what: &'static str,
        path: &std::path::Path,
        e: impl std::fmt::Display,
    ) -> Self {
        TextEmbedError::InvalidModelFormat {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

impl Classified for TextEmbedError {
    fn code(&self) -> &'static str {
        match self {
            TextEmbedError::Models(e) => e.code(),
            TextEmbedError::RuntimeNotInitialised => "runtime_error",
            TextEmbedError::InvalidModelFormat { .. } => "invalid_model_format",
            TextEmbedError::Inference { .. } => "inference_failed",
            TextEmbedError::InvalidOptions(_) => "invalid_options",
        }
    }

    fn class(&self) -> ErrorClass {
        // A model that is missing or broken stays so until an operator fetches it again;
        // inference on a loaded model fails the same way on the same text.
        ErrorClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            TextEmbedError::inference("x", "y").code(),
            "inference_failed"
        );
        assert_eq!(
            TextEmbedError::format("tokenizer", std::path::Path::new("/t.json"), "bad").code(),
            "invalid_model_format"
        );
        assert_eq!(
            TextEmbedError::InvalidOptions("overlap".into()).code(),
            "invalid_options"
        );
        let missing = voxfleet_models::ModelError::Missing {
            model: "all-minilm-l6-v2".into(),
            path: "/m/all-minilm-l6-v2/model.safetensors".into(),
            root: "/m".into(),
        };
        assert_eq!(TextEmbedError::from(missing).code(), "model_missing");
    }
}
