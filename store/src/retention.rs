//! Retention's view of the files table: which files are old enough to go, and the three steps
//! that delete one without ever leaving it half there.
//!
//! 1. [`mark_deleting`] sets the file's tombstone (`deleting_at`) in the same statement that
//!    re-checks it is still eligible. From then on the API neither lists nor serves it.
//! 2. The caller removes what lives outside PostgreSQL: index documents, the storage object.
//!    Both deletions are idempotent.
//! 3. [`finish_delete`] removes the rows (segments, speakers and voiceprints go with them by
//!    cascade). They go last because they hold the storage key.
//!
//! A run killed anywhere in between leaves a tombstoned file, hidden from users. Every run
//! begins with [`tombstoned`], so the next one (or the same job's retry) finishes it.
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;
use crate::files::{STATUS_SQL, deletes_object_sql};

/// A file retention would delete.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Candidate {
    pub id: Uuid,
    /// The file's name as uploaded (its title).
    pub filename: String,
    pub owner: Option<Uuid>,
    /// The owner's name, when the user still exists.
    pub owner_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub size_bytes: i64,
    /// `transcribed`, `uploaded`, `cancelled`, or `failed` (only with delete_error_files).
    pub status: String,
}

/// Which files are eligible, besides their age.
///
/// A file whose transcription or diarization is queued or running is never deleted; a failed
/// one only when the settings say so. `$1` is the cutoff, `$2` whether failed files go too.
fn eligible_sql() -> String {
    format!(
        "(f.deleting_at IS NULL AND f.created_at < $1 \
          AND (({STATUS_SQL}) IN ('transcribed', 'uploaded', 'cancelled') \
               OR ($2 AND ({STATUS_SQL}) = 'failed')) \
          AND NOT EXISTS (SELECT 1 FROM jobs dj WHERE dj.id = f.diarization_job \
                          AND dj.status IN ('queued', 'running', 'retrying')))"
    )
}

/// Eligible files created before `cutoff`, oldest first, at most `limit`.
pub async fn candidates(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    delete_failed: bool,
    limit: i64,
) -> Result<Vec<Candidate>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT f.id, f.filename, f.owner, t.name AS owner_name, f.created_at, f.size_bytes, \
                {STATUS_SQL} AS status \
         FROM files f LEFT JOIN jobs j ON j.id = f.transcription_job \
              LEFT JOIN users t ON t.id = f.owner \
         WHERE {} ORDER BY f.created_at, f.id LIMIT $3",
        eligible_sql()
    )))
    .bind(cutoff)
    .bind(delete_failed)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How many files and bytes are eligible.
pub async fn candidate_totals(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    delete_failed: bool,
) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), coalesce(sum(f.size_bytes), 0)::bigint \
         FROM files f LEFT JOIN jobs j ON j.id = f.transcription_job WHERE {}",
        eligible_sql()
    )))
    .bind(cutoff)
    .bind(delete_failed)
    .fetch_one(pool)
    .await?)
}

/// A tombstoned file: what is needed to finish deleting it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Doomed {
    pub id: Uuid,
    pub storage_key: String,
    pub size_bytes: i64,
    /// Whether its storage object goes with it (see [`crate::files::Deleted`]): the record
    /// owns it and no other record uses it.
    pub delete_object: bool,
}

/// Step 1: tombstones the file if it is still eligible (its status may have changed since it
/// was listed); `None` when it is not, or is gone.
pub async fn mark_deleting(
    pool: &PgPool,
    id: Uuid,
    cutoff: DateTime<Utc>,
    delete_failed: bool,
) -> Result<Option<Doomed>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE files AS t SET deleting_at = now() WHERE t.id = $3 AND t.id IN \
           (SELECT f.id FROM files f LEFT JOIN jobs j ON j.id = f.transcription_job \
            WHERE f.id = $3 AND ({})) \
         RETURNING t.id, t.storage_key, t.size_bytes, ({}) AS delete_object",
        eligible_sql(),
        deletes_object_sql("t")
    )))
    .bind(cutoff)
    .bind(delete_failed)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Step 1 for every file of `owner` (a user being deleted): tombstones those not yet
/// tombstoned, whatever their state, and returns all of them, oldest tombstone first.
pub async fn tombstone_owner(pool: &PgPool, owner: Uuid) -> Result<Vec<Doomed>, StoreError> {
    sqlx::query("UPDATE files SET deleting_at = now() WHERE owner = $1 AND deleting_at IS NULL")
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT f.id, f.storage_key, f.size_bytes, ({}) AS delete_object \
             FROM files f WHERE f.owner = $1 AND f.deleting_at IS NOT NULL \
             ORDER BY f.deleting_at, f.id",
        deletes_object_sql("f")
    )))
    .bind(owner)
    .fetch_all(pool)
    .await?)
}

/// Files an earlier run tombstoned and did not finish, oldest tombstone first.
pub async fn tombstoned(pool: &PgPool) -> Result<Vec<Doomed>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT f.id, f.storage_key, f.size_bytes, ({}) AS delete_object \
             FROM files f WHERE f.deleting_at IS NOT NULL ORDER BY f.deleting_at, f.id",
        deletes_object_sql("f")
    )))
    .fetch_all(pool)
    .await?)
}

/// Step 3: deletes a tombstoned file's rows; false when they were already gone.
pub async fn finish_delete(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("DELETE FROM files WHERE id = $1 AND deleting_at IS NOT NULL")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}
