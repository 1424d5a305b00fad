//! The life of one attempt: run the handler on its own task
//! (so a panic or a dropped future cannot leave a job leased forever), then record the outcome
//! in Redis, retrying until Redis answers.
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::FutureExt;

use apalis::prelude::{BoxDynError, Data};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;
use voxfleet_jobs::{ClaimedJob, ErrorClass, HandlerError, Outcome};

use crate::backend::ClaimedTask;
use crate::context::{JobContext, Runtime, StopReason};
use crate::handlers;

/// The apalis service function: one attempt of one job.
pub async fn execute(task: ClaimedTask, rt: Data<Arc<Runtime>>) -> Result<(), BoxDynError> {
    let rt: Arc<Runtime> = (*rt).clone();
    let ClaimedTask { claimed, permit } = task;
    let job = &claimed.job;
    let span = tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind, queue = %job.queue, attempt = job.attempts);
    tokio::spawn(run_attempt(rt, claimed, permit).instrument(span))
        .await
        .map_err(|e| e.into())
}

async fn run_attempt(rt: Arc<Runtime>, claimed: ClaimedJob, permit: OwnedSemaphorePermit) {
    let id = claimed.job.id;
    let (cancel, reason) = {
        let map = rt.running.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&id) {
            Some(r) => (r.cancel.clone(), r.reason.clone()),
            None => {
                drop(map);
                rt.register(&claimed)
            }
        }
    };
    let ctx = JobContext {
        rt: rt.clone(),
        job: claimed.clone(),
        cancel: cancel.clone(),
    };
    let started = Instant::now();
    // A panicking handler must not take the attempt down with it: the job would stay
    // registered, its lease renewed forever, "running" for good. It fails with a code instead
    // (permanent: a bug does not go away on retry).
    let fut = async {
        match AssertUnwindSafe(handlers::run(&ctx)).catch_unwind().await {
            Ok(r) => r,
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                tracing::error!(panic = %what, "job handler panicked");
                Err(HandlerError::permanent(
                    "handler_panic",
                    format!("the handler panicked: {what}"),
                ))
            }
        }
    };
    let res = match rt.job_timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => Err(HandlerError::retryable(
                "timeout",
                format!("attempt exceeded {} s", t.as_secs()),
            )),
        },
        None => fut.await,
    };
    let outcome = match res {
        Ok(v) => Outcome::Succeeded(v),
        Err(HandlerError::Failed {
            class,
            code,
            message,
        }) => Outcome::Error {
            class,
            code,
            message,
        },
        Err(HandlerError::Released) => Outcome::Release,
        Err(HandlerError::Cancelled) => match reason.load(Ordering::SeqCst) {
            x if x == StopReason::Release as u8 => Outcome::Release,
            x if x == StopReason::LeaseLost as u8 => {
                tracing::warn!("lease lost while running; the job belongs to its next attempt now");
                rt.unregister(&id);
                return;
            }
            _ => Outcome::Cancelled,
        },
    };
    // the freed slot claims its next job in the same round trip, when the job came from the
    // worker's first-choice queue (so queue preference is kept) and the worker is not draining
    let claim_next = !rt.draining.is_cancelled() && rt.queues.first() == Some(&claimed.job.queue);
    let failure = match &outcome {
        Outcome::Error {
            class,
            code,
            message,
        } => Some((*class, code.clone(), message.clone())),
        _ => None,
    };
    let (status, next) = rt.record(claimed, outcome, claim_next).await;
    rt.unregister(&id);
    rt.persist_wake.notify_one();
    hand_off(&rt, next, permit).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match (failure, status) {
        (_, None) => tracing::warn!(
            elapsed_ms,
            "outcome not recorded: this worker no longer held the job"
        ),
        (Some((class, code, message)), Some(s)) => {
            let retry = class == ErrorClass::Retryable;
            tracing::warn!(elapsed_ms, code, message, retryable = retry, status = %s, "attempt failed")
        }
        (None, Some(s)) => tracing::debug!(elapsed_ms, status = %s, "attempt finished"),
    }
}

/// Passes jobs claimed by a finishing slot to apalis, the first with the slot's permit. Jobs
/// that cannot be run (the worker stopped taking work) go back to the queue untouched.
async fn hand_off(rt: &Arc<Runtime>, next: Option<ClaimedJob>, permit: OwnedSemaphorePermit) {
    let Some(job) = next else { return };
    rt.register(&job);
    let task = ClaimedTask {
        claimed: job,
        permit,
    };
    if let Err(mpsc::error::SendError(t)) = rt.tasks.send(task).await {
        rt.unregister(&t.claimed.job.id);
        let release = Outcome::Release;
        let _ = rt
            .queue
            .finish(&t.claimed, &rt.name, &release, Default::default())
            .await;
    }
}
