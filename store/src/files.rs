//! Media file records, their transcripts and the usage they consumed.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;

/// A file's state, derived from its latest transcription job and transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Stored; nothing asked of it yet.
    Uploaded,
    Queued,
    Processing,
    Transcribed,
    Failed,
    Cancelled,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploaded => "uploaded",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Transcribed => "transcribed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status from the latest job's status and whether a transcript exists (the same
    /// rules as the SQL below, for callers that hold a fresher job status).
    pub fn derive(job: Option<voxfleet_jobs::JobStatus>, transcribed: bool) -> Self {
        use voxfleet_jobs::JobStatus as J;
        match job {
            Some(J::Queued) => Self::Queued,
            Some(J::Running | J::Retrying) => Self::Processing,
            _ if transcribed => Self::Transcribed,
            Some(J::Failed) => Self::Failed,
            Some(J::Cancelled) => Self::Cancelled,
            _ => Self::Uploaded,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "transcribed" => Self::Transcribed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Uploaded,
        }
    }
}

/// The status as SQL over `files f LEFT JOIN jobs j ON j.id = f.transcription_job`: a job in
/// flight wins, then a transcript, then how the last job ended.
pub(crate) const STATUS_SQL: &str = "CASE \
    WHEN j.status = 'queued' THEN 'queued' \
    WHEN j.status IN ('running', 'retrying') THEN 'processing' \
    WHEN f.transcribed_at IS NOT NULL THEN 'transcribed' \
    WHEN j.status = 'failed' THEN 'failed' \
    WHEN j.status = 'cancelled' THEN 'cancelled' \
    ELSE 'uploaded' END";

const COLUMNS: &str = "f.id, f.owner, f.filename, f.content_type, f.size_bytes, f.sha256, \
    f.storage_key, f.owns_object, f.duration_s, f.audio, f.probe_error, f.transcription_job, f.transcript_model, \
    f.language, f.transcribed_at, f.created_at, j.queue AS job_queue, j.status AS job_status, \
    j.error_code AS job_error_code, j.error_message AS job_error_message, \
    f.diarization_job, f.diarization_model, f.diarized_at, \
    (SELECT count(*) FROM speakers sp WHERE sp.file_id = f.id) AS speakers";

/// Builds SQL from the constant fragments above (never from input), hence "safe".
macro_rules! q {
    ($($t:tt)*) => {
        sqlx::AssertSqlSafe(format!($($t)*))
    };
}

/// What is known of a file from its upload: identity, storage and probe.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredFile {
    pub id: Uuid,
    pub owner: Option<Uuid>,
    pub filename: String,
    pub content_type: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_key: String,
    /// Whether deleting this record deletes its storage object: true for uploads; for an
    /// object registered by URI only when an admin asked for it (`delete_with_file`). Even
    /// then the object goes only when no other record still uses it.
    pub owns_object: bool,
    pub duration_s: Option<f64>,
    pub audio: Option<Value>,
    pub probe_error: Option<String>,
}

/// A file with its transcription state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRecord {
    #[sqlx(flatten)]
    pub file: StoredFile,
    pub transcription_job: Option<Uuid>,
    pub transcript_model: Option<String>,
    pub language: Option<String>,
    pub transcribed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: StatusColumn,
    /// The latest job's queue and status as PostgreSQL has them (Redis may be ahead).
    pub job_queue: Option<String>,
    pub job_status: Option<String>,
    pub job_error_code: Option<String>,
    pub job_error_message: Option<String>,
    /// The latest diarization job and the diarization it produced (see [`crate::speakers`]).
    pub diarization_job: Option<Uuid>,
    pub diarization_model: Option<String>,
    pub diarized_at: Option<DateTime<Utc>>,
    /// How many speakers the file's diarization found.
    pub speakers: i64,
}

/// The derived status column (a newtype so sqlx can decode it from text).
#[derive(Debug, Clone, Copy)]
pub struct StatusColumn(pub FileStatus);

impl From<String> for StatusColumn {
    fn from(s: String) -> Self {
        StatusColumn(FileStatus::parse(&s))
    }
}

