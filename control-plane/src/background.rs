//! Background work of the control plane: the Redis pub/sub listener that feeds event streams
//! and job metrics, and the maintenance sweep (reaper for dead workers' jobs, a safety-net
//! persister for states a worker could not write to PostgreSQL before it died, and the jobs
//! PostgreSQL holds as waiting that Redis lost, queued again).
use std::time::Duration;

use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voxfleet_jobs::{JobEvent, Outage};

use crate::AppState;

pub fn spawn_all(st: AppState, stop: CancellationToken) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(listen_events(st.clone(), stop.clone())),
        tokio::spawn(crate::scheduler::run(st.clone(), stop.clone())),
        tokio::spawn(maintain(st, stop)),
    ]
}

/// Subscribes to the job events channel, reconnecting with backoff after Redis restarts.
async fn listen_events(st: AppState, stop: CancellationToken) {
    let channel = st.queue.keys().events();
    let mut outage = Outage::new("redis");
    while !stop.is_cancelled() {
        let sub = async {
            let mut ps = st.queue.pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, voxfleet_jobs::QueueError>(ps)
        };
        let ps = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(5), sub) => r,
            _ = stop.cancelled() => return,
        };
        let ps = match ps {
            Ok(Ok(ps)) => ps,
            Ok(Err(e)) => {
                let wait = outage.failed(&e);
                tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = stop.cancelled() => return }
            }
            Err(_) => {
                let wait = outage.failed(&"subscribe timed out");
                tokio::select! { _ = tokio::time::sleep(wait) => continue, _ = stop.cancelled() => return }
            }
        };
        outage.ok();
        let mut stream = ps.into_on_message();
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                _ = stop.cancelled() => return,
            };
            let Some(msg) = msg else {
                // the connection dropped (Redis restarted): resubscribe
                let wait = outage.failed(&"event subscription lost");
                tokio::time::sleep(wait).await;
                break;
            };
            let Ok(ev) = serde_json::from_slice::<JobEvent>(msg.get_payload_bytes()) else {
                continue;
            };
            record_metrics(&ev);
            let _ = st.events.send(ev);
        }
    }
}

/// Per status event: `voxfleet_jobs_total{kind,queue,outcome}` (outcome `retried` for an
/// attempt that will be retried), `voxfleet_job_retries_total{kind,queue}`, and the run time of
/// the last attempt of finished jobs in `voxfleet_job_duration_seconds{kind,queue}`.
fn record_metrics(ev: &JobEvent) {
    if ev.event_type != "status" {
        return;
    }
    let outcome = match ev.status {
        voxfleet_jobs::JobStatus::Succeeded => "succeeded",
        voxfleet_jobs::JobStatus::Failed => "failed",
        voxfleet_jobs::JobStatus::Cancelled => "cancelled",
        voxfleet_jobs::JobStatus::Retrying => "retried",
        _ => return,
    };
    metrics::counter!("voxfleet_jobs_total", "kind" => ev.kind.clone(), "queue" => ev.queue.clone(), "outcome" => outcome).increment(1);
    if ev.status == voxfleet_jobs::JobStatus::Retrying {
        metrics::counter!("voxfleet_job_retries_total", "kind" => ev.kind.clone(), "queue" => ev.queue.clone()).increment(1);
    }
    if let Some(s) = ev.started_at
        && ev.status.is_terminal()
    {
        metrics::histogram!("voxfleet_job_duration_seconds", "kind" => ev.kind.clone(), "queue" => ev.queue.clone())
            .record((ev.at - s).max(0) as f64 / 1000.0);
    }
}

/// Every 2 s: reap expired leases and persist states older than 5 s, on every known queue.
/// Every half of `requeue_lost_after` (at most 30 s): queue again the waiting jobs Redis lost.
async fn maintain(st: AppState, stop: CancellationToken) {
    let mut redis_outage = Outage::new("redis");
    let mut pg_outage = Outage::new("job state persistence");
    let lost_after = st.limits.requeue_lost_after;
    let sweep_every = (lost_after / 2).min(Duration::from_secs(30));
    let mut last_sweep = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
        let queues = match st.queue.known_queues().await {
            Ok(q) => {
                redis_outage.ok();
                q
            }
            Err(e) => {
                redis_outage.failed(&e);
                continue;
            }
        };
        for q in &queues {
            voxfleet_store::reaper::reap_expired(&st.queue, &st.settings, q).await;
            match voxfleet_store::persist::persist_all(
                &st.queue,
                &st.pool,
                q,
                Some(Duration::from_secs(5)),
            )
            .await
            {
                Ok(_) => pg_outage.ok(),
                Err(e) => {
                    pg_outage.failed(&e);
                }
            }
        }
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = tokio::time::Instant::now();
            if let Err(e) =
                voxfleet_store::reaper::requeue_lost(&st.queue, &st.pool, lost_after).await
            {
                tracing::debug!(error = %e, "the sweep for jobs Redis lost failed");
            }
        }
    }
}
