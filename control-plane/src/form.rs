//! Text parts of multipart forms (an upload's `process` and options, the OpenAI endpoint's
//! fields): bounded one by one and together, with coded errors.
use axum::extract::multipart::Field;
use axum::http::StatusCode;

use crate::error::{ApiError, ApiResult, Code, clip};

/// The longest short text part (`process`, `options`, an OpenAI form field).
pub const SMALL_TEXT: usize = 64 << 10;

/// A text part of at most `max` bytes: 413 as soon as it goes past (the rest is not read),
/// 408 when it stops arriving.
pub async fn text_part(mut field: Field<'_>, max: usize) -> ApiResult<String> {
    let name = clip(field.name().unwrap_or("")).into_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| {
        if crate::extract::timed_out(&e) {
            return crate::extract::request_timeout();
        }
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Code::PayloadTooLarge
        } else {
            Code::InvalidBody
        };
        ApiError::new(code, format!("{name}: {}", e.body_text()))
    })? {
        if bytes.len() + chunk.len() > max {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("{name}: longer than {max} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::new(Code::InvalidBody, format!("{name}: not UTF-8")))
}

/// What a form's text parts may take together (the general body limit), so that many small
/// parts are refused at the first one past it.
pub struct TextBudget {
    left: usize,
    total: usize,
}

impl TextBudget {
    pub fn new(total: usize) -> Self {
        Self { left: total, total }
    }

    /// The next text part, of at most `max` bytes and within what is left.
    pub async fn read(&mut self, field: Field<'_>, max: usize) -> ApiResult<String> {
        let cap = max.min(self.left);
        let total = self.total;
        let text = text_part(field, cap).await.map_err(|e| {
            if e.code == Code::PayloadTooLarge && cap < max {
                ApiError::new(
                    Code::PayloadTooLarge,
                    format!("the form's text parts are longer than {total} bytes together"),
                )
            } else {
                e
            }
        })?;
        self.left -= text.len();
        Ok(text)
    }
}
