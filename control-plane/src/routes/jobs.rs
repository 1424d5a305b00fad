//! Jobs: submit (single and batch), get, list, cancel, re-run.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_jobs::{
    CancelOutcome, EnqueueRequest, JobId, JobInput, JobKind, JobSnapshot, JobStatus, Priority,
    QueueName, RetrySettings,
};
use voxfleet_store::files::JobColumn;
use voxfleet_store::jobs::{Inserted, ListFilter};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

/// A job submission.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// One of the job kinds (`diagnostic`, `transcribe`, …).
    pub kind: String,
    /// The kind's payload; `{}` when absent.
    #[serde(default)]
    pub input: Value,
    /// Overrides the kind's default queue.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    /// A key seen before (from the same token) returns the existing job instead of a new one.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// This job's own retry cap (0–10); the global setting still applies on top.
    #[serde(default)]
    pub max_retries: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    pub jobs: Vec<SubmitJob>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub done: u64,
    pub total: u64,
    pub percent: f64,
    /// Estimated seconds left in this attempt, from its rate so far.
    pub eta_seconds: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobErrorView {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    #[schema(value_type = String, format = Uuid)]
    pub id: JobId,
    pub kind: JobKind,
    #[schema(value_type = String)]
    pub queue: QueueName,
    pub priority: Priority,
    pub status: JobStatus,
    pub attempts: u32,
    /// Retries this job may have under the current settings (`null`: unlimited).
    pub max_retries: Option<u32>,
    pub progress: Option<ProgressView>,
    pub error: Option<JobErrorView>,
    pub result: Option<Value>,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub worker: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub fn progress_view(
    done: Option<u64>,
    total: Option<u64>,
    started_at: Option<DateTime<Utc>>,
    running: bool,
) -> Option<ProgressView> {
    let (done, total) = (done?, total?);
    let percent = if total == 0 {
        100.0
    } else {
        (done as f64 * 100.0 / total as f64).min(100.0)
    };
    let eta_seconds = match started_at {
        Some(s) if running && done > 0 && total > done => {
            let elapsed = (Utc::now() - s).num_milliseconds().max(1) as f64 / 1000.0;
            Some((elapsed / done as f64) * (total - done) as f64)
        }
        _ if done >= total => Some(0.0),
        _ => None,
    };
    Some(ProgressView {
        done,
        total,
        percent,
        eta_seconds,
    })
}

pub fn view(j: JobSnapshot, settings: &RetrySettings) -> JobView {
    let error = match (&j.error_code, &j.error_message) {
        (Some(c), m) if j.status != JobStatus::Succeeded => Some(JobErrorView {
            code: c.clone(),
            message: m.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    JobView {
        progress: progress_view(
            j.progress_done,
            j.progress_total,
            j.started_at,
            j.status == JobStatus::Running,
        ),
        max_retries: settings.effective_cap(j.max_retries),
        id: j.id,
        kind: j.kind,
        queue: j.queue,
        priority: j.priority,
        status: j.status,
        attempts: j.attempts,
        error,
        result: j.result,
        input: j.input,
        idempotency_key: j.idempotency_key,
        worker: j.worker,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
    }
}

/// Parses and checks a payload: its kind's type and limits (no NUL anywhere), and a Whisper
/// model that exists. Every submission path goes through here (422 `invalid_input`).
pub fn parse_input(kind: JobKind, input: &Value) -> ApiResult<JobInput> {
    let parsed = kind
        .parse_input(input)
        .map_err(|e| ApiError::new(Code::InvalidInput, format!("{kind}: {e}")))?;
    if let JobInput::Transcribe(t) = &parsed
        && let Some(m) = &t.model
        && voxfleet_models::registry::whisper(m).is_none()
    {
        return Err(ApiError::new(
            Code::InvalidInput,
            format!(
                "{kind}: model `{m}` does not exist (known: tiny.en, base; {})",
                voxfleet_models::registry::whisper_names()
            ),
        ));
    }
    Ok(parsed)
}

/// Checks a submission and turns it into a new job record.
fn validate(sub: SubmitJob, auth: &Auth) -> ApiResult<JobSnapshot> {
    let kind: JobKind = sub.kind.parse().map_err(|e: String| {
        let all: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::new(
            Code::UnknownKind,
            format!("{e}; known kinds: {}", all.join(", ")),
        )
    })?;
    if !kind.is_implemented() {
        return Err(ApiError::new(
            Code::NotImplemented,
            format!("`{kind}` jobs are declared but not implemented by this version of voxfleet"),
        ));
    }
    if kind.admin_only() && !auth.is_admin() {
        return Err(ApiError::new(
            Code::Forbidden,
            format!("only admins may submit `{kind}` jobs"),
        ));
    }
    let input = if sub.input.is_null() {
        Value::Object(Default::default())
    } else {
        sub.input
    };
    parse_input(kind, &input)?;
    // Queues and priorities are the operator's: a user's job goes to its kind's queue, at
    // normal priority or below (lowering one's own jobs harms nobody). Admins choose among the
    // queues that exist (`check_queues`, with the fleet's view).
    if sub.queue.is_some() && !auth.is_admin() {
        return Err(ApiError::new(
            Code::Forbidden,
            "only admins may choose a queue; leave `queue` out",
        ));
    }
    if sub.priority == Some(Priority::High) && !auth.is_admin() {
        return Err(ApiError::new(
            Code::Forbidden,
            "only admins may submit at high priority (users: normal or low)",
        ));
    }
    let queue = match sub.queue {
        Some(q) => q
            .parse::<QueueName>()
            .map_err(|e| ApiError::new(Code::InvalidQueue, e))?,
        None => kind.default_queue(),
    };
    if let Some(m) = sub.max_retries
        && m > RetrySettings::MAX
    {
        return Err(ApiError::new(
            Code::InvalidInput,
            format!("max_retries must be between 0 and {}", RetrySettings::MAX),
        ));
    }
    if let Some(k) = &sub.idempotency_key
        && (k.is_empty() || k.len() > 200 || k.chars().any(char::is_control))
    {
        return Err(ApiError::new(
            Code::InvalidInput,
            "idempotency_key must be 1-200 characters, none of them control characters",
        ));
    }
    Ok(voxfleet_store::jobs::new_snapshot(
        kind,
        queue,
        sub.priority.unwrap_or_default(),
        input,
        Some(auth.token_id),
        sub.idempotency_key,
        sub.max_retries,
    ))
}

fn enqueue_request(j: &JobSnapshot) -> EnqueueRequest {
    EnqueueRequest::from(j)
}

/// The file a job works on, if its kind takes one.
fn file_of(j: &JobSnapshot) -> Option<Uuid> {
    match j.kind.parse_input(&j.input) {
        Ok(JobInput::Transcribe(t)) => Some(t.file_id),
        Ok(JobInput::Diarize(d)) => Some(d.file_id),
        Ok(JobInput::ExtractEmbeddings(e)) => Some(e.file_id),
        _ => None,
    }
}

/// Every file a job reads: its own and, for diarization, the known speakers' references.
fn files_read(j: &JobSnapshot) -> Vec<Uuid> {
    match j.kind.parse_input(&j.input) {
        Ok(JobInput::Diarize(d)) => std::iter::once(d.file_id)
            .chain(d.known_speakers.iter().map(|k| k.file_id))
            .collect(),
        _ => file_of(j).into_iter().collect(),
    }
}

/// Jobs that name a file must name one the caller may see (404 otherwise, the same answer
/// as for a file that does not exist): one query for the whole batch. Every submission path
/// (`POST /v1/jobs`, batches, `process` on upload, the OpenAI endpoint) goes through here.
pub async fn check_files(st: &AppState, auth: &Auth, jobs: &[JobSnapshot]) -> ApiResult<()> {
    let named: Vec<(usize, Uuid)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(i, j)| files_read(j).into_iter().map(move |f| (i, f)))
        .collect();
    check_file_ids(st, auth, &named, jobs.len() > 1).await
}

/// `(job index, file)` pairs: each file exists and the caller may see it.
pub async fn check_file_ids(
    st: &AppState,
    auth: &Auth,
    named: &[(usize, Uuid)],
    batch: bool,
) -> ApiResult<()> {
    if named.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = named.iter().map(|&(_, f)| f).collect();
    let owners = voxfleet_store::files::owners(&st.pool, &ids).await?;
    for &(i, file) in named {
        if !owners.get(&file).is_some_and(|&o| auth.may_access(o)) {
            let at = if batch {
                format!("jobs[{i}]: ")
            } else {
                String::new()
            };
            return Err(ApiError::new(
                Code::NotFound,
                format!("{at}file {file} not found"),
            ));
        }
    }
    Ok(())
}

/// Every job's queue is one that exists: a kind's default queue, or one a live worker
/// has listened on in the last hour (so a typo cannot create a queue nobody drains).
async fn check_queues(st: &AppState, jobs: &[JobSnapshot]) -> ApiResult<()> {
    let defaults: Vec<QueueName> = JobKind::ALL.iter().map(|k| k.default_queue()).collect();
    let chosen: Vec<&QueueName> = jobs
        .iter()
        .map(|j| &j.queue)
        .filter(|q| !defaults.contains(q))
        .collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let served: Vec<QueueName> = crate::routes::fleet::live_workers(st)
        .await?
        .into_iter()
        .flat_map(|(w, _)| w.queues)
        .filter_map(|q| q.parse().ok())
        .collect();
    if let Some(q) = chosen.into_iter().find(|q| !served.contains(q)) {
        let mut known: Vec<String> = defaults
            .iter()
            .chain(&served)
            .map(|q| q.to_string())
            .collect();
        known.sort();
        known.dedup();
        return Err(ApiError::new(
            Code::InvalidQueue,
            format!(
                "no queue `{q}`: no worker listens on it (queues: {})",
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The file columns a job takes over: a transcription becomes its file's newest transcription
/// job, a diarization its newest diarization job.
fn file_links(j: &JobSnapshot) -> Vec<(JobColumn, Uuid)> {
    let column = match j.kind {
        JobKind::Transcribe => JobColumn::Transcription,
        JobKind::Diarize => JobColumn::Diarization,
        _ => return vec![],
    };
    file_of(j).map(|f| (column, f)).into_iter().collect()
}

/// Records then queues jobs. The rows and the files' links to them are written in one
/// transaction (a failed insert re-points nothing), before the jobs are queued, so a worker
/// that finishes at once finds its file waiting for it. If queueing fails, the new rows are
/// removed and the files point back at their previous jobs, so a client that sees an error
/// can simply resubmit.
pub async fn submit_many(st: &AppState, jobs: Vec<JobSnapshot>) -> ApiResult<Vec<Inserted>> {
    let (inserted, relinked) =
        voxfleet_store::jobs::insert_and_link(&st.pool, &jobs, file_links).await?;
    let new: Vec<EnqueueRequest> = inserted
        .iter()
        .filter_map(|i| match i {
            Inserted::Created(j) => Some(enqueue_request(j)),
            Inserted::Existing(_) => None,
        })
        .collect();
    if let Err(e) = st.queue.enqueue_many(&new).await {
        let ids: Vec<JobId> = new.iter().map(|r| r.id).collect();
        if let Err(undo) = voxfleet_store::jobs::undo_submission(&st.pool, &ids, &relinked).await {
            tracing::error!(error = %undo, "a submission that could not be queued was not taken back");
        }
        return Err(e.into());
    }
    for r in &new {
        metrics::counter!("voxfleet_jobs_submitted_total", "kind" => r.kind.as_str(), "queue" => r.queue.to_string()).increment(1);
    }
    Ok(inserted)
}

/// Submit a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = SubmitJob,
    responses((status = 202, description = "queued", body = JobView),
              (status = 200, description = "idempotency key seen before: the existing job", body = JobView),
              (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 501, description = "kind declared but not implemented yet", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(sub): ApiJson<SubmitJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let job = validate(sub, &auth)?;
    check_queues(&st, std::slice::from_ref(&job)).await?;
    check_files(&st, &auth, std::slice::from_ref(&job)).await?;
    let mut out = submit_many(&st, vec![job]).await?;
    let settings = st.settings.current().await;
    match out.pop() {
        Some(Inserted::Created(j)) => Ok((StatusCode::ACCEPTED, Json(view(j, &settings)))),
        Some(Inserted::Existing(j)) => {
            let j = overlay(&st, vec![j])
                .await
                .pop()
                .ok_or_else(|| ApiError::not_found("job"))?;
            Ok((StatusCode::OK, Json(view(j, &settings))))
        }
        None => Err(ApiError::new(Code::Internal, "internal error")),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchView {
    pub jobs: Vec<JobView>,
}

/// Submit up to 1,000 jobs at once; all are checked first, and none is queued if any is invalid.
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs", request_body = SubmitBatch,
    responses((status = 202, body = BatchView), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit_batch(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(b): ApiJson<SubmitBatch>,
) -> ApiResult<(StatusCode, Json<BatchView>)> {
    if b.jobs.len() > st.limits.max_batch {
        return Err(ApiError::new(
            Code::TooManyJobs,
            format!(
                "at most {} jobs per batch, got {}",
                st.limits.max_batch,
                b.jobs.len()
            ),
        ));
    }
    if b.jobs.is_empty() {
        return Err(ApiError::new(Code::InvalidInput, "`jobs` is empty"));
    }
    let mut jobs = Vec::with_capacity(b.jobs.len());
    for (i, s) in b.jobs.into_iter().enumerate() {
        jobs.push(
            validate(s, &auth)
                .map_err(|e| ApiError::new(e.code, format!("jobs[{i}]: {}", e.message)))?,
        );
    }
    check_queues(&st, &jobs).await?;
    check_files(&st, &auth, &jobs).await?;
    let out = submit_many(&st, jobs).await?;
    let settings = st.settings.current().await;
    let jobs = out
        .into_iter()
        .map(|i| match i {
            Inserted::Created(j) | Inserted::Existing(j) => view(j, &settings),
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(BatchView { jobs })))
}

/// Replaces records with their live Redis state where Redis has a newer version.
pub async fn overlay(st: &AppState, mut rows: Vec<JobSnapshot>) -> Vec<JobSnapshot> {
    let idx: Vec<usize> = (0..rows.len())
        .filter(|&i| !rows[i].status.is_terminal())
        .collect();
    if idx.is_empty() {
        return rows;
    }
    let items: Vec<(QueueName, JobId)> = idx
        .iter()
        .map(|&i| (rows[i].queue.clone(), rows[i].id))
        .collect();
    match st.queue.get_many(&items).await {
        Ok(live) => {
            for (&i, l) in idx.iter().zip(live) {
                if let Some(l) = l
                    && l.version >= rows[i].version
                {
                    rows[i] = l;
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "live job state unavailable; answering from PostgreSQL")
        }
    }
    rows
}

/// Loads a job the caller may see (404 otherwise, so ids of others' jobs are not revealed).
pub async fn load(st: &AppState, auth: &Auth, id: &str) -> ApiResult<JobSnapshot> {
    let id: JobId = id.parse().map_err(|_| ApiError::not_found("job"))?;
    let row = voxfleet_store::jobs::get_job(&st.pool, id)
        .await?
        .filter(|j| auth.may_access(j.owner))
        .ok_or_else(|| ApiError::not_found("job"))?;
    overlay(st, vec![row])
        .await
        .pop()
        .ok_or_else(|| ApiError::not_found("job"))
}

/// Get a job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_job(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let j = load(&st, &auth, &id).await?;
    Ok(Json(view(j, &st.settings.current().await)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    pub next_cursor: Option<String>,
}

pub fn parse_cursor(c: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    let bad = || ApiError::new(Code::InvalidQuery, "invalid cursor");
    let (ms, id) = c.split_once('_').ok_or_else(bad)?;
    // Within years 1–9999: PostgreSQL refuses instants chrono accepts (500 otherwise).
    let at = DateTime::from_timestamp_micros(ms.parse().map_err(|_| bad())?)
        .filter(crate::extract::time_in_range)
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// List jobs, newest first. Users see their own; admins see all.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_jobs(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobList>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "limit must be between 1 and 500",
        ));
    }
    let filter = ListFilter {
        status: q.status,
        kind: q.kind.map(|k| k.as_str().to_string()),
        owner: (!auth.is_admin()).then_some(auth.token_id),
        before: q.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
    };
    let rows = voxfleet_store::jobs::list_jobs(&st.pool, &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|j| format!("{}_{}", j.created_at.timestamp_micros(), j.id))
        })
        .flatten();
    let rows = overlay(&st, rows).await;
    let settings = st.settings.current().await;
    Ok(Json(JobList {
        jobs: rows.into_iter().map(|j| view(j, &settings)).collect(),
        next_cursor,
    }))
}

/// Cancel a job: a queued job is removed; a running one is told to stop at its next checkpoint.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 202, body = JobView), (status = 404, body = ErrorBody), (status = 409, description = "already finished", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_job(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let j = load(&st, &auth, &id).await?;
    match st.queue.cancel(&j.queue, &j.id).await? {
        CancelOutcome::Cancelled | CancelOutcome::Cancelling => {}
        CancelOutcome::AlreadyFinished(s) => {
            return Err(ApiError::new(
                Code::JobFinished,
                format!("the job has already {s}"),
            ));
        }
        CancelOutcome::Missing => {
            return Err(ApiError::new(
                Code::JobFinished,
                format!("the job is {} and no longer in the queue", j.status),
            ));
        }
    }
    let j = load(&st, &auth, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(j, &st.settings.current().await)),
    ))
}

/// Re-run a failed (or cancelled) job from its first attempt.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path)),
    responses((status = 202, body = JobView), (status = 404, body = ErrorBody), (status = 409, description = "not failed", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry_job(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let j = load(&st, &auth, &id).await?;
    if !matches!(j.status, JobStatus::Failed | JobStatus::Cancelled) {
        return Err(ApiError::new(
            Code::NotRetryable,
            format!(
                "only failed or cancelled jobs can be re-run; this one is {}",
                j.status
            ),
        ));
    }
    if j.kind.admin_only() {
        auth.require(Role::Admin)?;
    }
    // make sure PostgreSQL has the final state before resetting it
    voxfleet_store::persist::persist_all(&st.queue, &st.pool, &j.queue, None)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "persist before re-run failed");
            ApiError::new(
                Code::Unavailable,
                "the job's state could not be saved; try again shortly",
            )
        })?;
    let reset = voxfleet_store::jobs::reset_for_rerun(&st.pool, j.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Code::NotRetryable,
                "the job changed state; only failed or cancelled jobs can be re-run",
            )
        })?;
    if let Err(e) = st.queue.enqueue(&enqueue_request(&reset)).await {
        // put the record back as it was (with a newer version), so it can be re-run later
        let mut back = j.clone();
        back.version = reset.version + 1;
        let _ = voxfleet_store::jobs::upsert_snapshots(&st.pool, &[back]).await;
        return Err(e.into());
    }
    voxfleet_store::audit::record(
        &st.pool,
        Some(auth.token_id),
        "job.retry",
        Some(&reset.id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(reset, &st.settings.current().await)),
    ))
}
