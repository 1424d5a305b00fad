//! Background loops of a worker: lease renewal (and cancel requests), the reaper for other
//! workers' expired leases, and the persister that writes job states to PostgreSQL.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxfleet_jobs::{JobId, JobSnapshot, Outage, QueueName};

use crate::context::{Runtime, StopReason};

/// Renews this worker's leases every third of the lease time; tells handlers about cancel
/// requests and lost leases.
pub async fn renew_leases(rt: Arc<Runtime>, stop: CancellationToken) {
    let every = rt.queue.options().lease / 3;
    let mut outage = Outage::new("redis");
    let mut tick = tokio::time::interval(every.min(Duration::from_secs(2)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
        let mut by_queue: BTreeMap<QueueName, Vec<JobId>> = BTreeMap::new();
        for (q, id) in rt.running_ids() {
            by_queue.entry(q).or_default().push(id);
        }
        for (q, ids) in by_queue {
            match rt.queue.renew(&q, &rt.name, &ids).await {
                Ok((lost, cancel)) => {
                    outage.ok();
                    for id in cancel {
                        tracing::info!(job.id = %id, "cancel requested; telling the handler");
                        rt.stop_job(&id, StopReason::Cancel);
                    }
                    for id in lost {
                        rt.stop_job(&id, StopReason::LeaseLost);
                    }
                }
                Err(e) => {
                    outage.failed(&e);
                }
            }
        }
    }
}

/// Re-queues (or fails) jobs whose worker died. Every worker runs it; the script is atomic, so
/// running it in many places only makes recovery faster.
pub async fn reap(rt: Arc<Runtime>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
        for q in &rt.queues {
            if voxfleet_store::reaper::reap_expired(&rt.queue, &rt.settings, q).await > 0 {
                rt.persist_wake.notify_one();
            }
        }
    }
}

/// Most known states written in one statement.
const KNOWN_BATCH: usize = 500;

/// Writes job states to PostgreSQL, in batches, woken after each finished attempt and once a
/// second. The successes this worker recorded arrive whole from the finisher (`known`) and are
/// written without reading Redis again; every other state change (failures, retries, cancels,
/// reaped jobs, or a success whose message was dropped) is swept from the queues' persist
/// sets. While PostgreSQL is down the states wait in Redis and the writes are retried.
pub async fn persist(
    rt: Arc<Runtime>,
    mut known: mpsc::Receiver<Vec<JobSnapshot>>,
    stop: CancellationToken,
) {
    let mut outage = Outage::new("job state persistence");
    loop {
        tokio::select! {
            _ = rt.persist_wake.notified() => {
                // let a burst of completions collect into one batch
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {},
            _ = stop.cancelled() => return,
        }
        let pass_started = rt.queue.now_ms();
        let mut res = persist_known(&rt, &mut known, &mut outage).await;
        if res.is_ok() {
            // Entries newer than this pass are left to the next one: most are successes on
            // their way here through `known`, which would otherwise be read and written twice.
            let age = (rt.queue.now_ms() - pass_started).max(0) as u64;
            res = sweep(&rt, Some(Duration::from_millis(age)), &mut outage).await;
        }
        if let Err(wait) = res {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {},
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Writes the known states waiting in the channel. On a failure they are dropped here: they
/// are still in Redis's persist sets, and a later sweep writes them.
async fn persist_known(
    rt: &Runtime,
    known: &mut mpsc::Receiver<Vec<JobSnapshot>>,
    outage: &mut Outage,
) -> Result<(), Duration> {
    loop {
        let mut batch: Vec<JobSnapshot> = Vec::new();
        while batch.len() < KNOWN_BATCH {
            match known.try_recv() {
                Ok(snaps) => batch.extend(snaps),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        match voxfleet_store::persist::persist_known(&rt.queue, &rt.pool, &batch).await {
            Ok(_) => outage.ok(),
            Err(e) => return Err(outage.failed(&e)),
        }
    }
}

/// One pass over this worker's queues' persist sets, of every entry (the final flush). Err
/// carries the backoff after a failure.
pub async fn persist_once(rt: &Runtime, outage: &mut Outage) -> Result<(), Duration> {
    sweep(rt, None, outage).await
}

/// One pass over this worker's queues' persist sets, of the entries at least `min_age` old.
async fn sweep(
    rt: &Runtime,
    min_age: Option<Duration>,
    outage: &mut Outage,
) -> Result<(), Duration> {
    for q in &rt.queues {
        match voxfleet_store::persist::persist_all(&rt.queue, &rt.pool, q, min_age).await {
            Ok(_) => outage.ok(),
            Err(e) => return Err(outage.failed(&e)),
        }
    }
    Ok(())
}