pub async fn insert_file(pool: &PgPool, f: &StoredFile) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO files (id, owner, filename, content_type, size_bytes, sha256, storage_key, \
         duration_s, audio, probe_error, owns_object) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(f.id)
    .bind(f.owner)
    .bind(&f.filename)
    .bind(&f.content_type)
    .bind(f.size_bytes)
    .bind(&f.sha256)
    .bind(&f.storage_key)
    .bind(f.duration_s)
    .bind(&f.audio)
    .bind(&f.probe_error)
    .bind(f.owns_object)
    .execute(pool)
    .await?;
    Ok(())
}

/// A file, unless retention has begun deleting it (then it is gone for the API already).
pub async fn get_file(pool: &PgPool, id: Uuid) -> Result<Option<FileRecord>, StoreError> {
    Ok(
        sqlx::query_as(q!("SELECT {COLUMNS}, {STATUS_SQL} AS status FROM files f \
         LEFT JOIN jobs j ON j.id = f.transcription_job \
         WHERE f.id = $1 AND f.deleting_at IS NULL"))
        .bind(id)
        .fetch_optional(pool)
        .await?,
    )
}

#[derive(Debug, Default, Clone)]
pub struct FileFilter {
    pub owner: Option<Uuid>,
    pub status: Option<FileStatus>,
    /// Files created strictly before this (created_at, id): keyset pagination.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Files, newest first.
pub async fn list_files(pool: &PgPool, f: &FileFilter) -> Result<Vec<FileRecord>, StoreError> {
    let (at, id) = f.before.unzip();
    Ok(sqlx::query_as(q!(
        "SELECT * FROM (SELECT {COLUMNS}, {STATUS_SQL} AS status FROM files f \
         LEFT JOIN jobs j ON j.id = f.transcription_job \
         WHERE ($1::uuid IS NULL OR f.owner = $1) AND f.deleting_at IS NULL \
           AND ($3::timestamptz IS NULL OR (f.created_at, f.id) < ($3, $4))) s \
         WHERE ($2::text IS NULL OR s.status = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(f.owner)
    .bind(f.status.map(FileStatus::as_str))
    .bind(at)
    .bind(id)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

/// Links files to their (new) transcription jobs, `(file, job)` pairs, in one statement.
pub async fn set_transcription_jobs(
    pool: &PgPool,
    links: &[(Uuid, Uuid)],
) -> Result<(), StoreError> {
    link_jobs(pool, JobColumn::Transcription, links).await
}

/// The column of `files` that points at a file's newest job of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobColumn {
    Transcription,
    Diarization,
}

impl JobColumn {
    fn name(self) -> &'static str {
        match self {
            Self::Transcription => "transcription_job",
            Self::Diarization => "diarization_job",
        }
    }
}

/// Points files at their (new) jobs, `(file, job)` pairs, in one statement.
pub(crate) async fn link_jobs(
    pool: &PgPool,
    column: JobColumn,
    links: &[(Uuid, Uuid)],
) -> Result<(), StoreError> {
    let mut c = pool.acquire().await?;
    relink_jobs(&mut c, column, links).await?;
    Ok(())
}

/// A file pointed at a new job by a submission, with the job it pointed at before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relinked {
    pub column: JobColumn,
    pub file: Uuid,
    pub job: Uuid,
    pub previous: Option<Uuid>,
}

/// Points files at their (new) jobs, `(file, job)` pairs, in one statement on `conn` (a
/// submission's transaction); returns what each pointed at before.
pub(crate) async fn relink_jobs(
    conn: &mut sqlx::PgConnection,
    column: JobColumn,
    links: &[(Uuid, Uuid)],
) -> Result<Vec<Relinked>, StoreError> {
    if links.is_empty() {
        return Ok(vec![]);
    }
    // `p` is the same row as `f` read before the update: its column is the previous job.
    let col = column.name();
    let (files, jobs): (Vec<Uuid>, Vec<Uuid>) = links.iter().copied().unzip();
    let rows: Vec<(Uuid, Uuid, Option<Uuid>)> =
        sqlx::query_as(q!("UPDATE files f SET {col} = l.job, updated_at = now() \
         FROM unnest($1::uuid[], $2::uuid[]) AS l(file, job), files p \
         WHERE f.id = l.file AND p.id = f.id RETURNING f.id, l.job, p.{col}"))
        .bind(files)
        .bind(jobs)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(file, job, previous)| Relinked {
            column,
            file,
            job,
            previous,
        })
        .collect())
}

