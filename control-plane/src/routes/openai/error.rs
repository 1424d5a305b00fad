//! Errors in OpenAI's format (`{"error":{"message","type","param","code"}}`): the API's own
//! errors shown that way, and a failed job's.
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use voxfleet_jobs::JobSnapshot;

use crate::error::{ApiError, clip, clip_quoted};
use crate::extract::openai_type;

/// An error in OpenAI's format: `{"error":{"message","type","param","code"}}`.
#[derive(Debug)]
pub struct OpenAiError {
    pub(super) status: StatusCode,
    pub(super) kind: &'static str,
    pub(super) message: String,
    /// The field at fault.
    pub(super) param: Option<String>,
    pub(super) code: Option<String>,
}

impl OpenAiError {
    pub(super) fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: Some(clip(param).into_owned()),
            code: None,
        }
    }

    pub(super) fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    pub(super) fn with_param(mut self, param: &str) -> Self {
        self.param = Some(clip(param).into_owned());
        self
    }
}

impl From<ApiError> for OpenAiError {
    /// The API's own errors in OpenAI's format; a request the API finds invalid (422) is a
    /// 400, as OpenAI answers it.
    fn from(e: ApiError) -> Self {
        if e.code == crate::error::Code::BudgetExceeded {
            // OpenAI's answer when an account's quota is spent.
            return Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "insufficient_quota",
                message: e.message,
                param: None,
                code: Some("insufficient_quota".into()),
            };
        }
        let status = match e.code.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        let kind = openai_type(status);
        Self {
            status,
            kind,
            message: e.message,
            param: None,
            code: Some(e.code.as_str().to_owned()),
        }
    }
}

impl From<voxfleet_store::StoreError> for OpenAiError {
    fn from(e: voxfleet_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl OpenAiError {
    /// `{"error":{"message","type","param","code"}}`.
    pub(super) fn body(&self) -> Value {
        let message = clip_quoted(&self.message);
        json!({"error": {"message": message, "type": self.kind,
                         "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, Json(body)).into_response()
    }
}

/// A finished job that did not succeed, in OpenAI's error format: the client's fault (400)
/// when its audio was the problem.
pub(super) fn job_failed(done: JobSnapshot) -> OpenAiError {
    let code = done.error_code.unwrap_or_else(|| done.status.to_string());
    let message = done
        .error_message
        .unwrap_or_else(|| format!("the {} ended {}", done.kind, done.status));
    let client_fault = matches!(
        code.as_str(),
        "empty_audio"
            | "unsupported_format"
            | "corrupt_audio"
            | "too_long"
            | "unsupported_language"
    );
    OpenAiError {
        status: if client_fault {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        },
        kind: if client_fault {
            "invalid_request_error"
        } else {
            "server_error"
        },
        message,
        param: client_fault.then(|| "file".to_owned()),
        code: Some(code),
    }
}
