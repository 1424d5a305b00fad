//! Every API error has a stable code; codes map to HTTP statuses here and nowhere else.
//! Internal detail (SQL, Redis messages) is logged, never returned. Client input a message
//! repeats is cut short: [`clip`] / [`clip_quoted`] (to [`ECHO_MAX`] characters).
use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use voxfleet_errors::{Classified, ErrorClass};

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
    UserDisabled,
    DelegationNotAllowed,
    UnknownUser,
    EmailTaken,
    ExternalIdTaken,
    SelfChange,
    LastSuperAdmin,
    WeakPassword,
    PasswordMismatch,
    BudgetExceeded,
    ReservationClosed,
    InvalidCredentials,
    AccountLocked,
    InvalidRefresh,
    RefreshReused,
    SessionExpired,
    MfaRequired,
    InvalidMfaCode,
    MfaEnrollmentRequired,
    MfaState,
    UnknownConnector,
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
            Self::UserDisabled => "user_disabled",
            Self::DelegationNotAllowed => "delegation_not_allowed",
            Self::UnknownUser => "unknown_user",
            Self::EmailTaken => "email_taken",
            Self::ExternalIdTaken => "external_id_taken",
            Self::SelfChange => "self_change",
            Self::LastSuperAdmin => "last_super_admin",
            Self::WeakPassword => "weak_password",
            Self::PasswordMismatch => "password_mismatch",
            Self::BudgetExceeded => "budget_exceeded",
            Self::ReservationClosed => "reservation_closed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountLocked => "account_locked",
            Self::InvalidRefresh => "invalid_refresh",
            Self::RefreshReused => "refresh_reused",
            Self::SessionExpired => "session_expired",
            Self::MfaRequired => "mfa_required",
            Self::InvalidMfaCode => "invalid_mfa_code",
            Self::MfaEnrollmentRequired => "mfa_enrollment_required",
            Self::MfaState => "mfa_state",
            Self::UnknownConnector => "unknown_connector",
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
            Self::UserDisabled | Self::DelegationNotAllowed => StatusCode::FORBIDDEN,
            Self::BudgetExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidCredentials
            | Self::InvalidRefresh
            | Self::RefreshReused
            | Self::SessionExpired
            | Self::MfaRequired
            | Self::InvalidMfaCode => StatusCode::UNAUTHORIZED,
            Self::MfaEnrollmentRequired => StatusCode::FORBIDDEN,
            Self::MfaState => StatusCode::CONFLICT,
            Self::AccountLocked => StatusCode::LOCKED,
            Self::UnknownUser
            | Self::WeakPassword
            | Self::PasswordMismatch
            | Self::UnknownConnector => StatusCode::UNPROCESSABLE_ENTITY,
            Self::EmailTaken
            | Self::ExternalIdTaken
            | Self::SelfChange
            | Self::LastSuperAdmin
            | Self::ReservationClosed => StatusCode::CONFLICT,
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
                // Client input a message repeats is cut short ([`clip_quoted`]).
                message: clip_quoted(&self.message),
            },
        };
        (self.code.status(), Json(body)).into_response()
    }
}

impl From<voxfleet_store::StoreError> for ApiError {
    fn from(e: voxfleet_store::StoreError) -> Self {
        if let voxfleet_store::StoreError::BudgetExceeded { .. } = e {
            return Self::new(Code::BudgetExceeded, e.to_string());
        }
        if e.class() == ErrorClass::Unavailable {
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

impl From<voxfleet_search::SearchError> for ApiError {
    fn from(e: voxfleet_search::SearchError) -> Self {
        use voxfleet_search::SearchError;
        match e {
            e if e.class() == ErrorClass::Unavailable => {
                tracing::warn!(error = %e, "search index unavailable");
                ApiError::new(
                    Code::Unavailable,
                    "the search index is unavailable; try again shortly",
                )
            }
            SearchError::NoSuchIndex(i) => ApiError::new(
                Code::NotReady,
                format!("the index `{i}` does not exist yet: run a reindex"),
            ),
            e => {
                tracing::error!(error = %e, "search index error");
                ApiError::new(Code::Internal, "internal error")
            }
        }
    }
}

impl From<voxfleet_store::users::UserError> for ApiError {
    fn from(e: voxfleet_store::users::UserError) -> Self {
        use voxfleet_store::users::UserError as E;
        let code = match e {
            E::Store(s) => return s.into(),
            E::NotFound => Code::NotFound,
            E::Invalid(_) => Code::InvalidInput,
            E::WeakPassword(_) => Code::WeakPassword,
            E::PasswordMismatch => Code::PasswordMismatch,
            E::EmailTaken => Code::EmailTaken,
            E::ExternalIdTaken => Code::ExternalIdTaken,
            E::SelfChange(_) => Code::SelfChange,
            E::LastSuperAdmin(_) => Code::LastSuperAdmin,
            E::Forbidden(_) => Code::Forbidden,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<voxfleet_store::submit::SubmitError> for ApiError {
    fn from(e: voxfleet_store::submit::SubmitError) -> Self {
        match e {
            voxfleet_store::submit::SubmitError::Store(e) => e.into(),
            voxfleet_store::submit::SubmitError::Queue(e) => e.into(),
        }
    }
}

impl From<voxfleet_jobs::QueueError> for ApiError {
    fn from(e: voxfleet_jobs::QueueError) -> Self {
        if e.class() == ErrorClass::Unavailable {
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

/// The most characters of client input a message repeats.
pub const ECHO_MAX: usize = 100;

/// `s` cut to [`ECHO_MAX`] characters (with `…` when cut).
pub fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(ECHO_MAX) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// The longest message an error carries.
const MESSAGE_MAX: usize = 1000;

/// A message with every `quoted` span (where messages repeat client input: serde's, ours) cut
/// to [`ECHO_MAX`] characters, and the whole to 1,000.
pub fn clip_quoted(msg: &str) -> String {
    if msg.len() <= ECHO_MAX {
        return msg.to_owned();
    }
    let mut out = String::with_capacity(msg.len().min(MESSAGE_MAX + 8));
    for (i, piece) in msg.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        // Odd pieces lie between backticks.
        let piece = if i % 2 == 1 {
            clip(piece)
        } else {
            Cow::Borrowed(piece)
        };
        out.push_str(&piece);
        if out.len() > MESSAGE_MAX {
            break;
        }
    }
    match out.char_indices().nth(MESSAGE_MAX) {
        Some((i, _)) => format!("{}…", &out[..i]),
        None => out,
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

    #[test]
    fn echoes_are_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "x".repeat(500);
        assert_eq!(clip(&long).chars().count(), ECHO_MAX + 1);
        let msg = format!("unknown variant `{long}`, expected one of `a`, `b`");
        let c = clip_quoted(&msg);
        assert!(c.len() < 200, "{c}");
        assert!(c.ends_with("expected one of `a`, `b`"), "{c}");
        assert!(clip_quoted(&"y".repeat(5000)).chars().count() <= MESSAGE_MAX + 1);
        // Multi-byte characters are cut on a boundary.
        assert_eq!(clip(&"é".repeat(300)).chars().count(), ECHO_MAX + 1);
    }
}
