//! The numbers behind the admin statistics and task-health views, each with its definition.
//! Everything is read from PostgreSQL, the jobs history's source of truth (a job's state
//! reaches it from Redis within seconds). Files being deleted by retention (`deleting_at` set)
//! are already gone for users, so they are left out of every file, segment and speaker count.
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;

/// Accounts (people and service accounts); disabled ones are left out.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserStats {
    /// Accounts not disabled.
    pub total: i64,
    /// Of those, created at or after the window start.
    pub recent: i64,
    pub users: i64,
    pub admins: i64,
    pub super_admins: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FileStats {
    /// Files not being deleted.
    pub total: i64,
    /// Of those, uploaded at or after the window start.
    pub recent_uploads: i64,
    /// Sum of the probed durations (files whose probe failed count 0).
    pub total_audio_seconds: f64,
    /// Transcript segments of those files.
    pub segments: i64,
}

/// Job counts by status and the derived rates, over the whole jobs history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskStats {
    pub total: i64,
    pub queued: i64,
    /// Waiting out a retry backoff.
    pub retrying: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// succeeded / (succeeded + failed): cancelled and unfinished jobs are left out; null
    /// when no job has finished.
    pub success_rate: Option<f64>,
    /// Mean of finished_at − started_at, in seconds, over succeeded and failed jobs. A job's
    /// started_at is the start of its last attempt, so this is the last attempt's run time.
    pub avg_processing_seconds: Option<f64>,
    /// Mean of started_at − created_at, in seconds, over jobs that have started (whatever
    /// their status now). For a retried job it includes the earlier attempts and backoff.
    pub avg_queue_wait_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SpeakerStats {
    /// Speakers diarization found, in files not being deleted.
    pub total: i64,
    /// Files with at least one speaker.
    pub files_with_speakers: i64,
    /// total / files_with_speakers (files never diarized do not pull the mean down); null
    /// when no file has speakers.
    pub average_per_file: Option<f64>,
}

/// `since` starts the window of the `recent` count.
pub async fn users(pool: &PgPool, since: DateTime<Utc>) -> Result<UserStats, StoreError> {
    let (total, recent, users, admins, super_admins): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE created_at >= $1), \
                count(*) FILTER (WHERE role = 'user'), count(*) FILTER (WHERE role = 'admin'), \
                count(*) FILTER (WHERE role = 'super_admin') \
             FROM users WHERE NOT disabled AND deleting_at IS NULL",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(UserStats {
        total,
        recent,
        users,
        admins,
        super_admins,
    })
}

/// `since` starts the window of `recent_uploads`.
pub async fn files(pool: &PgPool, since: DateTime<Utc>) -> Result<FileStats, StoreError> {
    let (total, recent_uploads, total_audio_seconds, segments): (i64, i64, f64, i64) =
        sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE created_at >= $1), \
                COALESCE(sum(duration_s), 0)::float8, \
                (SELECT count(*) FROM transcript_segments s JOIN files sf ON sf.id = s.file_id \
                 WHERE sf.deleting_at IS NULL) \
             FROM files WHERE deleting_at IS NULL",
        )
        .bind(since)
        .fetch_one(pool)
        .await?;
    Ok(FileStats {
        total,
        recent_uploads,
        total_audio_seconds,
        segments,
    })
}

pub async fn tasks(pool: &PgPool) -> Result<TaskStats, StoreError> {
    #[allow(clippy::type_complexity)]
    let (total, queued, retrying, running, succeeded, failed, cancelled, processing, wait): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<f64>,
        Option<f64>,
    ) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 'queued'), \
            count(*) FILTER (WHERE status = 'retrying'), count(*) FILTER (WHERE status = 'running'), \
            count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'), \
            count(*) FILTER (WHERE status = 'cancelled'), \
            (avg(EXTRACT(EPOCH FROM finished_at - started_at)) FILTER (WHERE \
                status IN ('succeeded', 'failed') AND started_at IS NOT NULL \
                AND finished_at IS NOT NULL))::float8, \
            (avg(EXTRACT(EPOCH FROM started_at - created_at)) FILTER (WHERE \
                started_at IS NOT NULL))::float8 \
         FROM jobs",
    )
    .fetch_one(pool)
    .await?;
    let finished = succeeded + failed;
    Ok(TaskStats {
        total,
        queued,
        retrying,
        running,
        succeeded,
        failed,
        cancelled,
        success_rate: (finished > 0).then(|| succeeded as f64 / finished as f64),
        avg_processing_seconds: processing,
        avg_queue_wait_seconds: wait,
    })
}

pub async fn speakers(pool: &PgPool) -> Result<SpeakerStats, StoreError> {
    let (total, files_with_speakers): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT s.file_id) FROM speakers s \
         JOIN files f ON f.id = s.file_id WHERE f.deleting_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(SpeakerStats {
        total,
        files_with_speakers,
        average_per_file: (files_with_speakers > 0)
            .then(|| total as f64 / files_with_speakers as f64),
    })
}

/// The file a job works on: `input->>'file_id'` when it is a uuid.
const FILE_ID_SQL: &str = "CASE WHEN j.input->>'file_id' ~* \
    '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' \
    THEN (j.input->>'file_id')::uuid END";

/// One job of the recent-activity list.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RecentJob {
    pub id: Uuid,
    pub kind: String,
    pub queue: String,
    pub status: String,
    pub attempts: i32,
    pub worker: Option<String>,
    pub error_code: Option<String>,
    /// The file in the job's input, if any.
    pub file_id: Option<Uuid>,
    /// That file's name, while the file exists.
    pub filename: Option<String>,
    /// finished_at − started_at (the last attempt), for jobs that have finished.
    pub duration_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The newest `limit` jobs, newest first.
pub async fn recent_jobs(pool: &PgPool, limit: i64) -> Result<Vec<RecentJob>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT j.id, j.kind, j.queue, j.status, j.attempts, j.worker, j.error_code, \
            {FILE_ID_SQL} AS file_id, f.filename, \
            EXTRACT(EPOCH FROM j.finished_at - j.started_at)::float8 AS duration_seconds, \
            j.created_at, j.started_at, j.finished_at \
         FROM jobs j LEFT JOIN files f ON f.id = {FILE_ID_SQL} AND f.deleting_at IS NULL \
         ORDER BY j.created_at DESC, j.id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// A job PostgreSQL records as running.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunningJob {
    pub id: Uuid,
    pub kind: String,
    pub queue: String,
    pub worker: Option<String>,
    pub file_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
}

/// Every job recorded as running (at most `limit`), longest running first.
pub async fn running_jobs(pool: &PgPool, limit: i64) -> Result<Vec<RunningJob>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT j.id, j.kind, j.queue, j.worker, {FILE_ID_SQL} AS file_id, j.created_at, \
            j.started_at \
         FROM jobs j WHERE j.status = 'running' \
         ORDER BY COALESCE(j.started_at, j.created_at), j.id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
