//! The recurring jobs: their state (`GET /v1/schedules`) and the interval settings
//! (`GET/PUT /v1/settings/schedules`; retention's daily time is part of the retention setting).
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_store::settings::ScheduleSettings;
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;
use crate::scheduler::{Cadence, ScheduleName, cadence};
use voxfleet_store::audit_events::AuditEvent;

/// One recurring job.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// `retention`, `collect_stats`, `integrity` or `consistency`.
    pub name: String,
    pub enabled: bool,
    /// `daily 02:30 America/New_York`, `every 60 s`, or `off`.
    pub cadence: String,
    /// The latest slot (due instant) that fired, or the baseline it started from.
    pub last_slot: Option<DateTime<Utc>>,
    /// When that slot fired (absent while only the baseline is recorded).
    pub last_fired_at: Option<DateTime<Utc>>,
    /// The control-plane replica that fired it.
    pub fired_by: Option<String>,
    pub last_job_id: Option<Uuid>,
    /// When it fires next (absent while off).
    pub next_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulesView {
    pub schedules: Vec<ScheduleView>,
}

/// The recurring jobs, their last run and their next (admins).
#[utoipa::path(get, path = "/v1/schedules", tag = "settings",
    responses((status = 200, body = SchedulesView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_schedules(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<SchedulesView>> {
    auth.require(Role::Admin)?;
    let retention = voxfleet_store::settings::get_retention_settings(&st.pool).await?;
    let settings = voxfleet_store::settings::get_schedule_settings(&st.pool).await?;
    let rows = voxfleet_store::schedules::list(&st.pool).await?;
    let now = Utc::now();
    let schedules = ScheduleName::ALL
        .into_iter()
        .map(|name| {
            let c = cadence(name, &retention, &settings);
            let row = rows.iter().find(|r| r.name == name.as_str());
            ScheduleView {
                name: name.as_str().into(),
                enabled: c != Cadence::Off,
                cadence: c.describe(),
                last_slot: row.map(|r| r.slot),
                last_fired_at: row.and_then(|r| r.fired_at),
                fired_by: row.and_then(|r| r.fired_by.clone()),
                last_job_id: row.and_then(|r| r.job_id),
                next_due: c.next_due(row, now),
            }
        })
        .collect();
    Ok(Json(SchedulesView { schedules }))
}

/// The interval schedules (admins).
#[utoipa::path(get, path = "/v1/settings/schedules", tag = "settings",
    responses((status = 200, body = ScheduleSettings), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_schedule_settings(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<ScheduleSettings>> {
    auth.require(Role::Admin)?;
    Ok(Json(
        voxfleet_store::settings::get_schedule_settings(&st.pool).await?,
    ))
}

/// Change the interval schedules (admins). A changed interval starts from the current slot:
/// it first fires at the next one.
#[utoipa::path(put, path = "/v1/settings/schedules", tag = "settings", request_body = ScheduleSettings,
    responses((status = 200, body = ScheduleSettings), (status = 422, description = "an interval out of range", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_schedule_settings(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(s): ApiJson<ScheduleSettings>,
) -> ApiResult<Json<ScheduleSettings>> {
    auth.require(Role::Admin)?;
    s.validate()
        .map_err(|m| ApiError::new(Code::InvalidSetting, m))?;
    voxfleet_store::settings::put_schedule_settings(&st.pool, &s, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsSchedules,
        None,
        serde_json::to_value(&s).unwrap_or_default(),
    )
    .await?;
    Ok(Json(s))
}
