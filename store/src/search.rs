//! What the search index and the maintenance jobs need from PostgreSQL: which files' index
//! documents are current, reference counts for integrity checks, the voiceprints a speaker
//! index is rebuilt from, migration failures, and each maintenance section's latest run.
//!
//! A file's documents are current when `indexed_version = index_version` (see
//! `migrations/0004_search.sql`): writers of transcripts, diarizations and speaker names bump
//! `index_version`; a reindex records the version it read.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;

/// A file with something to index (a transcript, speakers or both).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IndexFile {
    pub id: Uuid,
    pub owner: Option<Uuid>,
    pub filename: String,
    pub index_version: i64,
}

/// Files being deleted by retention are no longer indexable (a reindex removes their
/// documents instead of writing them back).
const INDEXABLE: &str =
    "(transcribed_at IS NOT NULL OR diarized_at IS NOT NULL) AND deleting_at IS NULL";
const PENDING: &str = "indexed_version IS DISTINCT FROM index_version";

/// Indexable files, oldest first: every one (`pending_only` false) or those whose documents
/// are missing or stale.
pub async fn indexable_files(
    pool: &PgPool,
    pending_only: bool,
) -> Result<Vec<IndexFile>, StoreError> {
    let filter = if pending_only { PENDING } else { "true" };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, owner, filename, index_version FROM files \
         WHERE {INDEXABLE} AND {filter} ORDER BY created_at, id"
    )))
    .fetch_all(pool)
    .await?)
}

/// The listed files that exist, whatever their state (a file with nothing to index yet gets
/// its documents removed by a reindex).
pub async fn files_by_id(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<IndexFile>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, owner, filename, index_version FROM files \
         WHERE id = ANY($1) AND deleting_at IS NULL ORDER BY created_at, id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// Records that the file's documents were written from `version` of its rows. A change made
/// meanwhile has bumped `index_version` past it, so the file stays pending.
pub async fn mark_indexed(
    pool: &PgPool,
    id: Uuid,
    version: i64,
    model: &str,
    chunks: usize,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE files SET indexed_version = $2, indexed_at = now(), index_model = $3, \
         index_chunks = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(version)
    .bind(model)
    .bind(i32::try_from(chunks).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks every file pending (the chunk index was recreated).
pub async fn mark_all_pending(pool: &PgPool) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE files SET indexed_version = NULL, indexed_at = NULL, index_model = NULL, \
             index_chunks = NULL",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// The search section's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IndexCounts {
    /// Files with a transcript or speakers.
    pub total: i64,
    /// Of those, files whose documents are current.
    pub indexed: i64,
    /// Files whose documents are missing or stale.
    pub pending: i64,
    /// Chunks the indexed files were given.
    pub chunks: i64,
    /// The text-embedding models of the indexed files' chunks.
    pub models: Vec<String>,
}

pub async fn index_counts(pool: &PgPool) -> Result<IndexCounts, StoreError> {
    let (total, indexed, chunks): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(*) FILTER (WHERE NOT ({PENDING})), \
             COALESCE(sum(index_chunks) FILTER (WHERE NOT ({PENDING})), 0) \
             FROM files WHERE {INDEXABLE}"
    )))
    .fetch_one(pool)
    .await?;
    let models: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT index_model FROM files \
         WHERE index_model IS NOT NULL AND {INDEXABLE} AND NOT ({PENDING}) ORDER BY 1"
    )))
    .fetch_all(pool)
    .await?;
    Ok(IndexCounts {
        total,
        indexed,
        pending: total - indexed,
        chunks,
        models,
    })
}

/// Of `ids`, the files that exist and have a transcript (what a transcript chunk refers to).
pub async fn transcribed_files(pool: &PgPool, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
    let rows: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM files WHERE id = ANY($1) AND transcribed_at IS NOT NULL",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Of `ids`, the speakers that exist.
pub async fn existing_speakers(pool: &PgPool, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
    let rows: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM speakers WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

/// PostgreSQL's side of an integrity check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReferenceCounts {
    pub files: i64,
    /// Files with a transcript.
    pub transcribed_files: i64,
    pub speakers: i64,
    /// Voiceprints by profile.
    pub voiceprints: std::collections::BTreeMap<String, i64>,
}

pub async fn reference_counts(pool: &PgPool) -> Result<ReferenceCounts, StoreError> {
    let (files, transcribed_files, speakers): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM files), \
         (SELECT count(*) FROM files WHERE transcribed_at IS NOT NULL), \
         (SELECT count(*) FROM speakers)",
    )
    .fetch_one(pool)
    .await?;
    let voiceprints = crate::speakers::voiceprint_counts(pool)
        .await?
        .into_iter()
        .collect();
    Ok(ReferenceCounts {
        files,
        transcribed_files,
        speakers,
        voiceprints,
    })
}

/// A speaker as an index document names it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SpeakerRef {
    pub id: Uuid,
    pub file_id: Uuid,
    pub owner: Option<Uuid>,
    pub label: String,
    pub name: Option<String>,
    /// Where the file's audio is.
    pub storage_key: String,
    /// Whether a voiceprint of the asked profile is stored.
    pub has_voiceprint: bool,
}

