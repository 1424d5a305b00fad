//! Extractors and middleware that keep requests bounded and make every rejection speak the
//! API's error format.
//! - [`ApiJson`] / [`ApiQuery`]: bodies and query strings with errors as `{"error":{...}}`;
//!   a large JSON body is parsed on the blocking pool, off the async runtime.
//! - [`json_within`]: a JSON body under an explicit limit (the JSON branch of a media route,
//!   whose route limit is the upload limit).
//! - [`early_limit`]: 413 from the `Content-Length` alone, before the token is looked up (a
//!   body of up to [`DRAIN_MAX`] is read and dropped first, so the client hears the answer).
//! - [`error_format`]: the framework's plain-text or empty rejections (405, a path that is not
//!   UTF-8, a body that timed out, …) rewritten into the API's error format (OpenAI's on the
//!   OpenAI endpoint).
//! - [`close_unread`]: `Connection: close` on the answer to a request whose body was left
//!   unread, so that no client reuses a connection the server is dropping.
//! - [`check_time`]: instants a client sends lie in years 1–9999 (PostgreSQL's `timestamptz`
//!   ends at 4713 BC; chrono goes much further).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Code, clip_quoted};

/// `Json<T>` with errors as `{"error":{...}}`: 400 malformed JSON, 413 too large, 415 wrong
/// content type, 422 well-formed JSON of the wrong shape, 408 a body that stopped coming.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_json_type(req.headers())?;
        // `Bytes` honours the route's body limit (`DefaultBodyLimit`).
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(&e, e.status() == StatusCode::PAYLOAD_TOO_LARGE))?;
        parse_json(bytes).await.map(Self)
    }
}

/// A JSON body of at most `max` bytes, whatever the route's own limit: 413 from the
/// `Content-Length` at once, or as soon as a body without one goes past `max`.
pub async fn json_within<T: DeserializeOwned + Send + 'static>(
    req: Request,
    max: usize,
) -> ApiResult<T> {
    check_json_type(req.headers())?;
    if let Some(len) = content_length(req.headers())
        && len > max as u64
    {
        return Err(too_large(len, max as u64));
    }
    let mut body = req.into_body().into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_error(&e, false))?;
        if buf.len() + chunk.len() > max {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("the body is larger than this request's limit of {max} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    parse_json(Bytes::from(buf)).await
}

/// Bodies up to this size are parsed in place; larger ones on the blocking pool, so a 1 MiB
/// batch never holds up the runtime's other requests.
const INLINE_JSON_BYTES: usize = 64 << 10;

async fn parse_json<T: DeserializeOwned + Send + 'static>(bytes: Bytes) -> ApiResult<T> {
    let inline = bytes.len() <= INLINE_JSON_BYTES;
    let parse = move || {
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(v)| v)
            .map_err(json_rejection)
    };
    if inline {
        return parse();
    }
    tokio::task::spawn_blocking(parse).await.map_err(|e| {
        tracing::error!(error = %e, "JSON parsing task failed");
        ApiError::new(Code::Internal, "internal error")
    })?
}

/// `application/json` or `application/<something>+json`, as axum's `Json` accepts.
fn check_json_type(headers: &HeaderMap) -> ApiResult<()> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::UnsupportedMediaType,
            "expected a request with `Content-Type: application/json`",
        ))
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let code = match rej.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidBody,
        _ => Code::MalformedJson,
    };
    ApiError::new(code, clip_quoted(&rej.body_text()))
}

/// Whether `e` (or anything it wraps) is the request body's idle timeout.
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A body that could not be read: 408 when it stopped coming, 413 past the limit, else 400.
fn body_error(e: &(dyn std::error::Error + 'static), too_large: bool) -> ApiError {
    if timed_out(e) {
        request_timeout()
    } else if too_large {
        ApiError::new(
            Code::PayloadTooLarge,
            "the body is larger than this route's limit",
        )
    } else {
        ApiError::new(Code::BadRequest, "the request body could not be read")
    }
}

pub fn request_timeout() -> ApiError {
    ApiError::new(
        Code::RequestTimeout,
        "the request body stopped arriving (idle timeout)",
    )
}

/// `Query<T>` with 400 `invalid_query` on bad parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::new(Code::InvalidQuery, clip_quoted(&rej.body_text()))
}

/// Checks an instant a client sent (a query parameter or a body field): years 1–9999.
/// `code`: `InvalidQuery` for a query parameter, `InvalidInput` for a body field.
pub fn check_time(
    field: &str,
    t: Option<DateTime<Utc>>,
    code: Code,
) -> ApiResult<Option<DateTime<Utc>>> {
    match t {
        Some(t) if !time_in_range(&t) => Err(ApiError::new(
            code,
            format!("{field} must lie between the years 1 and 9999"),
        )),
        t => Ok(t),
    }
}

/// Years 1–9999: what PostgreSQL stores, and what date arithmetic on it never overflows.
pub fn time_in_range(t: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// The routes whose multipart bodies may be as large as the upload limit (the media router in
/// `openapi::router`); their other bodies (JSON) and every other route's keep the general limit.
pub const MEDIA_PATHS: [&str; 3] = [
    "/v1/files",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
];

/// The body limits [`early_limit`] applies.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The general limit.
    pub body: u64,
    /// Multipart bodies of the media routes (the upload limit and the form's framing).
    pub media: u64,
}

