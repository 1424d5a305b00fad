//! The audit log: who changed what (settings, tokens, job re-runs).
use uuid::Uuid;

use crate::db::StoreError;

/// Writes one audit row on `db`: a pool, or a transaction so that a change and its record
/// commit together.
pub async fn record<'e>(
    db: impl sqlx::PgExecutor<'e>,
    actor: Option<Uuid>,
    action: &str,
    target: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}