/// Every speaker, in file order, with whether it has a voiceprint of `profile`.
pub async fn speakers_for_profile(
    pool: &PgPool,
    profile: &str,
) -> Result<Vec<SpeakerRef>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.id, s.file_id, s.owner, s.label, s.name, f.storage_key, \
         EXISTS (SELECT 1 FROM speaker_embeddings e \
                 WHERE e.speaker_id = s.id AND e.profile = $1) AS has_voiceprint \
         FROM speakers s JOIN files f ON f.id = s.file_id \
         ORDER BY f.created_at, s.file_id, s.label",
    )
    .bind(profile)
    .fetch_all(pool)
    .await?)
}

/// The stored voiceprints of `profile` for these speakers.
pub async fn voiceprints(
    pool: &PgPool,
    profile: &str,
    speakers: &[Uuid],
) -> Result<Vec<crate::speakers::Voiceprint>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT speaker_id, profile, model, vector FROM speaker_embeddings \
         WHERE profile = $1 AND speaker_id = ANY($2)",
    )
    .bind(profile)
    .bind(speakers)
    .fetch_all(pool)
    .await?)
}

/// A speaker a migration or repair could not give a voiceprint.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EmbeddingFailure {
    pub speaker_id: Uuid,
    pub profile: String,
    pub error_code: String,
    pub message: String,
    pub attempts: i32,
    pub at: DateTime<Utc>,
}

pub async fn failures(pool: &PgPool, profile: &str) -> Result<Vec<EmbeddingFailure>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT speaker_id, profile, error_code, message, attempts, at \
         FROM embedding_failures WHERE profile = $1 ORDER BY at, speaker_id",
    )
    .bind(profile)
    .fetch_all(pool)
    .await?)
}

/// Records (or counts again) a failure for each speaker; speakers deleted meanwhile are
/// skipped.
pub async fn record_failures(
    pool: &PgPool,
    profile: &str,
    speakers: &[Uuid],
    code: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO embedding_failures (speaker_id, profile, error_code, message) \
         SELECT id, $2, $3, $4 FROM speakers WHERE id = ANY($1) \
         ON CONFLICT (speaker_id, profile) DO UPDATE SET error_code = EXCLUDED.error_code, \
         message = EXCLUDED.message, attempts = embedding_failures.attempts + 1, at = now()",
    )
    .bind(speakers)
    .bind(profile)
    .bind(code)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets failures of `profile`: all of them, or only these speakers'.
pub async fn clear_failures(
    pool: &PgPool,
    profile: &str,
    speakers: Option<&[Uuid]>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM embedding_failures WHERE profile = $1 \
         AND ($2::uuid[] IS NULL OR speaker_id = ANY($2))",
    )
    .bind(profile)
    .bind(speakers)
    .execute(pool)
    .await?
    .rows_affected())
}

/// The latest run of a maintenance section.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MaintenanceRun {
    pub section: String,
    pub job_id: Option<Uuid>,
    pub state: String,
    #[schema(value_type = Object)]
    pub report: Value,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get_run(pool: &PgPool, section: &str) -> Result<Option<MaintenanceRun>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT section, job_id, state, report, started_at, finished_at, updated_at \
         FROM maintenance_runs WHERE section = $1",
    )
    .bind(section)
    .fetch_optional(pool)
    .await?)
}

/// Records that `job` runs `section` now (replacing the previous run's row).
pub async fn start_run(
    pool: &PgPool,
    section: &str,
    job: Uuid,
    report: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO maintenance_runs (section, job_id, state, report, started_at) \
         VALUES ($1, $2, 'running', $3, now()) \
         ON CONFLICT (section) DO UPDATE SET job_id = $2, state = 'running', report = $3, \
         started_at = CASE WHEN maintenance_runs.job_id = $2 \
                           THEN maintenance_runs.started_at ELSE now() END, \
         finished_at = NULL, updated_at = now()",
    )
    .bind(section)
    .bind(job)
    .bind(report)
    .execute(pool)
    .await?;
    Ok(())
}

/// Updates the run of `job` (a newer run's row is left alone): its report, and its state
/// (`finished` also stamps the end).
pub async fn update_run(
    pool: &PgPool,
    section: &str,
    job: Uuid,
    state: &str,
    report: &Value,
    finished: bool,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE maintenance_runs SET state = $3, report = $4, updated_at = now(), \
         finished_at = CASE WHEN $5 THEN now() ELSE finished_at END \
         WHERE section = $1 AND job_id = $2",
    )
    .bind(section)
    .bind(job)
    .bind(state)
    .bind(report)
    .bind(finished)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

/// Sets a section's state and report whatever job ran it (the migration's finalize and
/// rollback, which are not jobs).
pub async fn set_run_state(
    pool: &PgPool,
    section: &str,
    state: &str,
    report: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO maintenance_runs (section, state, report, finished_at) \
         VALUES ($1, $2, $3, now()) \
         ON CONFLICT (section) DO UPDATE SET state = $2, report = $3, updated_at = now(), \
         finished_at = now()",
    )
    .bind(section)
    .bind(state)
    .bind(report)
    .execute(pool)
    .await?;
    Ok(())
}
