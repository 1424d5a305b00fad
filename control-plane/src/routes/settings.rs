//! Settings: the global retry policy, how transcription budgets are counted, and the price
//! table of usage costs.
use axum::Json;
use axum::extract::State;
use voxfleet_jobs::RetrySettings;
use voxfleet_store::budgets::BudgetSettings;
use voxfleet_store::costs::PriceTable;
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;
use voxfleet_store::audit_events::AuditEvent;

/// The retry setting (admins).
#[utoipa::path(get, path = "/v1/settings/retry", tag = "settings",
    responses((status = 200, body = RetrySettings), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_retry(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<RetrySettings>> {
    auth.require(Role::Admin)?;
    Ok(Json(voxfleet_store::settings::get_retry(&st.pool).await?))
}

/// Change the retry setting (admins). Takes effect at the next retry decision, without restarts.
#[utoipa::path(put, path = "/v1/settings/retry", tag = "settings", request_body = RetrySettings,
    responses((status = 200, body = RetrySettings), (status = 422, description = "max_retries outside 1-10", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_retry(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(s): ApiJson<RetrySettings>,
) -> ApiResult<Json<RetrySettings>> {
    auth.require(Role::Admin)?;
    s.validate()
        .map_err(|e| ApiError::new(Code::InvalidSetting, e))?;
    voxfleet_store::settings::put_retry(&st.pool, s, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsRetry,
        None,
        serde_json::to_value(s).unwrap_or_default(),
    )
    .await?;
    Ok(Json(s))
}

/// How transcription budgets are counted: the timezone a month starts in and the warning
/// share (admins).
#[utoipa::path(get, path = "/v1/settings/budgets", tag = "settings",
    responses((status = 200, body = BudgetSettings), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_budgets(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<BudgetSettings>> {
    auth.require(Role::Admin)?;
    Ok(Json(
        voxfleet_store::budgets::get_budget_settings(&st.pool).await?,
    ))
}

/// Change how budgets are counted (admins; audited `settings.budgets`).
#[utoipa::path(put, path = "/v1/settings/budgets", tag = "settings", request_body = BudgetSettings,
    responses((status = 200, body = BudgetSettings), (status = 422, description = "unknown timezone, warn_percent outside 1-99", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_budgets(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(s): ApiJson<BudgetSettings>,
) -> ApiResult<Json<BudgetSettings>> {
    auth.require(Role::Admin)?;
    s.validate()
        .map_err(|e| ApiError::new(Code::InvalidSetting, e))?;
    voxfleet_store::budgets::put_budget_settings(&st.pool, &s, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsBudgets,
        None,
        serde_json::to_value(&s).unwrap_or_default(),
    )
    .await?;
    Ok(Json(s))
}

/// Estimated prices by connector: US dollars per audio minute and per million LLM tokens
/// (admins). Seeded with OpenAI's per-minute transcription prices; `self_hosted` costs 0.
#[utoipa::path(get, path = "/v1/settings/prices", tag = "settings",
    responses((status = 200, body = PriceTable), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_prices(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<PriceTable>> {
    auth.require(Role::Admin)?;
    Ok(Json(voxfleet_store::costs::get_prices(&st.pool).await?))
}

/// Replace the price table (admins; audited `settings.prices`). Applies to usage written from
/// now on: rows already written keep the price they were written at.
#[utoipa::path(put, path = "/v1/settings/prices", tag = "settings", request_body = PriceTable,
    responses((status = 200, body = PriceTable), (status = 422, description = "a bad connector name, a price outside its range, or `self_hosted` above 0", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_prices(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(p): ApiJson<PriceTable>,
) -> ApiResult<Json<PriceTable>> {
    auth.require(Role::Admin)?;
    p.validate()
        .map_err(|e| ApiError::new(Code::InvalidSetting, e))?;
    voxfleet_store::costs::put_prices(&st.pool, &p, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsPrices,
        None,
        serde_json::to_value(&p).unwrap_or_default(),
    )
    .await?;
    Ok(Json(p))
}
