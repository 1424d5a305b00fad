//! Job records in PostgreSQL.
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
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

/// Jobs as the columns of one `unnest` (see [`UNNEST`]), borrowed from their snapshots. The
/// persister writes every state change of every job through here, so each column travels as a
/// typed array in PostgreSQL's binary format: a batch sent as one JSON document was parsed
/// whole by `jsonb_recv` (its keys sorted, every value a jsonb node) and then pulled apart
/// again by `jsonb_to_recordset`, which under callgrind was nearly half of the backend's
/// instructions per job. Only `input` and `result` are JSON, one small document each.
struct Columns<'a> {
    id: Vec<Uuid>,
    kind: Vec<&'a str>,
    queue: Vec<&'a str>,
    priority: Vec<&'a str>,
    status: Vec<&'a str>,
    input: Vec<Json<&'a Value>>,
    owner: Vec<Option<Uuid>>,
    idempotency_key: Vec<Option<&'a str>>,
    attempts: Vec<i32>,
    max_retries: Vec<Option<i32>>,
    error_code: Vec<Option<&'a str>>,
    error_message: Vec<Option<&'a str>>,
    result: Vec<Option<Json<&'a Value>>>,
    progress_done: Vec<Option<i64>>,
    progress_total: Vec<Option<i64>>,
    worker: Vec<Option<&'a str>>,
    version: Vec<i64>,
    created_at: Vec<DateTime<Utc>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
}

/// A count as PostgreSQL's signed column type (counts past its range are not real).
fn signed<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

impl<'a> Columns<'a> {
    fn of(jobs: &'a [JobSnapshot]) -> Self {
        fn col<'a, T>(jobs: &'a [JobSnapshot], f: impl Fn(&'a JobSnapshot) -> T) -> Vec<T> {
            jobs.iter().map(f).collect()
        }
        let int4 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Columns {
            id: col(jobs, |s| s.id.0),
            kind: col(jobs, |s| s.kind.as_str()),
            queue: col(jobs, |s| s.queue.as_str()),
            priority: col(jobs, |s| s.priority.as_str()),
            status: col(jobs, |s| s.status.as_str()),
            input: col(jobs, |s| Json(&s.input)),
            owner: col(jobs, |s| s.owner),
            idempotency_key: col(jobs, |s| s.idempotency_key.as_deref()),
            attempts: col(jobs, |s| int4(s.attempts)),
            max_retries: col(jobs, |s| s.max_retries.map(int4)),
            error_code: col(jobs, |s| s.error_code.as_deref()),
            error_message: col(jobs, |s| s.error_message.as_deref()),
            result: col(jobs, |s| s.result.as_ref().map(Json)),
            progress_done: col(jobs, |s| s.progress_done.map(signed)),
            progress_total: col(jobs, |s| s.progress_total.map(signed)),
            worker: col(jobs, |s| s.worker.as_deref()),
            version: col(jobs, |s| s.version),
            created_at: col(jobs, |s| s.created_at),
            started_at: col(jobs, |s| s.started_at),
            finished_at: col(jobs, |s| s.finished_at),
        }
    }

    /// Binds the columns as `$1`..`$20`, in [`UNNEST`]'s order.
    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        q.bind(self.id)
            .bind(self.kind)
            .bind(self.queue)
            .bind(self.priority)
            .bind(self.status)
            .bind(self.input)
            .bind(self.owner)
            .bind(self.idempotency_key)
            .bind(self.attempts)
            .bind(self.max_retries)
            .bind(self.error_code)
            .bind(self.error_message)
            .bind(self.result)
            .bind(self.progress_done)
            .bind(self.progress_total)
            .bind(self.worker)
            .bind(self.version)
            .bind(self.created_at)
            .bind(self.started_at)
            .bind(self.finished_at)
    }
}

/// [`COLUMNS`] as rows, from the arrays [`Columns::bind`] binds.
const UNNEST: &str = "unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
    $6::jsonb[], $7::uuid[], $8::text[], $9::int[], $10::int[], $11::text[], $12::text[], \
    $13::jsonb[], $14::bigint[], $15::bigint[], $16::text[], $17::bigint[], $18::timestamptz[], \
    $19::timestamptz[], $20::timestamptz[]) AS x(id, kind, queue, priority, status, input, owner, \
    idempotency_key, attempts, max_retries, error_code, error_message, result, progress_done, \
    progress_total, worker, version, created_at, started_at, finished_at)";

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
    let created = Columns::of(jobs)
        .bind(sqlx::query(q!(
            "INSERT INTO jobs ({COLUMNS}) SELECT {COLUMNS} FROM {UNNEST} \
             ON CONFLICT (owner, idempotency_key) \
             WHERE idempotency_key IS NOT NULL AND owner IS NOT NULL DO NOTHING RETURNING id"
        )))
        .fetch_all(&mut *conn)
        .await?;
    let created = created
        .iter()
        .map(|row| row.try_get::<Uuid, _>(0))
        .collect::<Result<Vec<Uuid>, _>>()?;
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
    let res = Columns::of(jobs)
        .bind(sqlx::query(q!(
            "INSERT INTO jobs ({COLUMNS}) SELECT {COLUMNS} FROM {UNNEST} \
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts, \
           error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message, \
           result = EXCLUDED.result, progress_done = EXCLUDED.progress_done, \
           progress_total = EXCLUDED.progress_total, worker = EXCLUDED.worker, \
           version = EXCLUDED.version, started_at = EXCLUDED.started_at, \
           finished_at = EXCLUDED.finished_at, updated_at = now() \
         WHERE jobs.version < EXCLUDED.version"
        )))
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
