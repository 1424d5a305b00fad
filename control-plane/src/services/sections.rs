//! Maintenance sections of the admin panel (reindex, integrity, repair, migration,
//! retention): one run at a time per section, its job submitted and stopped here, its state
//! and report read back with the job's live progress. Routes and the scheduler go through
//! this module.
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_jobs::{CancelOutcome, JobId, JobInput, JobSnapshot, JobStatus, RunState, Section};
use voxfleet_store::audit::Actor;
use voxfleet_store::jobs::Inserted;
use voxfleet_store::search::MaintenanceRun;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code};
use crate::services::jobs::overlay;
use crate::services::submit::{parse_input, submit_many};
use crate::views::{JobView, view};
use voxfleet_store::audit_events::AuditEvent;

/// A section's latest run with its job.
#[derive(Debug, Serialize, ToSchema)]
pub struct SectionView {
    pub section: String,
    /// `running`, `completed`, `stopped`, `failed` (`stalled`, `finalized`, `rolled_back` for
    /// the migration). A run whose job ended without writing its state shows the job's.
    pub state: String,
    #[schema(value_type = Object)]
    pub report: Value,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The job, with its progress and ETA.
    pub job: Option<JobView>,
}

async fn job_of(st: &AppState, id: Option<Uuid>) -> ApiResult<Option<JobSnapshot>> {
    let Some(id) = id else { return Ok(None) };
    let Some(row) = voxfleet_store::jobs::get_job(&st.pool, JobId(id)).await? else {
        return Ok(None);
    };
    Ok(overlay(st, vec![row]).await.pop())
}

pub async fn section_view(st: &AppState, section: Section) -> ApiResult<Option<SectionView>> {
    let Some(run) = voxfleet_store::search::get_run(&st.pool, section.as_str()).await? else {
        return Ok(None);
    };
    Ok(Some(view_of(st, run).await?))
}

async fn view_of(st: &AppState, run: MaintenanceRun) -> ApiResult<SectionView> {
    let job = job_of(st, run.job_id).await?;
    // The row says running but the job ended without saying how (it was cancelled before it
    // started, or failed for good in a way the handler did not record), or has not started.
    let running = run.state.parse() == Ok(RunState::Running);
    let shown = match job.as_ref().map(|j| j.status) {
        Some(JobStatus::Cancelled) if running => Some(RunState::Stopped),
        Some(JobStatus::Failed) if running => Some(RunState::Failed),
        Some(JobStatus::Queued) if running => Some(RunState::Queued),
        _ => None,
    };
    let state = shown.map_or_else(|| run.state.clone(), |s| s.as_str().to_owned());
    let settings = st.settings.current().await;
    Ok(SectionView {
        section: run.section,
        state,
        report: run.report,
        started_at: run.started_at,
        finished_at: run.finished_at,
        job: job.map(|j| view(j, &settings)),
    })
}

/// 409 `already_running` while the section's job is queued, running or retrying.
pub async fn ensure_idle(st: &AppState, section: Section) -> ApiResult<()> {
    if let Some(run) = voxfleet_store::search::get_run(&st.pool, section.as_str()).await?
        && let Some(j) = job_of(st, run.job_id).await?
        && !j.status.is_terminal()
    {
        return Err(ApiError::new(
            Code::AlreadyRunning,
            format!(
                "a {section} run is {} (job {}): stop it first",
                j.status, j.id
            ),
        ));
    }
    Ok(())
}

/// Submits a maintenance job (one at a time per section: its kind's [`JobKind::section`]) and
/// records it as the section's run.
pub async fn start_section(st: &AppState, auth: &Auth, input: JobInput) -> ApiResult<SectionView> {
    start_section_by(st, auth.actor(), input).await
}

/// [`start_section`] on behalf of `actor` (the default: the scheduler); the job is its
/// user's.
pub async fn start_section_by(
    st: &AppState,
    actor: Actor,
    input: JobInput,
) -> ApiResult<SectionView> {
    let kind = input.kind();
    let section = kind.section().ok_or_else(|| {
        ApiError::new(Code::Internal, format!("`{kind}` is not a maintenance job"))
    })?;
    let value = input.to_value();
    parse_input(kind, &value)?;
    ensure_idle(st, section).await?;
    let job = voxfleet_store::submit::new_job(&input, actor.user);
    // The run row first, so a status read right after sees this job (queued).
    voxfleet_store::search::start_run(
        &st.pool,
        section.as_str(),
        job.id.0,
        &json!({ "input": value }),
    )
    .await?;
    let inserted = submit_many(st, vec![job]).await?;
    let id = inserted.first().map(|i: &Inserted| i.job().id.0);
    voxfleet_store::audit::record_as(
        &st.pool,
        actor,
        AuditEvent::section_start(section),
        id.map(|i| i.to_string()).as_deref(),
        value,
    )
    .await?;
    section_view(st, section)
        .await?
        .ok_or_else(|| ApiError::new(Code::Internal, "the run was not recorded"))
}

/// Cancels the section's running job (409 `not_running` when none runs).
pub async fn stop_section(st: &AppState, section: Section) -> ApiResult<SectionView> {
    let run = voxfleet_store::search::get_run(&st.pool, section.as_str())
        .await?
        .ok_or_else(|| ApiError::new(Code::NotRunning, format!("no {section} has run yet")))?;
    let job = job_of(st, run.job_id)
        .await?
        .filter(|j| !j.status.is_terminal())
        .ok_or_else(|| ApiError::new(Code::NotRunning, format!("no {section} is running")))?;
    match st.queue.cancel(&job.queue, &job.id).await? {
        CancelOutcome::Cancelled => {
            // It never started: record the stop ourselves.
            voxfleet_store::search::update_run(
                &st.pool,
                section.as_str(),
                job.id.0,
                RunState::Stopped.as_str(),
                &run.report,
                true,
            )
            .await?;
        }
        CancelOutcome::Cancelling => {}
        CancelOutcome::AlreadyFinished(_) | CancelOutcome::Missing => {
            return Err(ApiError::new(
                Code::NotRunning,
                format!("the {section} run has already ended"),
            ));
        }
    }
    section_view(st, section)
        .await?
        .ok_or_else(|| ApiError::new(Code::Internal, "the run disappeared"))
}
