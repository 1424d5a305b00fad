//! `diagnostic`: sleeps in steps with progress, and fails or crashes on request. Operators use
//! it to smoke-test a deployment, benchmarkers for no-op throughput.
use std::time::Duration;

use serde_json::{Value, json};
use voxfleet_jobs::{DiagnosticFail, DiagnosticInput, HandlerError};

use crate::context::JobContext;

pub async fn run(ctx: &JobContext, input: DiagnosticInput) -> Result<Value, HandlerError> {
    if input.crash && !ctx.rt.allow_crash {
        return Err(HandlerError::permanent(
            "crash_not_allowed",
            "`crash` is honoured only by a worker started with --allow-crash",
        ));
    }
    let steps = u64::from(input.steps.max(1));
    let step = Duration::from_millis(input.sleep_ms / steps);
    let crash_at = steps.div_ceil(2);
    for i in 1..=steps {
        ctx.checkpoint()?;
        if !step.is_zero() {
            ctx.sleep(step).await?;
        }
        if steps > 1 || !step.is_zero() {
            ctx.progress(i, steps).await;
        }
        if input.crash && i == crash_at {
            tracing::warn!("diagnostic job asked this worker to crash; aborting the process");
            std::process::abort();
        }
    }
    let attempt = ctx.job.job.attempts;
    match input.fail {
        DiagnosticFail::Never => {}
        DiagnosticFail::Always => {
            return Err(HandlerError::retryable(
                "diagnostic_failure",
                "failed on request (fail=always)",
            ));
        }
        DiagnosticFail::FirstAttempt if attempt <= 1 => {
            return Err(HandlerError::retryable(
                "diagnostic_failure",
                "failed on request (fail=first_attempt)",
            ));
        }
        DiagnosticFail::FirstAttempt => {}
        DiagnosticFail::Panic => panic!("diagnostic job asked its handler to panic"),
        DiagnosticFail::Permanent => {
            return Err(HandlerError::permanent(
                "diagnostic_failure",
                "failed on request (fail=permanent)",
            ));
        }
    }
    Ok(json!({
        "steps": steps,
        "slept_ms": input.sleep_ms,
        "attempt": attempt,
        "worker": ctx.rt.name,
    }))
}
