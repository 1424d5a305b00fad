//! Records attempts' outcomes in Redis, batching those that arrive while earlier calls are
//! in flight into one script call per queue (a group commit: no added delay when idle, fewer
//! Redis round trips and less Lua overhead per job under load). A freed slot asks for its next
//! job in the same call.
//!
//! Up to [`IN_FLIGHT`] calls run at once, each with at most a share of the worker's slots, so
//! the slots split into groups that take turns: while Redis records one group's outcomes the
//! worker runs the others' jobs. With a single call in flight every slot waited on the same
//! reply, and the worker and Redis idled in turn.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use voxfleet_jobs::{Finished, Outage, Outcome, QueueName};

use crate::context::{FinishRequest, Runtime};

/// Most outcomes recorded in one call.
const MAX_BATCH: usize = 64;
/// Fewest outcomes a call may take when more are waiting (smaller batches cost more Lua
/// overhead per job than the overlap wins back).
const MIN_BATCH: usize = 8;
/// Calls recording outcomes at once.
const IN_FLIGHT: usize = 4;

/// Outcomes one call takes at most, for a worker of `concurrency` slots.
fn batch_cap(concurrency: usize) -> usize {
    (concurrency / IN_FLIGHT).clamp(MIN_BATCH, MAX_BATCH)
}

pub async fn run(rt: Arc<Runtime>, mut rx: mpsc::Receiver<FinishRequest>, concurrency: usize) {
    let cap = batch_cap(concurrency);
    let calls = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut in_flight = JoinSet::new();
    while let Some(first) = rx.recv().await {
        // the batch is gathered once a call may start, so outcomes that arrived meanwhile join it
        let Ok(permit) = calls.clone().acquire_owned().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < cap {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let rt = rt.clone();
        in_flight.spawn(async move {
            let mut by_queue: BTreeMap<QueueName, Vec<FinishRequest>> = BTreeMap::new();
            for r in batch {
                by_queue
                    .entry(r.claimed.job.queue.clone())
                    .or_default()
                    .push(r);
            }
            for (queue, reqs) in by_queue {
                record(&rt, &queue, reqs).await;
            }
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// Records one queue's outcomes, retrying while Redis is unreachable (the leases keep the jobs
/// ours meanwhile; if the outage outlasts them, the reaper counts the attempts).
async fn record(rt: &Runtime, queue: &QueueName, reqs: Vec<FinishRequest>) {
    let settings = if reqs
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Error { .. }))
    {
        rt.settings.current().await
    } else {
        Default::default()
    };
    let mut claim_next = reqs.iter().filter(|r| r.claim_next).count();
    let items: Vec<_> = reqs.iter().map(|r| (&r.claimed, &r.outcome)).collect();
    let mut outage = Outage::new("redis");
    let deadline = Instant::now() + rt.queue.options().lease * 4;
    let done = loop {
        match rt
            .queue
            .finish_many(queue, &rt.name, &items, settings, claim_next)
            .await
        {
            Ok(r) => {
                outage.ok();
                break r;
            }
            Err(e) if Instant::now() < deadline => {
                // the first call may have run before its reply was lost: claim nothing more on
                // retries (a job claimed then would only come back through its lease)
                claim_next = 0;
                let wait = outage.failed(&e);
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                tracing::error!(queue = %queue, jobs = items.len(), error = %e, "could not record outcomes; their leases will expire and the jobs be retried");
                break Finished {
                    statuses: vec![None; items.len()],
                    ..Default::default()
                };
            }
        }
    };
    drop(items);
    if !done.succeeded.is_empty() {
        // to the persister, which writes them without reading them back; if it is behind,
        // they wait in Redis's persist set for its sweep instead
        let _ = rt.persist_known.try_send(done.succeeded);
    }
    let mut next = done.next.into_iter();
    for (r, status) in reqs.into_iter().zip(done.statuses) {
        let job = if r.claim_next { next.next() } else { None };
        if let Err((_, Some(job))) = r.reply.send((status, job)) {
            // the requester is gone (cannot happen while the attempt task lives): give it back
            let _ = rt
                .queue
                .finish(&job, &rt.name, &Outcome::Release, Default::default())
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_the_slots_into_groups_within_bounds() {
        assert_eq!(batch_cap(1), MIN_BATCH);
        assert_eq!(batch_cap(8), MIN_BATCH);
        assert_eq!(batch_cap(32), 8);
        assert_eq!(batch_cap(128), 32);
        assert_eq!(batch_cap(1024), MAX_BATCH);
    }
}
