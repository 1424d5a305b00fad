//! The worker's shared state and the life of one attempt: run the handler on its own task
//! (so a panic or a dropped future cannot leave a job leased forever), then record the outcome
//! in Redis, retrying until Redis answers.
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;

use apalis::prelude::{BoxDynError, Data};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use voxfleet_jobs::{
    ClaimedJob, ErrorClass, HandlerError, JobId, JobStatus, Outcome, QueueClient, QueueName,
};
use voxfleet_store::PgPool;
use voxfleet_store::settings::RetrySettingsSource;

use crate::backend::ClaimedTask;
use crate::finisher::FinishRequest;
use crate::handlers;

/// Why a running job's token was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    /// A user asked to cancel it.
    Cancel = 1,
    /// This worker no longer holds its lease (it was reaped); someone else owns it now.
    LeaseLost = 2,
    /// The worker is draining and gives the job back.
    Release = 3,
}

pub struct RunningJob {
    pub queue: QueueName,
    pub cancel: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl RunningJob {
    pub fn stop(&self, why: StopReason) {
        // the first reason wins: a cancel request is not turned into a release
        let _ = self
            .reason
            .compare_exchange(0, why as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.cancel.cancel();
    }
}

pub struct Runtime {
    pub queue: QueueClient,
    pub pool: PgPool,
    pub settings: RetrySettingsSource,
    pub name: String,
    pub queues: Vec<QueueName>,
    pub allow_crash: bool,
    pub job_timeout: Option<Duration>,
    pub running: Mutex<HashMap<JobId, RunningJob>>,
    /// Woken after every finished attempt so its state reaches PostgreSQL promptly.
    pub persist_wake: Notify,
    /// Woken when the running set becomes empty (drain waits on it).
    pub idle: Notify,
    /// Cancelled when the worker starts draining: no more claims.
    pub draining: CancellationToken,
    /// Where claimed jobs go to be run (apalis's backend reads the other end).
    pub tasks: mpsc::Sender<ClaimedTask>,
    /// Where outcomes go to be recorded (see `finisher`).
    pub finisher: mpsc::Sender<FinishRequest>,
    /// Media storage and the model cache, for model work.
    pub speech: Arc<crate::handlers::transcribe::Speech>,
    /// The search index and the text-embedding models.
    pub search: Arc<crate::search_ctx::SearchContext>,
    /// NVML, shared by the heartbeat and the `collect_stats` job.
    pub gpus: Arc<crate::gpu::Gpus>,
    /// The host name the worker reports.
    pub host: String,
}

impl Runtime {
    pub fn running_ids(&self) -> Vec<(QueueName, JobId)> {
        let map = self.running.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(id, r)| (r.queue.clone(), *id)).collect()
    }

    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn stop_job(&self, id: &JobId, why: StopReason) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            r.stop(why);
        }
    }

    pub fn stop_all(&self, why: StopReason) {
        for r in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            r.stop(why);
        }
    }

    /// Registers a freshly claimed job (done by the fetch loop, before the hand-off, so its
    /// lease is renewed from the first moment).
    pub fn register(&self, job: &ClaimedJob) -> (CancellationToken, Arc<AtomicU8>) {
        let cancel = CancellationToken::new();
        let reason = Arc::new(AtomicU8::new(0));
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                job.job.id,
                RunningJob {
                    queue: job.job.queue.clone(),
                    cancel: cancel.clone(),
                    reason: reason.clone(),
                },
            );
        (cancel, reason)
    }

    pub fn unregister(&self, id: &JobId) {
        let mut map = self.running.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
        if map.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Records an attempt's outcome through the finisher; with `claim_next`, the same call
    /// claims the freed slot's next job of that queue.
    async fn record(
        &self,
        claimed: ClaimedJob,
        outcome: Outcome,
        claim_next: bool,
    ) -> (Option<JobStatus>, Option<ClaimedJob>) {
        let (reply, rx) = oneshot::channel();
        let req = FinishRequest {
            claimed,
            outcome,
            claim_next,
            reply,
        };
        if self.finisher.send(req).await.is_err() {
            return (None, None);
        }
        rx.await.unwrap_or((None, None))
    }
}

/// What a handler sees: its job, progress reporting and its cancellation token.
pub struct JobContext {
    pub rt: Arc<Runtime>,
    pub job: ClaimedJob,
    pub cancel: CancellationToken,
}

impl JobContext {
    /// Reports progress (best effort: a failed report is logged, not fatal).
    pub async fn progress(&self, done: u64, total: u64) {
        if let Err(e) = self.rt.queue.progress(&self.job, done, total).await {
            tracing::debug!(job.id = %self.job.job.id, error = %e, "progress report failed");
        }
    }

    /// A cancellation checkpoint.
    pub fn checkpoint(&self) -> Result<(), HandlerError> {
        if self.cancel.is_cancelled() {
            Err(HandlerError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Sleeps, waking early (with `Cancelled`) if the job is cancelled.
    pub async fn sleep(&self, d: Duration) -> Result<(), HandlerError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancel.cancelled() => Err(HandlerError::Cancelled),
        }
    }
}

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
