//! Jobs: submit (single and batch), get, list, cancel, re-run.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_jobs::{CancelOutcome, JobKind, JobStatus};
use voxfleet_store::jobs::{Inserted, ListFilter};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::services::jobs::{load, overlay};
pub use crate::services::submit::SubmitJob;
use crate::services::submit::{budget_warning, new_job, submit_checked};
use crate::views::{JobView, view};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    pub jobs: Vec<SubmitJob>,
}

/// Submit a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = SubmitJob,
    responses((status = 202, description = "queued", body = JobView),
              (status = 200, description = "idempotency key seen before: the existing job", body = JobView),
              (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(sub): ApiJson<SubmitJob>,
) -> ApiResult<(StatusCode, HeaderMap, Json<JobView>)> {
    let job = new_job(sub, &auth)?;
    let mut out = submit_checked(&st, &auth, vec![job]).await?;
    let settings = st.settings.current().await;
    match out.pop() {
        Some(Inserted::Created(j)) => {
            let warning = budget_warning(&st, auth.user_id, [j.kind]).await;
            Ok((StatusCode::ACCEPTED, warning, Json(view(j, &settings))))
        }
        Some(Inserted::Existing(j)) => {
            let j = overlay(&st, vec![j])
                .await
                .pop()
                .ok_or_else(|| ApiError::not_found("job"))?;
            Ok((StatusCode::OK, HeaderMap::new(), Json(view(j, &settings))))
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
) -> ApiResult<(StatusCode, HeaderMap, Json<BatchView>)> {
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
            new_job(s, &auth)
                .map_err(|e| ApiError::new(e.code, format!("jobs[{i}]: {}", e.message)))?,
        );
    }
    let out = submit_checked(&st, &auth, jobs).await?;
    let settings = st.settings.current().await;
    let warning = budget_warning(&st, auth.user_id, out.iter().map(|i| i.job().kind)).await;
    let jobs = out
        .into_iter()
        .map(|i| match i {
            Inserted::Created(j) | Inserted::Existing(j) => view(j, &settings),
        })
        .collect();
    Ok((StatusCode::ACCEPTED, warning, Json(BatchView { jobs })))
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
        owner: (!auth.is_admin()).then_some(auth.user_id),
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
    let reset = crate::services::recovery::rerun(&st, &auth, j).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(reset, &st.settings.current().await)),
    ))
}
