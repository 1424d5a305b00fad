//! LLM token budgets for the platform's own LLM work (summaries, chat, titles, event
//! extraction), acting for a user (with `X-Voxfleet-User`, or the user's own token): reserve
//! before a call (429 `budget_exceeded` past the monthly budget), then commit the real count
//! or release; or report a call after the fact. From the warning share on, answers carry
//! `X-Voxfleet-Budget-Warning`. `GET /v1/me` shows the budget.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_store::llm_budget::{LlmError, LlmUsage};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;
use crate::services::submit::BUDGET_WARNING;
use voxfleet_store::audit_events::AuditEvent;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmCall {
    /// What the tokens are for: `summary`, `chat`, `title`, `events`, … (1-64 of letters,
    /// digits, `_`, `-`, `.`).
    pub operation: String,
    /// Tokens (prompt and completion together), 0-100,000,000.
    pub tokens: i64,
    /// Who runs the call, priced in `/v1/settings/prices`; default `self_hosted` (costs 0).
    pub connector: Option<String>,
}

impl LlmCall {
    fn call(&self) -> voxfleet_store::llm_budget::LlmCall<'_> {
        voxfleet_store::llm_budget::LlmCall {
            operation: &self.operation,
            tokens: self.tokens,
            connector: self
                .connector
                .as_deref()
                .unwrap_or(voxfleet_store::costs::SELF_HOSTED),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmCommit {
    /// The real count, which may differ from the reservation.
    pub tokens: i64,
}

impl From<LlmError> for ApiError {
    fn from(e: LlmError) -> Self {
        let code = match e {
            LlmError::Store(s) => return s.into(),
            LlmError::Invalid(_) => Code::InvalidInput,
            LlmError::BudgetExceeded { .. } => Code::BudgetExceeded,
            LlmError::NotFound => Code::NotFound,
            LlmError::NotOpen(_) => Code::ReservationClosed,
            LlmError::UnknownConnector(_) => Code::UnknownConnector,
        };
        ApiError::new(code, e.to_string())
    }
}

/// The budget warning header for `user`'s token budget, when due.
async fn warning(st: &AppState, user: Uuid) -> HeaderMap {
    let mut h = HeaderMap::new();
    match voxfleet_store::llm_budget::status(&st.pool, user, Utc::now()).await {
        Ok(b) if b.warning => {
            let text = format!(
                "LLM token budget {:.0}% used ({} of {} tokens this month)",
                b.percent.unwrap_or(0.0),
                b.used + b.reserved,
                b.budget.unwrap_or(0)
            );
            if let Ok(v) = HeaderValue::from_str(&text) {
                h.insert(BUDGET_WARNING, v);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "token budget status unavailable"),
    }
    h
}

fn reservation_id(id: &str) -> ApiResult<Uuid> {
    id.parse().map_err(|_| ApiError::not_found("reservation"))
}

/// Reserve tokens before an LLM call (refused with 429 `budget_exceeded` when it would pass
/// the user's monthly token budget). Commit or release it after; an open reservation stops
/// counting after an hour.
#[utoipa::path(post, path = "/v1/me/llm/reservations", tag = "users", request_body = LlmCall,
    responses((status = 201, body = LlmUsage), (status = 422, body = ErrorBody), (status = 429, description = "`budget_exceeded`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reserve(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<LlmCall>,
) -> ApiResult<(StatusCode, HeaderMap, Json<LlmUsage>)> {
    let row = match voxfleet_store::llm_budget::reserve(&st.pool, auth.user_id, &req.call()).await {
        Err(e @ LlmError::BudgetExceeded { .. }) => {
            voxfleet_store::audit::record_failure(
                &st.pool,
                auth.actor(),
                AuditEvent::BudgetLlmBlock,
                Some(&auth.user_id.to_string()),
                serde_json::json!({"operation": req.operation, "tokens": req.tokens}),
            )
            .await?;
            return Err(e.into());
        }
        other => other?,
    };
    Ok((
        StatusCode::CREATED,
        warning(&st, auth.user_id).await,
        Json(row),
    ))
}

/// Commit a reservation with the real count.
#[utoipa::path(post, path = "/v1/me/llm/reservations/{id}/commit", tag = "users", params(("id" = String, Path)), request_body = LlmCommit,
    responses((status = 200, body = LlmUsage), (status = 404, body = ErrorBody), (status = 409, description = "`reservation_closed`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn commit(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LlmCommit>,
) -> ApiResult<(HeaderMap, Json<LlmUsage>)> {
    let row = voxfleet_store::llm_budget::commit(
        &st.pool,
        auth.user_id,
        reservation_id(&id)?,
        req.tokens,
    )
    .await?;
    Ok((warning(&st, auth.user_id).await, Json(row)))
}

/// Release a reservation whose call did not happen.
#[utoipa::path(delete, path = "/v1/me/llm/reservations/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = LlmUsage), (status = 404, body = ErrorBody), (status = 409, description = "`reservation_closed`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<LlmUsage>> {
    Ok(Json(
        voxfleet_store::llm_budget::release(&st.pool, auth.user_id, reservation_id(&id)?).await?,
    ))
}

/// Report an LLM call after the fact: its tokens count at once (never refused: they were
/// spent).
#[utoipa::path(post, path = "/v1/me/llm/usage", tag = "users", request_body = LlmCall,
    responses((status = 201, body = LlmUsage), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn report(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<LlmCall>,
) -> ApiResult<(StatusCode, HeaderMap, Json<LlmUsage>)> {
    let row = voxfleet_store::llm_budget::report(&st.pool, auth.user_id, &req.call()).await?;
    Ok((
        StatusCode::CREATED,
        warning(&st, auth.user_id).await,
        Json(row),
    ))
}
