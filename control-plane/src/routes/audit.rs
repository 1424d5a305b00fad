//! The audit log for super_admins: `GET /v1/admin/audit` pages through it newest first with
//! filters (date range, event code or prefix, outcome, user); `GET /v1/admin/audit/export`
//! gives the same filtered rows as a CSV or JSON download named `audit-logs-YYYY-MM-DD.csv`
//! (or `.json`); `GET /v1/admin/audit/events` lists the event codes the filter takes.
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_store::audit::{AuditEntry, AuditFilter};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiQuery;
use voxfleet_store::audit_events::AuditEvent;

/// Most rows one export holds; narrow the filters for more.
pub const MAX_EXPORT_ROWS: i64 = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// From this instant (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Up to this instant, exclusive.
    pub to: Option<DateTime<Utc>>,
    /// An event code (`admin.user.role_change`) or a prefix ending in `.` (`admin.user.`).
    pub event: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// The user the actions were taken as.
    pub user: Option<Uuid>,
    /// 1–500, default 100 (not for exports).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (not for exports).
    pub cursor: Option<String>,
    /// Exports: `csv` (default) or `json`.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// An event code rows may carry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventInfo {
    /// The code (`admin.user.role_change`); `event` filters take it, or a prefix of it
    /// ending in `.` (`admin.user.`).
    pub code: String,
    /// What the event records.
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    /// Every event code, grouped by its first part.
    pub events: Vec<AuditEventInfo>,
}

/// The event codes of the audit log, for its `event` filter (super_admin).
#[utoipa::path(get, path = "/v1/admin/audit/events", tag = "audit",
    responses((status = 200, body = AuditEvents), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_audit_events(auth: Auth) -> ApiResult<Json<AuditEvents>> {
    auth.require(Role::SuperAdmin)?;
    let events = AuditEvent::ALL
        .iter()
        .map(|e| AuditEventInfo {
            code: e.code().to_owned(),
            description: e.description().to_owned(),
        })
        .collect();
    Ok(Json(AuditEvents { events }))
}

fn filter(q: &AuditQuery, limit: i64) -> ApiResult<AuditFilter> {
    for t in [q.from, q.to].into_iter().flatten() {
        if !crate::extract::time_in_range(&t) {
            return Err(ApiError::new(
                Code::InvalidQuery,
                "dates must be in years 1-9999",
            ));
        }
    }
    if let Some(o) = &q.outcome
        && !matches!(o.as_str(), "success" | "failure")
    {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "outcome must be `success` or `failure`",
        ));
    }
    if q.event
        .as_ref()
        .is_some_and(|e| e.is_empty() || e.len() > 100)
    {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "event must be 1-100 bytes",
        ));
    }
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::new(Code::InvalidQuery, "invalid cursor"))
        })
        .transpose()?;
    Ok(AuditFilter {
        from: q.from,
        to: q.to,
        event: q.event.clone(),
        outcome: q.outcome.clone(),
        user: q.user,
        before,
        limit,
    })
}

/// The audit log, newest first, filtered (super_admin).
#[utoipa::path(get, path = "/v1/admin/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_audit(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    auth.require(Role::SuperAdmin)?;
    if q.format.is_some() {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "`format` is for /v1/admin/audit/export",
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, "limit must be 1-500"));
    }
    let entries = voxfleet_store::audit::list(&st.pool, &filter(&q, limit)?).await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}

/// The filtered audit log as a download, newest first, at most 100,000 rows (super_admin):
/// `audit-logs-YYYY-MM-DD.csv` or `.json`.
#[utoipa::path(get, path = "/v1/admin/audit/export", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "text/csv or application/json, as an attachment"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_audit(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    auth.require(Role::SuperAdmin)?;
    if q.limit.is_some() || q.cursor.is_some() {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "an export takes every matching row: no `limit` or `cursor`",
        ));
    }
    let csv = match q.format.as_deref() {
        None | Some("csv") => true,
        Some("json") => false,
        Some(_) => {
            return Err(ApiError::new(
                Code::InvalidQuery,
                "format must be `csv` or `json`",
            ));
        }
    };
    let entries = voxfleet_store::audit::list(&st.pool, &filter(&q, MAX_EXPORT_ROWS)?).await?;
    let day = Utc::now().format("%Y-%m-%d");
    let (body, kind, ext) = if csv {
        (to_csv(&entries)?, "text/csv; charset=utf-8", "csv")
    } else {
        let body = serde_json::to_vec(&entries)
            .map_err(|e| ApiError::new(Code::Internal, format!("audit export: {e}")))?;
        (body, "application/json", "json")
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit-logs-{day}.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn to_csv(entries: &[AuditEntry]) -> ApiResult<Vec<u8>> {
    let fail = |e: csv::Error| ApiError::new(Code::Internal, format!("audit export: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "at",
        "event",
        "outcome",
        "user_id",
        "token_id",
        "target",
        "source_ip",
        "detail",
    ])
    .map_err(fail)?;
    let text = |u: Option<Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    for e in entries {
        w.write_record([
            e.id.to_string(),
            e.at.to_rfc3339(),
            e.event.clone(),
            e.outcome.clone(),
            text(e.user_id),
            text(e.token_id),
            e.target.clone().unwrap_or_default(),
            e.source_ip.clone().unwrap_or_default(),
            e.detail.as_ref().map(|d| d.to_string()).unwrap_or_default(),
        ])
        .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| ApiError::new(Code::Internal, format!("audit export: {e}")))
}