/// Undoes [`relink_jobs`] where the file still points at the submission's job.
pub(crate) async fn unlink_jobs(
    conn: &mut sqlx::PgConnection,
    links: &[Relinked],
) -> Result<(), StoreError> {
    for l in links {
        let col = l.column.name();
        sqlx::query(q!(
            "UPDATE files SET {col} = $3, updated_at = now() WHERE id = $1 AND {col} = $2"
        ))
        .bind(l.file)
        .bind(l.job)
        .bind(l.previous)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One model job's usage (`kind`: `transcribe` or `diarize`).
pub(crate) struct UsageRow<'a> {
    pub job: Uuid,
    pub owner: Option<Uuid>,
    pub file: Uuid,
    pub kind: voxfleet_jobs::JobKind,
    pub model: &'a str,
    pub audio_seconds: f64,
    pub processing_seconds: f64,
}

/// Records a model job's usage inside the transaction that saves its result. A retried save
/// updates the row: each job counts once, with its last attempt's times.
pub(crate) async fn record_usage(
    conn: &mut sqlx::PgConnection,
    u: &UsageRow<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
         processing_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (job_id) DO UPDATE SET audio_seconds = EXCLUDED.audio_seconds, \
         processing_seconds = EXCLUDED.processing_seconds, at = now()",
    )
    .bind(u.job)
    .bind(u.owner)
    .bind(u.file)
    .bind(u.kind.as_str())
    .bind(u.model)
    .bind(u.audio_seconds)
    .bind(u.processing_seconds)
    .execute(conn)
    .await?;
    Ok(())
}

/// The owners of those of `ids` that exist.
pub async fn owners(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Option<Uuid>>, StoreError> {
    let rows: Vec<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT id, owner FROM files WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// What deleting a file's rows leaves to do with its storage object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// No such file.
    Missing,
    /// The rows are gone; the object stays (it was registered, not uploaded, or another
    /// record still uses it).
    KeepObject,
    /// The rows are gone and nothing else uses the object under this key: delete it.
    DeleteObject(String),
}

/// SQL condition over the `files` row aliased `t`: deleting it should delete its object (the
/// record owns it and no other record uses the same key).
pub(crate) fn deletes_object_sql(t: &str) -> String {
    format!(
        "{t}.owns_object AND NOT EXISTS \
         (SELECT 1 FROM files o WHERE o.storage_key = {t}.storage_key AND o.id <> {t}.id)"
    )
}

/// Deletes a file's rows (segments go with it) and says whether its storage object should go
/// too. Usage records stay: the minutes were spent.
pub async fn delete_file(pool: &PgPool, id: Uuid) -> Result<Deleted, StoreError> {
    let row: Option<(String, bool)> = sqlx::query_as(q!(
        "DELETE FROM files AS f WHERE f.id = $1 RETURNING f.storage_key, ({})",
        deletes_object_sql("f")
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Deleted::Missing,
        Some((key, true)) => Deleted::DeleteObject(key),
        Some((_, false)) => Deleted::KeepObject,
    })
}

/// Who uses the object under `key`: `(file id, owner, owns_object)` of each live record.
pub async fn records_of_object(
    pool: &PgPool,
    key: &str,
) -> Result<Vec<(Uuid, Option<Uuid>, bool)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, owner, owns_object FROM files WHERE storage_key = $1 AND deleting_at IS NULL",
    )
    .bind(key)
    .fetch_all(pool)
    .await?)
}

