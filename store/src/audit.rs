//! The audit log: who changed what (settings, tokens, users, job re-runs). Each row names
//! the acting token (`actor`), the user it acted as (`user_id`: the token's own user, or the
//! user a delegating token acted for), the outcome and the address the request came from.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit_events::AuditEvent;
use crate::db::StoreError;

/// Who acts: the token presented, the user it acts as and the caller's address. All None
/// for the command line and the scheduler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actor {
    pub token: Option<Uuid>,
    pub user: Option<Uuid>,
    pub ip: Option<IpAddr>,
}

/// Writes one audit row on `db` (a pool, or a transaction so that a change and its record
/// commit together), naming the acting token; the user is the token's own.
pub async fn record<'e>(
    db: impl sqlx::PgExecutor<'e>,
    actor: Option<Uuid>,
    action: AuditEvent,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (actor, user_id, action, target, detail) \
         VALUES ($1, (SELECT user_id FROM api_tokens WHERE id = $1), $2, $3, $4)",
    )
    .bind(actor)
    .bind(action.code())
    .bind(target)
    .bind(detail)
    .execute(db)
    .await?;
    Ok(())
}

/// As [`record`], with the user and address the caller names (a delegated request acts for
/// a user other than the token's).
pub async fn record_as<'e>(
    db: impl sqlx::PgExecutor<'e>,
    actor: Actor,
    action: AuditEvent,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    insert(db, actor, action, target, detail, "success").await
}

/// As [`record_as`], for an action that was refused (`outcome` `failure`).
pub async fn record_failure<'e>(
    db: impl sqlx::PgExecutor<'e>,
    actor: Actor,
    action: AuditEvent,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    insert(db, actor, action, target, detail, "failure").await
}

async fn insert<'e>(
    db: impl sqlx::PgExecutor<'e>,
    actor: Actor,
    action: AuditEvent,
    target: Option<&str>,
    detail: serde_json::Value,
    outcome: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (actor, user_id, source_ip, action, target, detail, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(actor.token)
    .bind(actor.user)
    .bind(actor.ip.map(|ip| ip.to_string()))
    .bind(action.code())
    .bind(target)
    .bind(detail)
    .bind(outcome)
    .execute(db)
    .await?;
    Ok(())
}

/// One row of the audit log as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The event code, e.g. `admin.user.role_change`, `token.revoke`.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The user the action was taken as.
    pub user_id: Option<Uuid>,
    /// The token presented.
    pub token_id: Option<Uuid>,
    /// What it was done to (an id), when anything.
    pub target: Option<String>,
    pub source_ip: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// Which rows [`list`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    /// An event code, or a prefix ending in `.` (`admin.user.` for every user event).
    pub event: Option<String>,
    pub outcome: Option<String>,
    pub user: Option<Uuid>,
    /// Keyset cursor: rows with a smaller id.
    pub before: Option<i64>,
    pub limit: i64,
}

/// The rows matching `filter`, newest first.
pub async fn list(pool: &PgPool, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
    let (exact, prefix) = match &filter.event {
        Some(e) if e.ends_with('.') => (None, Some(e.clone())),
        Some(e) => (Some(e.clone()), None),
        None => (None, None),
    };
    Ok(sqlx::query_as(
        "SELECT id, at, action AS event, outcome, user_id, actor AS token_id, target, \
                source_ip, detail FROM audit_log \
         WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2) \
           AND ($3::text IS NULL OR action = $3) \
           AND ($4::text IS NULL OR left(action, length($4)) = $4) \
           AND ($5::text IS NULL OR outcome = $5) AND ($6::uuid IS NULL OR user_id = $6) \
           AND ($7::bigint IS NULL OR id < $7) \
         ORDER BY id DESC LIMIT $8",
    )
    .bind(filter.from)
    .bind(filter.to)
    .bind(exact)
    .bind(prefix)
    .bind(&filter.outcome)
    .bind(filter.user)
    .bind(filter.before)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?)
}
