//! Job records in PostgreSQL.
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;
use voxfleet_jobs::{JobId, JobSnapshot, JobStatus, Priority};

use crate::db::StoreError;
use crate::files::{JobColumn, Relinked, relink_jobs, unlink_jobs};

/// Builds SQL from the constant column lists below (never from input), hence "safe".
macro_rules! q {
    ($($t:tt)*) => {
        sqlx::AssertSqlSafe(format!($($t)*))
    };
}

const COLUMNS: &str = "id, kind, queue, priority, status, input, owner, idempotency_key, attempts, \
    max_retries, error_code, error_message, result, progress_done, progress_total, worker, version, \
    created_at, started_at, finished_at";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    kind: String,
    queue: String,
    priority: String,
    status: String,
    input: Value,
    owner: Option<Uuid>,
    idempotency_key: Option<String>,
    attempts: i32,
    max_retries: Option<i32>,
    error_code: Option<String>,
    error_message: Option<String>,
    result: Option<Value>,
    progress_done: Option<i64>,
    progress_total: Option<i64>,
    worker: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for JobSnapshot {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        let bad =
            |what: &str, v: &str| StoreError::Invalid(format!("job {}: bad {what} `{v}`", r.id));
        Ok(JobSnapshot {
            id: JobId(r.id),
            kind: r.kind.parse().map_err(|_| bad("kind", &r.kind))?,
            queue: r.queue.parse().map_err(|_| bad("queue", &r.queue))?,
            priority: r
                .priority
                .parse()
                .map_err(|_| bad("priority", &r.priority))?,
            status: r.status.parse().map_err(|_| bad("status", &r.status))?,
            input: r.input,
            owner: r.owner,
            idempotency_key: r.idempotency_key,
            attempts: r.attempts.max(0) as u32,
            max_retries: r.max_retries.map(|v| v.max(0) as u32),
            error_code: r.error_code,
            error_message: r.error_message,
            result: r.result,
            progress_done: r.progress_done.map(|v| v.max(0) as u64),
            progress_total: r.progress_total.map(|v| v.max(0) as u64),
            worker: r.worker,
            version: r.version,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

/// One job as a row of `jsonb_to_recordset` (see [`RECORDSET`]), borrowed from its snapshot
/// and serialized straight into the query's parameter: no `serde_json::Value` tree is built
/// per job (the persister writes every state change of every job through here). Times travel
/// as microseconds since the epoch ([`RECORD_VALUES`] turns them back into timestamps):
/// formatting three RFC 3339 strings cost more than the rest of the record.
#[derive(serde::Serialize)]
struct Record<'a> {
    id: Uuid,
    kind: &'a str,
    queue: &'a str,
    priority: &'a str,
    status: &'a str,
    input: &'a Value,
    owner: Option<Uuid>,
    idempotency_key: Option<&'a str>,
    attempts: u32,
    max_retries: Option<u32>,
    error_code: Option<&'a str>,
    error_message: Option<&'a str>,
    result: Option<&'a Value>,
    progress_done: Option<u64>,
    progress_total: Option<u64>,
    worker: Option<&'a str>,
    version: i64,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

fn records(jobs: &[JobSnapshot]) -> Json<Vec<Record<'_>>> {
    Json(
        jobs.iter()
            .map(|s| Record {
                id: s.id.0,
                kind: s.kind.as_str(),
                queue: s.queue.as_str(),
                priority: s.priority.as_str(),
                status: s.status.as_str(),
                input: &s.input,
                owner: s.owner,
                idempotency_key: s.idempotency_key.as_deref(),
                attempts: s.attempts,
                max_retries: s.max_retries,
                error_code: s.error_code.as_deref(),
                error_message: s.error_message.as_deref(),
                result: s.result.as_ref(),
                progress_done: s.progress_done,
                progress_total: s.progress_total,
                worker: s.worker.as_deref(),
                version: s.version,
                created_at: s.created_at.timestamp_micros(),
                started_at: s.started_at.map(|t| t.timestamp_micros()),
                finished_at: s.finished_at.map(|t| t.timestamp_micros()),
            })
            .collect(),
    )
}

const RECORDSET: &str = "jsonb_to_recordset($1::jsonb) AS x(id uuid, kind text, queue text, \
    priority text, status text, input jsonb, owner uuid, idempotency_key text, attempts int, \
    max_retries int, error_code text, error_message text, result jsonb, progress_done bigint, \
    progress_total bigint, worker text, version bigint, created_at bigint, started_at bigint, \
    finished_at bigint)";

/// [`COLUMNS`]' values from a [`RECORDSET`] row.
const RECORD_VALUES: &str = "id, kind, queue, priority, status, input, owner, idempotency_key, \
    attempts, max_retries, error_code, error_message, result, progress_done, progress_total, \
    worker, version, 'epoch'::timestamptz + created_at * interval '1 microsecond', \
    'epoch'::timestamptz + started_at * interval '1 microsecond', \
    'epoch'::timestamptz + finished_at * interval '1 microsecond'";

/// What an insert found.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(JobSnapshot),
    /// The idempotency key was seen before: this is the existing job.
    Existing(JobSnapshot),
}

impl Inserted {
    pub fn job(&self) -> &JobSnapshot {
        match self {
            Self::Created(j) | Self::Existing(j) => j,
        }
    }
}

/// Inserts new jobs in one statement; a job whose (owner, idempotency key) exists already is
/// not inserted, and the existing one is returned in its place.
pub async fn insert_jobs(pool: &PgPool, jobs: &[JobSnapshot]) -> Result<Vec<Inserted>, StoreError> {
    let mut c = pool.acquire().await?;
    insert_jobs_on(&mut c, jobs).await
}

/// Inserts jobs and points the files they work on at them, in one transaction: a submission
/// that fails leaves no job row and no file re-pointed. `links(job)` names the file columns a
/// job takes over (a transcription: the file's `transcription_job`). An idempotent repeat
/// points the files at the existing job again. Returns what each file pointed at before, for
/// [`undo_submission`] if queueing then fails.
pub async fn insert_and_link(
    pool: &PgPool,
    jobs: &[JobSnapshot],
    links: impl Fn(&JobSnapshot) -> Vec<(JobColumn, Uuid)>,
) -> Result<(Vec<Inserted>, Vec<Relinked>), StoreError> {
    let month = crate::budgets::get_budget_settings(pool)
        .await?
        .month_start(Utc::now());
    let mut tx = pool.begin().await?;
    let inserted = insert_jobs_on(&mut tx, jobs).await?;
    let created: Vec<&JobSnapshot> = inserted
        .iter()
        .filter_map(|i| match i {
            Inserted::Created(j) => Some(j),
            Inserted::Existing(_) => None,
        })
        .collect();
    crate::budgets::reserve(&mut tx, &created, month).await?;
    let mut relinked = Vec::new();
    for column in [JobColumn::Transcription, JobColumn::Diarization] {
        let pairs: Vec<(Uuid, Uuid)> = inserted
            .iter()
            .flat_map(|i| {
                let j = i.job();
                links(j)
                    .into_iter()
                    .filter(move |&(c, _)| c == column)
                    .map(move |(_, file)| (file, j.id.0))
            })
            .collect();
        relinked.extend(relink_jobs(&mut tx, column, &pairs).await?);
    }
    tx.commit().await?;
    Ok((inserted, relinked))
}

/// Takes back a submission whose jobs could not be queued: deletes the new job rows and points
/// the files back at the jobs they had (where nothing newer has replaced the link since).
pub async fn undo_submission(
    pool: &PgPool,
    created: &[JobId],
    relinked: &[Relinked],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let ours: Vec<Relinked> = relinked
        .iter()
        .filter(|l| created.contains(&JobId(l.job)))
        .cloned()
        .collect();
    unlink_jobs(&mut tx, &ours).await?;
    let ids: Vec<Uuid> = created.iter().map(|j| j.0).collect();
    sqlx::query("DELETE FROM jobs WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_jobs_on(
    conn: &mut sqlx::PgConnection,
    jobs: &[JobSnapshot],
) -> Result<Vec<Inserted>, StoreError> {
    if jobs.is_empty() {
        return Ok(vec![]);
    }
    let records = records(jobs);
    let created: Vec<Uuid> = sqlx::query_scalar(q!(
        "INSERT INTO jobs ({COLUMNS}) SELECT {RECORD_VALUES} FROM {RECORDSET} \
         ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL AND owner IS NOT NULL \
         DO NOTHING RETURNING id"
    ))
    .bind(&records)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(jobs.len());
    for j in jobs {
        if created.contains(&j.id.0) {
            out.push(Inserted::Created(j.clone()));
            continue;
        }
        let (Some(owner), Some(key)) = (j.owner, j.idempotency_key.as_deref()) else {
            return Err(StoreError::Invalid(format!(
                "job {} was not inserted",
                j.id
            )));
        };
        let row: JobRow = sqlx::query_as(q!(
            "SELECT {COLUMNS} FROM jobs WHERE owner = $1 AND idempotency_key = $2"
        ))
        .bind(owner)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
        out.push(Inserted::Existing(row.try_into()?));
    }
    Ok(out)
}

/// Writes the states Redis holds; a row is only replaced by a newer version.
pub async fn upsert_snapshots(pool: &PgPool, jobs: &[JobSnapshot]) -> Result<u64, StoreError> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let records = records(jobs);
    let res = sqlx::query(q!(
        "INSERT INTO jobs ({COLUMNS}) SELECT {RECORD_VALUES} FROM {RECORDSET} \
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts, \
           error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message, \
           result = EXCLUDED.result, progress_done = EXCLUDED.progress_done, \
           progress_total = EXCLUDED.progress_total, worker = EXCLUDED.worker, \
           version = EXCLUDED.version, started_at = EXCLUDED.started_at, \
           finished_at = EXCLUDED.finished_at, updated_at = now() \
         WHERE jobs.version < EXCLUDED.version"
    ))
    .bind(&records)
    .execute(pool)
    .await?;
    Ok(res.rows_affected())
}

pub async fn get_job(pool: &PgPool, id: JobId) -> Result<Option<JobSnapshot>, StoreError> {
    let row: Option<JobRow> = sqlx::query_as(q!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await?;
    row.map(TryInto::try_into).transpose()
}

/// Removes a job row (used when a submission could not be queued).
pub async fn delete_job(pool: &PgPool, id: JobId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(id.0)
        .execute(pool)
        .await?;
    Ok(())
}

/// Filters for listing, newest first. `before` is a keyset cursor (created_at, id).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub owner: Option<Uuid>,
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list_jobs(pool: &PgPool, f: &ListFilter) -> Result<Vec<JobSnapshot>, StoreError> {
    let (before_at, before_id) = f.before.unzip();
    let rows: Vec<JobRow> = sqlx::query_as(q!("SELECT {COLUMNS} FROM jobs \
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) \
           AND ($3::uuid IS NULL OR owner = $3) \
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
         ORDER BY created_at DESC, id DESC LIMIT $6"))
    .bind(f.status.map(|s| s.as_str()))
    .bind(f.kind.as_deref())
    .bind(f.owner)
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Up to `limit` jobs PostgreSQL holds as not finished (`queued`, `retrying` or `running`)
/// whose row has not changed for `min_age`, oldest first, after the `(created_at, id)` of
/// `after`.
pub async fn unfinished_since(
    pool: &PgPool,
    min_age: std::time::Duration,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<JobSnapshot>, StoreError> {
    let (after_at, after_id) = after.unzip();
    let rows: Vec<JobRow> = sqlx::query_as(q!("SELECT {COLUMNS} FROM jobs \
         WHERE status IN ('queued', 'retrying', 'running') AND updated_at < now() - $1::interval \
           AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
         ORDER BY created_at, id LIMIT $4"))
    .bind(format!("{} milliseconds", min_age.as_millis()))
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Failed (dead-letter) jobs per queue.
pub async fn failed_counts(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT queue, count(*) FROM jobs WHERE status = 'failed' GROUP BY queue")
            .fetch_all(pool)
            .await?,
    )
}

/// Resets a failed or cancelled job for a fresh run: queued, no attempts, no error, version
/// bumped. Returns the reset record, or None if the job is not in a state that can re-run.
pub async fn reset_for_rerun(pool: &PgPool, id: JobId) -> Result<Option<JobSnapshot>, StoreError> {
    let row: Option<JobRow> = sqlx::query_as(q!(
        "UPDATE jobs SET status = 'queued', attempts = 0, error_code = NULL, error_message = NULL, \
           result = NULL, progress_done = NULL, progress_total = NULL, worker = NULL, \
           started_at = NULL, finished_at = NULL, version = version + 1, updated_at = now() \
         WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING {COLUMNS}"
    ))
    .bind(id.0)
    .fetch_optional(pool)
    .await?;
    row.map(TryInto::try_into).transpose()
}

/// The newest transcription and diarization job of each of `owner`'s files (not being
/// deleted) that has not succeeded: what "recover files" looks at (with Redis's live state
/// laid over, since PostgreSQL learns of a cancel or failure a few seconds late).
pub async fn latest_file_jobs(pool: &PgPool, owner: Uuid) -> Result<Vec<JobSnapshot>, StoreError> {
    let rows: Vec<JobRow> = sqlx::query_as(q!("SELECT {COLUMNS} FROM jobs WHERE id IN \
           (SELECT transcription_job FROM files WHERE owner = $1 AND deleting_at IS NULL \
            UNION SELECT diarization_job FROM files WHERE owner = $1 AND deleting_at IS NULL) \
         AND status <> 'succeeded' ORDER BY created_at, id"))
    .bind(owner)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Records a stuck running job as cancelled (`error_code` `abandoned`), version bumped, when
/// work for its file is submitted again.
pub async fn mark_abandoned(pool: &PgPool, id: JobId) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = 'cancelled', error_code = 'abandoned', \
           error_message = 'stuck; submitted again by an admin''s recovery', \
           finished_at = now(), version = version + 1, updated_at = now() \
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id.0)
    .execute(pool)
    .await?;
    Ok(())
}

/// A job about to be inserted: the defaults every new record starts from.
pub fn new_snapshot(
    kind: voxfleet_jobs::JobKind,
    queue: voxfleet_jobs::QueueName,
    priority: Priority,
    input: Value,
    owner: Option<Uuid>,
    idempotency_key: Option<String>,
    max_retries: Option<u32>,
) -> JobSnapshot {
    JobSnapshot {
        id: JobId::new(),
        kind,
        queue,
        priority,
        status: JobStatus::Queued,
        input,
        owner,
        idempotency_key,
        attempts: 0,
        max_retries,
        error_code: None,
        error_message: None,
        result: None,
        progress_done: None,
        progress_total: None,
        worker: None,
        version: 0,
        // millisecond precision, as Redis keeps it, so live and stored views agree
        created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .unwrap_or_default(),
        started_at: None,
        finished_at: None,
    }
}
