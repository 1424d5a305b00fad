//! [`SpeakersError`]: what the model-backed parts of the crate ([`Segmenter`](crate::Segmenter),
//! [`Embedder`](crate::Embedder), [`Diarizer`](crate::Diarizer)) report. Every variant has a
//! stable [`SpeakersError::code`] that the worker's job handlers report as they are.

use std::path::PathBuf;

use crate::cluster::ClusterError;
use voxfleet_errors::{Classified, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum SpeakersError {
    /// The stop flag was set.
    #[error("speaker processing cancelled")]
    Cancelled,

    /// ONNX Runtime could not be started, or a models-directory file is missing or corrupt.
    #[error(transparent)]
    Models(#[from] voxfleet_models::ModelError),

    /// ONNX Runtime has not been started in this process.
    #[error(
        "ONNX Runtime is not initialised (call voxfleet_models::onnx::ensure_onnxruntime first)"
    )]
    RuntimeNotInitialised,

    /// A model file that cannot be read or loaded, or whose inputs and outputs are not an
    /// interface this crate knows.
    #[error("cannot load {what} from {path}: {reason}")]
    Load {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// ONNX Runtime failed while running a model, or the model returned an unexpected shape.
    #[error("{context}: {reason}")]
    Run {
        context: &'static str,
        reason: String,
    },

    /// Audio that cannot be embedded at all (an empty clip).
    #[error("audio too short: {0}")]
    AudioTooShort(String),

    /// Options that cannot be honoured (inconsistent speaker-count hints, a zero step).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl SpeakersError {
    pub(crate) fn run(context: &'static str, e: impl std::fmt::Display) -> Self {
        SpeakersError::Run {
            context,
            reason: e.to_string(),
        }
    }
}

impl Classified for SpeakersError {
    fn code(&self) -> &'static str {
        match self {
            SpeakersError::Cancelled => "cancelled",
            SpeakersError::Models(e) => e.code(),
            SpeakersError::RuntimeNotInitialised
            | SpeakersError::Load { .. }
            | SpeakersError::Run { .. } => "model_error",
            SpeakersError::AudioTooShort(_) => "audio_too_short",
            SpeakersError::InvalidOptions(_) => "invalid_options",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            SpeakersError::Cancelled => ErrorClass::Cancelled,
            // A missing or broken model is the operator's to fix (`models fetch`): failing now
            // with its code beats retrying into the same error.
            _ => ErrorClass::Permanent,
        }
    }
}

impl From<ClusterError> for SpeakersError {
    fn from(e: ClusterError) -> Self {
        SpeakersError::InvalidOptions(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(SpeakersError::Cancelled.code(), "cancelled");
        assert_eq!(SpeakersError::run("x", "y").code(), "model_error");
        assert_eq!(SpeakersError::RuntimeNotInitialised.code(), "model_error");
        let e: SpeakersError = ClusterError::InvalidHints("min_speakers > max_speakers").into();
        assert_eq!(e.code(), "invalid_options");
        assert!(e.to_string().contains("min_speakers"), "{e}");
    }
}
