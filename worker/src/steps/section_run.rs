//! What the maintenance jobs (reindex, integrity check, embedding repair and migration) share:
//! their section's row in `maintenance_runs` (live counts while they run, the final report
//! after), progress for the API's ETA, and the way a stop request ends them: a `stopped`
//! event and a `stopped` report with the counts so far, then `cancelled`.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use voxfleet_jobs::{HandlerError, RunState, Section};

use crate::context::JobContext;

/// The live report is written to PostgreSQL at most this often (progress events go out on
/// every step).
const REPORT_EVERY: Duration = Duration::from_millis(500);

pub struct Run<'a> {
    ctx: &'a JobContext,
    /// `None` for runs that are not a section's (a reindex of the files a transcription just
    /// wrote).
    section: Option<Section>,
    pub started: Instant,
    last: Mutex<Option<Instant>>,
}

impl<'a> Run<'a> {
    pub async fn start(
        ctx: &'a JobContext,
        section: Option<Section>,
        report: &Value,
    ) -> Result<Run<'a>, HandlerError> {
        if let Some(s) = section {
            voxfleet_store::search::start_run(&ctx.rt.pool, s.as_str(), ctx.job.job.id.0, report)
                .await?;
        }
        Ok(Run {
            ctx,
            section,
            started: Instant::now(),
            last: Mutex::new(None),
        })
    }

    /// Reports `done` of `total` (and, now and then, the live report).
    pub async fn progress(&self, done: u64, total: u64, report: &Value) {
        self.ctx.progress(done, total).await;
        let due = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= REPORT_EVERY) || done >= total;
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.write(RunState::Running, report, false).await;
        }
    }

    /// Whether a stop (cancel) was asked for.
    pub fn stop_requested(&self) -> bool {
        self.ctx.cancel.is_cancelled()
    }

    /// Ends the run as stopped: the report keeps the counts so far, a `stopped` event goes
    /// out, and the job ends `cancelled`.
    pub async fn stopped(&self, done: u64, total: u64, mut report: Value) -> HandlerError {
        add_timing(&mut report, self.started);
        self.write(RunState::Stopped, &report, true).await;
        if let Err(e) = self
            .ctx
            .rt
            .queue
            .publish_event(&self.ctx.job, "stopped", done, total)
            .await
        {
            tracing::debug!(error = %e, "stopped event not published");
        }
        tracing::info!(job.id = %self.ctx.job.job.id, done, total, "stopped on request");
        HandlerError::Cancelled
    }

    /// Ends the run with its final report (`completed` or another final state).
    pub async fn finish(&self, state: RunState, mut report: Value) -> Value {
        add_timing(&mut report, self.started);
        self.write(state, &report, true).await;
        report
    }

    /// Records a failure that ends the run (not one that will be retried).
    pub async fn failed(&self, err: &HandlerError, mut report: Value) {
        if let HandlerError::Failed { code, message, .. } = err {
            report["error"] = json!({"code": code, "message": message});
        }
        self.write(RunState::Failed, &report, true).await;
    }

    async fn write(&self, state: RunState, report: &Value, finished: bool) {
        let Some(section) = self.section else { return };
        if let Err(e) = voxfleet_store::search::update_run(
            &self.ctx.rt.pool,
            section.as_str(),
            self.ctx.job.job.id.0,
            state.as_str(),
            report,
            finished,
        )
        .await
        {
            tracing::warn!(section = section.as_str(), error = %e, "maintenance report not written");
        }
    }
}

fn add_timing(report: &mut Value, started: Instant) {
    if let Some(o) = report.as_object_mut() {
        o.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    }
}

/// Runs a section's body; a permanent failure is written to the section's report before it
/// is returned (a retryable one leaves the run `running`: the next attempt continues it).
pub async fn finish_or_record(
    run: &Run<'_>,
    res: Result<Value, HandlerError>,
    report_on_error: impl FnOnce() -> Value,
) -> Result<Value, HandlerError> {
    if let Err(e @ HandlerError::Failed { class, .. }) = &res
        && *class == voxfleet_jobs::ErrorClass::Permanent
    {
        run.failed(e, report_on_error()).await;
    }
    res
}
