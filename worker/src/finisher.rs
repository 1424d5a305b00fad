//! Records attempts' outcomes in Redis, batching those that arrive while the previous call is
//! in flight into one script call per queue (a group commit: no added delay when idle, fewer
//! Redis round trips and less Lua overhead per job under load). A freed slot asks for its next
//! job in the same call.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use voxfleet_jobs::{Outage, Outcome, QueueName};

use crate::context::{FinishRequest, Runtime};

/// Most outcomes recorded in one call.
const MAX_BATCH: usize = 64;

pub async fn run(rt: Arc<Runtime>, mut rx: mpsc::Receiver<FinishRequest>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
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
    }
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
    let (statuses, next) = loop {
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
                break (vec![None; items.len()], vec![]);
            }
        }
    };
    drop(items);
    let mut next = next.into_iter();
    for (r, status) in reqs.into_iter().zip(statuses) {
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
