//! The fetch loop: claims a job only while a concurrency slot is free, hands it to apalis,
//! and blocks on the queues' wake lists when there is nothing to claim, so an idle worker
//! starts a new job as soon as it is pushed.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use voxfleet_jobs::{Claim, Outage, Outcome};

use crate::backend::ClaimedTask;
use crate::runtime::Runtime;

/// Longest block on the wake lists; a safety net only (enqueues wake workers directly).
const MAX_BLOCK: Duration = Duration::from_secs(2);

pub async fn run(rt: Arc<Runtime>, slots: Arc<Semaphore>, tx: mpsc::Sender<ClaimedTask>, stop: CancellationToken) {
    let mut blocking = match rt.queue.blocking_connection(MAX_BLOCK) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the blocking Redis connection");
            return;
        }
    };
    let mut outage = Outage::new("redis");
    'outer: while !stop.is_cancelled() {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.cancelled() => break,
        };
        let mut next_due: Option<i64> = None;
        for q in &rt.queues {
            match rt.queue.claim(q, &rt.name).await {
                Ok(Claim::Job(job)) => {
                    outage.ok();
                    rt.register(&job);
                    let task = ClaimedTask { claimed: *job, permit };
                    if let Err(mpsc::error::SendError(task)) = tx.send(task).await {
                        // apalis has stopped taking work: give the job back untouched
                        let _ = rt.queue.finish(&task.claimed, &rt.name, &Outcome::Release, Default::default()).await;
                        break 'outer;
                    }
                    continue 'outer;
                }
                Ok(Claim::Empty { next_due_ms }) => {
                    outage.ok();
                    if let Some(d) = next_due_ms {
                        next_due = Some(next_due.map_or(d, |n| n.min(d)));
                    }
                }
                Err(e) => {
                    let wait = outage.failed(&e);
                    drop(permit);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = stop.cancelled() => {},
                    }
                    continue 'outer;
                }
            }
        }
        drop(permit);
        // Nothing to claim: block until an enqueue signals, or the next retry is due.
        let mut wait = MAX_BLOCK;
        if let Some(due) = next_due {
            let ms = (due - voxfleet_jobs::model::now_ms()).max(10) as u64;
            wait = wait.min(Duration::from_millis(ms));
        }
        tokio::select! {
            r = rt.queue.wait_for_work(&mut blocking, &rt.queues, wait) => {
                if let Err(e) = r {
                    let wait = outage.failed(&e);
                    tokio::time::sleep(wait).await;
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    tracing::debug!("fetch loop stopped");
}
