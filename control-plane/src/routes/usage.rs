//! Transcriptions another connector did for a user (the platform called OpenAI itself, say),
//! reported after the fact so that the user's budget, usage and cost cover every connector.
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use voxfleet_jobs::JobKind;
use voxfleet_store::costs::{ReportError, TranscriptionReport, UsageRecord};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;
use crate::services::submit::budget_warning;

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        let code = match e {
            ReportError::Store(s) => return s.into(),
            ReportError::Invalid(_) => Code::InvalidInput,
            ReportError::UnknownConnector(_) => Code::UnknownConnector,
            ReportError::FileNotFound => return ApiError::not_found("file"),
        };
        ApiError::new(code, e.to_string())
    }
}

/// Report a transcription another connector did for the caller (or the user a delegating
/// token acts for). Its minutes count against the monthly transcription budget at once and
/// its cost is estimated from the price table; never refused for the budget (the audio was
/// transcribed already), but the answer carries `X-Voxfleet-Budget-Warning` from the warning
/// share on. A platform that must not pass a budget checks `GET /v1/me` before the call.
#[utoipa::path(post, path = "/v1/me/usage/transcriptions", tag = "users", request_body = TranscriptionReport,
    responses((status = 201, body = UsageRecord), (status = 404, description = "`file_id` is not one of the user's files", body = ErrorBody),
              (status = 422, description = "`invalid_input`, or `unknown_connector` for a connector without a price", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn report_transcription(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<TranscriptionReport>,
) -> ApiResult<(StatusCode, HeaderMap, Json<UsageRecord>)> {
    let row = voxfleet_store::costs::report_transcription(&st.pool, auth.user_id, &req).await?;
    let headers = budget_warning(&st, auth.user_id, [JobKind::Transcribe]).await;
    Ok((StatusCode::CREATED, headers, Json(row)))
}
