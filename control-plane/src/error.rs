//! Every API error has a stable code; codes map to HTTP statuses here and nowhere else.
//! Internal detail (SQL, Redis messages) is logged, never returned.
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthorized,
    Forbidden,
    NotFound,
    MalformedJson,
    InvalidBody,
    UnsupportedMediaType,
    PayloadTooLarge,
    FileTooLarge,
    NotReady,
    UnknownKind,
    InvalidInput,
    InvalidQueue,
    InvalidSetting,
    InvalidQuery,
    TooManyJobs,
    NotImplemented,
    JobFinished,
    NotRetryable,
    AlreadyRunning,
    NotRunning,
    ConfirmationRequired,
    NotFinalizable,
    ObjectInUse,
    Unavailable,
    Internal,
    BadRequest,
    MethodNotAllowed,
    RequestTimeout,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MalformedJson => "malformed_json",
            Self::InvalidBody => "invalid_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::FileTooLarge => "file_too_large",
            Self::NotReady => "not_ready",
            Self::UnknownKind => "unknown_kind",
            Self::InvalidInput => "invalid_input",
            Self::InvalidQueue => "invalid_queue",
            Self::InvalidSetting => "invalid_setting",
            Self::InvalidQuery => "invalid_query",
            Self::TooManyJobs => "too_many_jobs",
            Self::NotImplemented => "not_implemented",
            Self::JobFinished => "job_finished",
            Self::NotRetryable => "not_retryable",
            Self::AlreadyRunning => "already_running",
            Self::NotRunning => "not_running",
            Self::ConfirmationRequired => "confirmation_required",
            Self::NotFinalizable => "not_finalizable",
            Self::ObjectInUse => "object_in_use",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::BadRequest => "bad_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MalformedJson | Self::InvalidQuery => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge | Self::FileTooLarge | Self::TooManyJobs => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::InvalidBody
            | Self::UnknownKind
            | Self::InvalidInput
            | Self::InvalidQueue
            | Self::InvalidSetting => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Self::JobFinished
            | Self::NotRetryable
            | Self::NotReady
            | Self::AlreadyRunning
            | Self::NotRunning
            | Self::ConfirmationRequired
            | Self::NotFinalizable
            | Self::ObjectInUse => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

/// `{"error":{"code","message"}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found"))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().into(),
                // Client input a message repeats is cut short (`extract::clip_quoted`).
                message: crate::extract::clip_quoted(&self.message),
            },
        };
        (self.code.status(), Json(body)).into_response()
    }
}

impl From<voxfleet_store::StoreError> for ApiError {
    fn from(e: voxfleet_store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "postgres unavailable");
            Self::new(
                Code::Unavailable,
                "the database is unreachable; try again shortly",
            )
        } else {
            tracing::error!(error = %e, "database error");
            Self::new(Code::Internal, "internal error")
        }
    }
}

impl From<voxfleet_jobs::QueueError> for ApiError {
    fn from(e: voxfleet_jobs::QueueError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "redis unavailable");
            Self::new(
                Code::Unavailable,
                "the queue is unreachable; try again shortly",
            )
        } else {
            tracing::error!(error = %e, "queue error");
            Self::new(Code::Internal, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_client_and_server_statuses() {
        assert_eq!(Code::MalformedJson.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            Code::InvalidInput.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            Code::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(Code::Unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
