//! The API's views of jobs: what `GET /v1/jobs/{id}` and every answer that embeds a job show
//! (progress with its ETA, the error's code and message, the retries left under the current
//! settings).
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use voxfleet_jobs::{JobId, JobKind, JobSnapshot, JobStatus, Priority, QueueName, RetrySettings};

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
