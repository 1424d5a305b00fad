//! Submitting jobs, for every route that does: the checks a caller's submission passes (its
//! kind's payload, who may submit it, its queue, the files it names) and the one path that
//! records and queues it ([`voxfleet_store::submit::record_and_queue`], shared with the
//! scheduler and the worker's follow-up jobs).
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_jobs::{JobInput, JobKind, JobSnapshot, Priority, QueueName, RetrySettings};
use voxfleet_store::jobs::Inserted;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code};
use voxfleet_store::audit_events::AuditEvent;

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
pub fn new_job(sub: SubmitJob, auth: &Auth) -> ApiResult<JobSnapshot> {
    let kind: JobKind = sub.kind.parse().map_err(|e: String| {
        let all: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::new(
            Code::UnknownKind,
            format!("{e}; known kinds: {}", all.join(", ")),
        )
    })?;
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
        Some(auth.user_id),
        sub.idempotency_key,
        sub.max_retries,
    ))
}

/// Jobs that name a file must name one the caller may see (404 otherwise, the same answer
/// as for a file that does not exist): one query for the whole batch. Every submission path
/// (`POST /v1/jobs`, batches, `process` on upload, the OpenAI endpoint) goes through here.
pub async fn check_files(st: &AppState, auth: &Auth, jobs: &[JobSnapshot]) -> ApiResult<()> {
    let named: Vec<(usize, Uuid)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(i, j)| {
            voxfleet_store::submit::files_read(j)
                .into_iter()
                .map(move |f| (i, f))
        })
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
pub async fn check_queues(st: &AppState, jobs: &[JobSnapshot]) -> ApiResult<()> {
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

/// Records then queues jobs already checked (see [`voxfleet_store::submit`]): nothing of a
/// submission that fails stays recorded or queued, so a client that sees an error can simply
/// resubmit.
/// A submission refused for its owner's budget is audited (`budget.transcription.block`,
/// outcome `failure`).
pub async fn submit_many(st: &AppState, jobs: Vec<JobSnapshot>) -> ApiResult<Vec<Inserted>> {
    use voxfleet_store::StoreError;
    use voxfleet_store::submit::SubmitError;
    match voxfleet_store::submit::record_and_queue(&st.pool, &st.queue, &jobs).await {
        Ok(inserted) => Ok(inserted),
        Err(SubmitError::Store(e @ StoreError::BudgetExceeded { .. })) => {
            let owner = jobs.iter().find_map(|j| j.owner);
            let actor = voxfleet_store::audit::Actor {
                user: owner,
                ..Default::default()
            };
            let detail = serde_json::json!({"message": e.to_string()});
            if let Err(a) = voxfleet_store::audit::record_failure(
                &st.pool,
                actor,
                AuditEvent::BudgetTranscriptionBlock,
                owner.map(|o| o.to_string()).as_deref(),
                detail,
            )
            .await
            {
                tracing::warn!(error = %a, "a budget block was not audited");
            }
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A caller's jobs, checked as a whole (queues, then the files they name) and submitted.
pub async fn submit_checked(
    st: &AppState,
    auth: &Auth,
    jobs: Vec<JobSnapshot>,
) -> ApiResult<Vec<Inserted>> {
    check_queues(st, &jobs).await?;
    check_files(st, auth, &jobs).await?;
    submit_many(st, jobs).await
}

/// The header a submission's answer carries when it transcribes and the caller's monthly
/// transcription budget is at or past the warning share.
pub const BUDGET_WARNING: &str = "x-voxfleet-budget-warning";

/// [`BUDGET_WARNING`] for `user` after a submission of `kinds` (empty unless one is a
/// transcription and the budget is at its warning share; a failed read only logs).
pub async fn budget_warning(
    st: &AppState,
    user: uuid::Uuid,
    kinds: impl IntoIterator<Item = JobKind>,
) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    if !kinds.into_iter().any(|k| k == JobKind::Transcribe) {
        return headers;
    }
    match voxfleet_store::budgets::transcription_status(&st.pool, user, chrono::Utc::now()).await {
        Ok(b) => {
            if let Some(v) = b
                .warning_text()
                .and_then(|t| axum::http::HeaderValue::from_str(&t).ok())
            {
                headers.insert(BUDGET_WARNING, v);
            }
        }
        Err(e) => tracing::warn!(error = %e, "budget status unavailable"),
    }
    headers
}
