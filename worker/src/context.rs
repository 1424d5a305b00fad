//! What every part of the worker shares: the [`Runtime`] (connections, settings, the running
//! set, the channels to the runner and the finisher, the models and indexes) and the
//! [`JobContext`] a handler sees. A leaf: it imports no handler and no loop.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use voxfleet_jobs::{
    ClaimedJob, HandlerError, JobId, JobSnapshot, JobStatus, Outcome, QueueClient, QueueName,
};
use voxfleet_store::PgPool;
use voxfleet_store::settings::RetrySettingsSource;

use crate::backend::ClaimedTask;

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
    pub(crate) reason: Arc<AtomicU8>,
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
    /// Successes as the finish script stored them, for the persister (see `maintenance`).
    pub persist_known: mpsc::Sender<Vec<JobSnapshot>>,
    /// Woken when the running set becomes empty (drain waits on it).
    pub idle: Notify,
    /// Cancelled when the worker starts draining: no more claims.
    pub draining: CancellationToken,
    /// Where claimed jobs go to be run (apalis's backend reads the other end).
    pub tasks: mpsc::Sender<ClaimedTask>,
    /// Where outcomes go to be recorded (see `finisher`).
    pub finisher: mpsc::Sender<FinishRequest>,
    /// Media storage and the model cache, for model work.
    pub speech: Arc<crate::steps::speech::Speech>,
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
    pub(crate) async fn record(
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

/// An attempt's outcome on its way to the finisher (see `finisher`).
pub struct FinishRequest {
    pub claimed: ClaimedJob,
    pub outcome: Outcome,
    /// Whether to claim this slot's next job in the same call.
    pub claim_next: bool,
    pub reply: oneshot::Sender<(Option<JobStatus>, Option<ClaimedJob>)>,
}
