//! Retention (admin): its settings, a preview of what it would delete, a confirmed manual run,
//! and its status (last run, files deleted, next run). The deleting is the `retention` job's
//! (see the worker); the daily run is the scheduler's.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use voxfleet_jobs::{RetentionInput, Section};
use voxfleet_store::retention::Candidate;
use voxfleet_store::settings::RetentionSettings;
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, check_time};
use crate::routes::maintenance::{start_as_admin, stop_as_admin};
use crate::services::sections::{SectionView, section_view};
use voxfleet_store::audit_events::AuditEvent;

const SECTION: Section = Section::Retention;

/// Retention's settings.
#[utoipa::path(get, path = "/v1/settings/retention", tag = "settings",
    responses((status = 200, body = RetentionSettings), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_retention_settings(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<RetentionSettings>> {
    auth.require(Role::Admin)?;
    Ok(Json(
        voxfleet_store::settings::get_retention_settings(&st.pool).await?,
    ))
}

/// A change to the retention settings: the fields given replace the stored ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRetentionSettings {
    pub enabled: Option<bool>,
    pub retention_days: Option<u32>,
    pub run_time: Option<String>,
    pub timezone: Option<String>,
    pub delete_error_files: Option<bool>,
    /// Must be true to turn retention on: files older than the limit are then deleted for
    /// good every day.
    #[serde(default)]
    pub confirm: bool,
}

/// Change the retention settings. Turning retention on needs `"confirm": true` (409
/// `confirmation_required` otherwise); days outside 1–3650, a time not `HH:MM` or an unknown
/// timezone are 422 `invalid_setting`.
#[utoipa::path(put, path = "/v1/settings/retention", tag = "settings", request_body = PutRetentionSettings,
    responses((status = 200, body = RetentionSettings), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_retention_settings(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(p): ApiJson<PutRetentionSettings>,
) -> ApiResult<Json<RetentionSettings>> {
    auth.require(Role::Admin)?;
    let old = voxfleet_store::settings::get_retention_settings(&st.pool).await?;
    let new = RetentionSettings {
        enabled: p.enabled.unwrap_or(old.enabled),
        retention_days: p.retention_days.unwrap_or(old.retention_days),
        run_time: p.run_time.unwrap_or_else(|| old.run_time.clone()),
        timezone: p.timezone.unwrap_or_else(|| old.timezone.clone()),
        delete_error_files: p.delete_error_files.unwrap_or(old.delete_error_files),
    };
    new.validate()
        .map_err(|m| ApiError::new(Code::InvalidSetting, m))?;
    if new.enabled && !old.enabled && !p.confirm {
        return Err(ApiError::new(
            Code::ConfirmationRequired,
            format!(
                "turning retention on deletes every file older than {} days, every day, for good: send \"confirm\": true",
                new.retention_days
            ),
        ));
    }
    voxfleet_store::settings::put_retention_settings(&st.pool, &new, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsRetention,
        None,
        serde_json::to_value(&new).unwrap_or_default(),
    )
    .await?;
    Ok(Json(new))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// Evaluate the age limit as of this instant (RFC 3339) instead of now.
    pub as_of: Option<DateTime<Utc>>,
    /// Most files listed (1–1,000, default 100); the totals count them all.
    pub limit: Option<i64>,
}

/// One file retention would delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewFile {
    #[serde(flatten)]
    pub file: Candidate,
    /// Whole days since the upload, as of the preview's instant.
    pub age_days: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub as_of: DateTime<Utc>,
    /// Files created before this instant are old enough (the same wall-clock time
    /// `retention_days` calendar days earlier in the setting's timezone).
    pub cutoff: DateTime<Utc>,
    pub retention_days: u32,
    pub timezone: String,
    pub delete_error_files: bool,
    /// All eligible files, and their bytes.
    pub total_files: i64,
    pub total_bytes: i64,
    /// The oldest of them, up to `limit`.
    pub files: Vec<PreviewFile>,
}

/// What retention would delete under the current settings: title, owner, age, size and
/// status of each file, oldest first.
#[utoipa::path(get, path = "/v1/admin/retention/preview", tag = "maintenance", params(PreviewQuery),
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn preview(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult<Json<Preview>> {
    auth.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            format!("limit must be 1–1000, got {limit}"),
        ));
    }
    let s = voxfleet_store::settings::get_retention_settings(&st.pool).await?;
    let tz = voxfleet_jobs::schedule::parse_timezone(&s.timezone)
        .map_err(|m| ApiError::new(Code::InvalidSetting, m))?;
    let as_of = check_time("as_of", q.as_of, Code::InvalidQuery)?.unwrap_or_else(Utc::now);
    let cutoff = voxfleet_jobs::schedule::retention_cutoff(as_of, s.retention_days, tz);
    let (total_files, total_bytes) =
        voxfleet_store::retention::candidate_totals(&st.pool, cutoff, s.delete_error_files).await?;
    let files =
        voxfleet_store::retention::candidates(&st.pool, cutoff, s.delete_error_files, limit)
            .await?
            .into_iter()
            .map(|file| PreviewFile {
                age_days: (as_of - file.created_at).num_days(),
                file,
            })
            .collect();
    Ok(Json(Preview {
        as_of,
        cutoff,
        retention_days: s.retention_days,
        timezone: s.timezone,
        delete_error_files: s.delete_error_files,
        total_files,
        total_bytes,
        files,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionStatus {
    pub settings: RetentionSettings,
    /// The next daily run (null while retention is off).
    pub next_run: Option<DateTime<Utc>>,
    /// The latest run, scheduled or manual: state, report (files_deleted, bytes_freed,
    /// cutoff, ...), start and end, and its job.
    pub last_run: Option<SectionView>,
    /// Files an interrupted run left half-way (hidden already; the next run finishes them).
    pub pending_deletion: i64,
}

/// Retention's status: settings, last run with the files it deleted, next run.
#[utoipa::path(get, path = "/v1/admin/retention", tag = "maintenance",
    responses((status = 200, body = RetentionStatus), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn status(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<RetentionStatus>> {
    auth.require(Role::Admin)?;
    let settings = voxfleet_store::settings::get_retention_settings(&st.pool).await?;
    let next_run = settings
        .enabled
        .then(|| settings.daily().ok())
        .flatten()
        .map(|d| d.next_after(Utc::now()));
    Ok(Json(RetentionStatus {
        next_run,
        last_run: section_view(&st, SECTION).await?,
        pending_deletion: voxfleet_store::retention::tombstoned(&st.pool).await?.len() as i64,
        settings,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRetention {
    /// Must be true: the files are deleted for good.
    #[serde(default)]
    pub confirm: bool,
    /// Count what would go, delete nothing (no confirmation needed).
    #[serde(default)]
    pub dry_run: bool,
    /// Evaluate the age limit as of this instant instead of now.
    pub as_of: Option<DateTime<Utc>>,
    /// The crash drill (see the `retention` job); honoured only by `--allow-crash` workers.
    pub stall_after: Option<u32>,
}

/// Run retention now under the current settings (whether or not the daily run is on). Needs
/// `"confirm": true` unless `dry_run` (409 `confirmation_required`); one run at a time (409
/// `already_running`).
#[utoipa::path(post, path = "/v1/admin/retention/run", tag = "maintenance", request_body = RunRetention,
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<RunRetention>,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    auth.require(Role::Admin)?;
    if !r.confirm && !r.dry_run {
        return Err(ApiError::new(
            Code::ConfirmationRequired,
            "a retention run deletes files for good: send \"confirm\": true (or \"dry_run\": true)",
        ));
    }
    let input = RetentionInput {
        dry_run: r.dry_run,
        as_of: check_time("as_of", r.as_of, Code::InvalidInput)?,
        stall_after: r.stall_after,
    };
    start_as_admin(&st, &auth, input.into()).await
}

/// Stop the running retention between two files (409 `not_running` when none runs).
#[utoipa::path(post, path = "/v1/admin/retention/stop", tag = "maintenance",
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stop(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    stop_as_admin(&st, &auth, SECTION).await
}