impl BodyLimits {
    fn for_request(&self, path: &str, headers: &HeaderMap) -> u64 {
        let multipart = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/")
            });
        if multipart && MEDIA_PATHS.contains(&path) {
            self.media
        } else {
            self.body
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn too_large(len: u64, max: u64) -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the body ({len} bytes) is larger than this request's limit of {max} bytes"),
    )
}

/// 413 at once for a `Content-Length` over the request's limit: the body is never read, the
/// token never looked up, and the connection is closed after the answer.
pub async fn early_limit(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if let Some(len) = content_length(req.headers()) {
        let max = limits.for_request(path, req.headers());
        if len > max {
            // A media upload over its limit keeps the upload's own code (`file_too_large`).
            let e = if max == limits.media && max != limits.body {
                ApiError::new(
                    Code::FileTooLarge,
                    format!("the file is larger than the limit of {max} bytes"),
                )
            } else {
                too_large(len, max)
            };
            let mut res = if is_openai(path) {
                openai_body(e.code.status(), e.code.as_str(), &e.message)
            } else {
                e.into_response()
            };
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            // A client still sending when the server closes gets a reset, and most drop the
            // answer with it: a body of moderate size is read to its end (within
            // DRAIN_TIME) and dropped first. A client that asked `Expect: 100-continue` has
            // sent nothing yet and hears the answer at once; a larger body is not worth
            // reading, and its client may see only the closed connection.
            let expects_continue = req
                .headers()
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if len <= DRAIN_MAX && !expects_continue {
                let mut body = req.into_body().into_data_stream();
                let _ = tokio::time::timeout(DRAIN_TIME, async {
                    while let Some(Ok(_)) = body.next().await {}
                })
                .await;
            }
            return res;
        }
    }
    next.run(req).await
}

/// The largest over-limit body [`early_limit`] reads (and drops) before answering.
pub const DRAIN_MAX: u64 = 16 * 1024 * 1024;
/// The longest it spends reading one.
const DRAIN_TIME: Duration = Duration::from_secs(5);

fn is_openai(path: &str) -> bool {
    path.starts_with("/v1/audio/")
}

/// OpenAI's error `type` for a status.
pub fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn openai_body(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": openai_type(status),
                                "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// A response to a request whose body was not read to its end (an early 413, a form refused
/// at its first bad part, a 401) says `Connection: close`: the server drops the rest rather
/// than read it, and a client must not send its next request on that connection.
pub async fn close_unread(req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || content_length(req.headers()).is_some_and(|n| n > 0);
    if !has_body {
        return next.run(req).await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let end = done.clone();
    let req = req.map(|body| {
        let end_marker = futures::stream::poll_fn(move |_| {
            end.store(true, Ordering::Release);
            std::task::Poll::Ready(None)
        });
        Body::from_stream(body.into_data_stream().chain(end_marker))
    });
    let mut res = next.run(req).await;
    if !done.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// Error responses that are not JSON (the framework's: 405, a path parameter that is not
/// UTF-8, …) get the API's error format, with a code from their status; their status and
/// other headers (`Allow`) stay.
pub async fn error_format(req: Request, next: Next) -> Response {
    let openai = is_openai(req.uri().path());
    let res = next.run(req).await;
    let status = res.status();
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = status_code(status);
    let message = if status.is_server_error() {
        // Never a server's internal detail.
        "internal error".to_owned()
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_ascii_lowercase()
    } else {
        clip_quoted(&text)
    };
    let fresh = if openai {
        openai_body(status, code, &message)
    } else {
        (
            status,
            axum::Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    };
    let (fresh_parts, fresh_body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (k, v) in &fresh_parts.headers {
        parts.headers.insert(k, v.clone());
    }
    Response::from_parts(parts, fresh_body)
}

/// The code of a framework rejection, from its status.
fn status_code(status: StatusCode) -> &'static str {
    let code = match status {
        StatusCode::BAD_REQUEST => Code::BadRequest,
        StatusCode::UNAUTHORIZED => Code::Unauthorized,
        StatusCode::FORBIDDEN => Code::Forbidden,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => Code::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidBody,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        s if s.is_server_error() => Code::Internal,
        _ => Code::BadRequest,
    };
    code.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_outside_years_1_to_9999_are_refused() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert!(time_in_range(&t("2026-01-01T00:00:00Z")));
        assert!(time_in_range(&t("0001-01-01T00:00:00Z")));
        assert!(!time_in_range(
            &DateTime::from_timestamp_micros(-8_000_000_000_000_000_000).unwrap()
        ));
        assert!(check_time("as_of", Some(t("9999-12-31T23:59:59Z")), Code::InvalidQuery).is_ok());
    }

    #[test]
    fn media_routes_take_large_multipart_only() {
        let l = BodyLimits {
            body: 10,
            media: 1000,
        };
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        );
        assert_eq!(l.for_request("/v1/files", &h), 1000);
        assert_eq!(l.for_request("/v1/jobs", &h), 10);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(l.for_request("/v1/files", &h), 10);
    }
}