/// One transcript segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SegmentRow {
    pub idx: i32,
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
    pub compression_ratio: f32,
    pub language: String,
    /// The segment's words, when word timestamps were asked for.
    #[sqlx(json(nullable))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<WordRow>>,
}

/// One timed word of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WordRow {
    /// As Whisper spells it: leading space and attached punctuation included.
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// A finished transcription, as a worker records it.
#[derive(Debug, Clone)]
pub struct TranscriptWrite<'a> {
    pub file: Uuid,
    pub job: Uuid,
    pub owner: Option<Uuid>,
    pub model: &'a str,
    pub language: &'a str,
    pub duration_s: f64,
    pub processing_s: f64,
    pub segments: &'a [SegmentRow],
}

/// Replaces the file's transcript and records the usage, in one transaction. Idempotent per
/// job: a retried attempt overwrites the same rows. Returns false when the file is gone or
/// has a newer transcription job (this job's result is then not written).
pub async fn save_transcript(pool: &PgPool, t: &TranscriptWrite<'_>) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE files SET language = $3, transcript_model = $4, transcribed_at = now(), \
         duration_s = COALESCE(duration_s, $5), updated_at = now(), \
         index_version = index_version + 1 \
         WHERE id = $1 AND (transcription_job IS NULL OR transcription_job = $2)",
    )
    .bind(t.file)
    .bind(t.job)
    .bind(t.language)
    .bind(t.model)
    .bind(t.duration_s)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM transcript_segments WHERE file_id = $1")
        .bind(t.file)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO transcript_segments \
         (file_id, idx, start_s, end_s, text, avg_logprob, no_speech_prob, temperature, \
         compression_ratio, language, words) \
         SELECT $1, s.idx, s.start_s, s.end_s, s.text, s.avg_logprob, s.no_speech_prob, \
         s.temperature, s.compression_ratio, s.language, s.words \
         FROM jsonb_to_recordset($2) AS s(idx int, start_s float8, end_s float8, text text, \
              avg_logprob real, no_speech_prob real, temperature real, compression_ratio real, \
              language text, words jsonb)",
    )
    .bind(t.file)
    .bind(serde_json::to_value(t.segments).map_err(|e| StoreError::Invalid(e.to_string()))?)
    .execute(&mut *tx)
    .await?;
    record_usage(
        &mut tx,
        &UsageRow {
            job: t.job,
            owner: t.owner,
            file: t.file,
            kind: voxfleet_jobs::JobKind::Transcribe,
            model: t.model,
            audio_seconds: t.duration_s,
            processing_seconds: t.processing_s,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn segments(pool: &PgPool, file: Uuid) -> Result<Vec<SegmentRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT idx, start_s, end_s, text, avg_logprob, no_speech_prob, temperature, \
         compression_ratio, language, words \
         FROM transcript_segments WHERE file_id = $1 ORDER BY idx",
    )
    .bind(file)
    .fetch_all(pool)
    .await?)
}

/// Transcription usage of one owner (or of everyone).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub jobs: i64,
    pub audio_seconds: f64,
    pub audio_minutes: f64,
    pub processing_seconds: f64,
    /// Estimated US dollars, at each row's price (`self_hosted` costs 0).
    pub cost_usd: f64,
}

pub async fn usage(
    pool: &PgPool,
    owner: Option<Uuid>,
    since: Option<DateTime<Utc>>,
) -> Result<Usage, StoreError> {
    let (jobs, audio, processing, cost_usd): (i64, f64, f64, f64) = sqlx::query_as(
        "SELECT count(*), COALESCE(sum(audio_seconds), 0), COALESCE(sum(processing_seconds), 0), \
                COALESCE(sum(cost_usd), 0) \
         FROM usage_records WHERE ($1::uuid IS NULL OR owner = $1) \
         AND ($2::timestamptz IS NULL OR at >= $2)",
    )
    .bind(owner)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(Usage {
        jobs,
        audio_seconds: audio,
        audio_minutes: audio / 60.0,
        processing_seconds: processing,
        cost_usd,
    })
}
