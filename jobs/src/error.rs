//! Errors. A handler's error carries its retry class and a stable code, so the decision
//! "retry or fail now" is made from the type, never from message text.
use serde::{Deserialize, Serialize};
use voxfleet_errors::{self as errors, Classified};

/// Retryable: I/O, timeouts, a lost worker. Permanent: bad input, which no retry can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Retryable,
    Permanent,
}

/// What a job handler returns when an attempt does not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The attempt failed; `class` says whether another attempt may help.
    #[error("{code}: {message}")]
    Failed {
        class: ErrorClass,
        code: String,
        message: String,
    },
    /// The job was cancelled (the handler saw its cancellation token).
    #[error("cancelled")]
    Cancelled,
    /// The worker is draining and gave the job back; it runs again elsewhere, no attempt counted.
    #[error("released by a draining worker")]
    Released,
}

impl HandlerError {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed {
            class: ErrorClass::Retryable,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed {
            class: ErrorClass::Permanent,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Errors of the queue client itself.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("job {0} not found in the queue")]
    NotFound(String),
    #[error("corrupt job record {id}: {detail}")]
    Corrupt { id: String, detail: String },
}

/// Any voxfleet error becomes a job error with its code and class (`?` in a handler): a
/// `cancelled` one ends the attempt as cancelled, a `permanent` one fails the job now, and
/// `retryable` or `unavailable` ones leave it to the retry policy. The job records the error's
/// public message (what its owner may read); a detail withheld from it goes to the log.
impl<E: Classified> From<E> for HandlerError {
    fn from(e: E) -> Self {
        let message = e.public_message();
        let full = e.to_string();
        if message != full {
            tracing::warn!(code = e.code(), error = %full, "job error: detail kept out of the job record");
        }
        match e.class() {
            errors::ErrorClass::Cancelled => HandlerError::Cancelled,
            errors::ErrorClass::Permanent => HandlerError::permanent(e.code(), message),
            errors::ErrorClass::Retryable | errors::ErrorClass::Unavailable => {
                HandlerError::retryable(e.code(), message)
            }
        }
    }
}

impl Classified for QueueError {
    fn code(&self) -> &'static str {
        match self {
            Self::Redis(_) => "queue_unavailable",
            Self::NotFound(_) => "job_not_found",
            Self::Corrupt { .. } => "corrupt_job_record",
        }
    }

    /// `unavailable` when Redis could not be reached; a logic or data error is `permanent`.
    fn class(&self) -> errors::ErrorClass {
        if self.unreachable() {
            errors::ErrorClass::Unavailable
        } else {
            errors::ErrorClass::Permanent
        }
    }
}

impl QueueError {
    fn unreachable(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_connection_refusal()
            }
            _ => false,
        }
    }
}
