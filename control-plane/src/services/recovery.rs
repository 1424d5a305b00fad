//! Putting failed and stuck work back in the queue: one job's re-run (`POST
//! /v1/jobs/{id}/retry`), what makes a running job stuck (the task health view), and an
//! admin's "recover files" for one user (`POST /v1/users/{id}/recover`).
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_jobs::{EnqueueRequest, JobKind, JobSnapshot, JobStatus};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code};
use crate::services::submit::submit_many;
use voxfleet_store::audit_events::AuditEvent;

/// Why a running job is reported stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StuckReason {
    /// No worker holds a lease on it (the reaper re-queues jobs whose lease expired, so a
    /// running job without one was lost between Redis and PostgreSQL).
    NoLease,
    /// Its lease expired and the reaper has not recovered it yet.
    LeaseExpired,
    /// Running longer than its kind's maximum run time, though still leased.
    MaxRuntimeExceeded,
}

/// Whether a job PostgreSQL records as running is stuck: `live_status` is Redis's view
/// (None when Redis has no record), `lease_deadline_ms` its lease, `age` how long it has run,
/// `kind` its kind's name.
pub fn stuck_reason(
    live_status: Option<JobStatus>,
    lease_deadline_ms: Option<i64>,
    age: Duration,
    kind: &str,
) -> Option<StuckReason> {
    // PostgreSQL lags Redis by a few seconds: a job Redis has seen end is not stuck
    if live_status.is_some_and(|s| s != JobStatus::Running) {
        return None;
    }
    let max = kind
        .parse::<JobKind>()
        .map_or(Duration::ZERO, JobKind::max_runtime);
    match lease_deadline_ms {
        None => Some(StuckReason::NoLease),
        Some(d) if d < Utc::now().timestamp_millis() => Some(StuckReason::LeaseExpired),
        Some(_) if age > max => Some(StuckReason::MaxRuntimeExceeded),
        Some(_) => None,
    }
}

/// Re-runs a failed or cancelled job from its first attempt (audited `job.retry`).
pub async fn rerun(st: &AppState, auth: &Auth, j: JobSnapshot) -> ApiResult<JobSnapshot> {
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
    if let Err(e) = st.queue.enqueue(&EnqueueRequest::from(&reset)).await {
        // put the record back as it was (with a newer version), so it can be re-run later
        let mut back = j.clone();
        back.version = reset.version + 1;
        let _ = voxfleet_store::jobs::upsert_snapshots(&st.pool, &[back]).await;
        return Err(e.into());
    }
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::JobRetry,
        Some(&reset.id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    Ok(reset)
}

/// What [`recover_user`] put back in the queue.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Recovered {
    /// Failed (or cancelled) newest transcriptions and diarizations re-run.
    pub failed_requeued: u64,
    /// Stuck ones: marked cancelled and submitted again as new jobs.
    pub stuck_requeued: u64,
    /// Running ones that are not stuck, left alone.
    pub running_left: u64,
    /// The jobs now queued.
    pub jobs: Vec<Uuid>,
}

/// Re-queues user `user`'s failed and stuck work: the newest transcription and diarization
/// job of each of their files. A failed or cancelled one re-runs; a stuck one (see
/// [`stuck_reason`]) is cancelled and submitted again as a new job, which the file then
/// points at. Audited `admin.user.recover`.
pub async fn recover_user(st: &AppState, auth: &Auth, user: Uuid) -> ApiResult<Recovered> {
    let jobs = voxfleet_store::jobs::latest_file_jobs(&st.pool, user).await?;
    let jobs = crate::services::jobs::overlay(st, jobs).await;
    let mut out = Recovered::default();
    let running: Vec<&JobSnapshot> = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Running)
        .collect();
    let items: Vec<_> = running.iter().map(|j| (j.queue.clone(), j.id)).collect();
    let deadlines = st.queue.lease_deadlines(&items).await?;
    let mut fresh = Vec::new();
    for (j, deadline) in running.into_iter().zip(deadlines) {
        let age = (Utc::now() - j.started_at.unwrap_or(j.created_at))
            .to_std()
            .unwrap_or_default();
        if stuck_reason(Some(j.status), deadline, age, j.kind.as_str()).is_none() {
            out.running_left += 1;
            continue;
        }
        let _ = st.queue.cancel(&j.queue, &j.id).await;
        voxfleet_store::jobs::mark_abandoned(&st.pool, j.id).await?;
        fresh.push(voxfleet_store::jobs::new_snapshot(
            j.kind,
            j.queue.clone(),
            j.priority,
            j.input.clone(),
            j.owner,
            None,
            j.max_retries,
        ));
    }
    out.stuck_requeued = fresh.len() as u64;
    for inserted in submit_many(st, fresh).await? {
        out.jobs.push(inserted.job().id.0);
    }
    for j in jobs
        .into_iter()
        .filter(|j| matches!(j.status, JobStatus::Failed | JobStatus::Cancelled))
    {
        let reset = rerun(st, auth, j).await?;
        out.failed_requeued += 1;
        out.jobs.push(reset.id.0);
    }
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::AdminUserRecover,
        Some(&user.to_string()),
        serde_json::json!({"failed_requeued": out.failed_requeued,
                           "stuck_requeued": out.stuck_requeued}),
    )
    .await?;
    Ok(out)
}
