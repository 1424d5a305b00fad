//! The fetch loop: claims a job only while a concurrency slot is free, hands it to apalis,
//! and blocks on the queues' wake lists when there is nothing to claim, so an idle worker
//! starts a new job as soon as it is pushed.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use voxfleet_jobs::{Outage, Outcome};

use crate::backend::ClaimedTask;
use crate::context::Runtime;

/// Longest block on the wake lists; a safety net only (enqueues wake workers directly).
const MAX_BLOCK: Duration = Duration::from_secs(2);

/// Most jobs claimed in one round trip.
const MAX_BATCH: usize = 16;

pub async fn run(
    rt: Arc<Runtime>,
    slots: Arc<Semaphore>,
    tx: mpsc::Sender<ClaimedTask>,
    stop: CancellationToken,
) {
    let mut waiter = match rt.queue.waiter(&rt.queues, MAX_BLOCK) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the blocking Redis connection");
            return;
        }
    };
    let mut outage = Outage::new("redis");
    'outer: while !stop.is_cancelled() {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.cancelled() => break,
        };
        // every free slot, so one round trip can fill them all
        let mut permits = vec![first];
        while permits.len() < MAX_BATCH {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let mut next_due: Option<i64> = None;
        let mut claimed_any = false;
        for q in &rt.queues {
            if permits.is_empty() {
                break;
            }
            match rt.queue.claim_many(q, &rt.name, permits.len()).await {
                Ok((jobs, due)) => {
                    outage.ok();
                    if let Some(d) = due {
                        next_due = Some(next_due.map_or(d, |n| n.min(d)));
                    }
                    for job in jobs {
                        claimed_any = true;
                        let Some(permit) = permits.pop() else { break };
                        rt.register(&job);
                        if let Err(mpsc::error::SendError(task)) = tx
                            .send(ClaimedTask {
                                claimed: job,
                                permit,
                            })
                            .await
                        {
                            // apalis has stopped taking work: give the job back untouched
                            rt.unregister(&task.claimed.job.id);
                            let _ = rt
                                .queue
                                .finish(
                                    &task.claimed,
                                    &rt.name,
                                    &Outcome::Release,
                                    Default::default(),
                                )
                                .await;
                            break 'outer;
                        }
                    }
                }
                Err(e) => {
                    let wait = outage.failed(&e);
                    drop(permits);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = stop.cancelled() => {},
                    }
                    continue 'outer;
                }
            }
        }
        drop(permits);
        if claimed_any {
            continue;
        }
        // Nothing to claim: block until an enqueue signals, or the next retry is due.
        let mut wait = MAX_BLOCK;
        if let Some(due) = next_due {
            let ms = (due - voxfleet_jobs::model::now_ms()).max(10) as u64;
            wait = wait.min(Duration::from_millis(ms));
        }
        tokio::select! {
            r = waiter.wait(wait) => {
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
