//! Recovering the jobs of dead workers: leases that expired are reaped (re-queued or failed,
//! with the attempt counted as `worker_lost`) under the retry setting read from PostgreSQL at
//! that moment. Every worker and control plane runs it; the script is atomic, so more runners
//! only make recovery faster.
//!
//! [`requeue_lost`] covers the other way a job can be lost: PostgreSQL holds it as not finished
//! while Redis has no record of it (a write the old master acknowledged and never replicated
//! before a failover, or a Redis restarted without persistence).
use std::time::Duration;

use sqlx::PgPool;
use voxfleet_jobs::{EnqueueRequest, JobId, QueueClient, QueueName};

use crate::jobs::unfinished_since;
use crate::persist::PersistError;
use crate::settings::RetrySettingsSource;

/// Rows read from PostgreSQL and checked in Redis per round trip.
const REQUEUE_PAGE: i64 = 500;

/// Reaps `queue`'s expired leases; returns how many jobs it recovered. A cheap count comes
/// first, so the setting is only read when there is something to decide.
pub async fn reap_expired(
    queue: &QueueClient,
    settings: &RetrySettingsSource,
    name: &QueueName,
) -> usize {
    match queue.expired_leases(name).await {
        Ok(0) | Err(_) => return 0,
        Ok(_) => {}
    }
    match queue.reap(name, settings.current().await).await {
        Ok(done) => {
            for (id, status) in &done {
                tracing::warn!(job.id = %id, queue = %name, status = %status, "reaped a job whose worker was lost");
            }
            done.len()
        }
        Err(e) => {
            tracing::debug!(error = %e, "reap failed");
            0
        }
    }
}

/// Queues again every job that PostgreSQL holds as `queued`, `retrying` or `running`,
/// unchanged for at least `min_age`, and that Redis has no record of; returns their ids. A job
/// Redis knows is left alone (checked atomically in Redis per job), so it is safe to run
/// anywhere and at any time: a job that is really running has its hash in Redis until it
/// ends, and a finished job's hash expires only after PostgreSQL has its final state, so
/// neither is touched. `min_age` keeps it away from submissions between their row and their
/// push. A `retrying` job comes back queued (its backoff is not kept); a `running` one was in
/// an attempt Redis forgot (its worker finds its lease gone and stops), and runs again.
/// Each re-queued job is logged.
pub async fn requeue_lost(
    queue: &QueueClient,
    pool: &PgPool,
    min_age: Duration,
) -> Result<Vec<JobId>, PersistError> {
    let mut requeued = Vec::new();
    let mut after = None;
    loop {
        let page = unfinished_since(pool, min_age, after, REQUEUE_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.0));
        let reqs: Vec<EnqueueRequest> = page.iter().map(EnqueueRequest::from).collect();
        for id in queue.requeue_lost(&reqs).await? {
            tracing::warn!(job.id = %id, "queued a job again that Redis had lost (PostgreSQL held it as waiting)");
            metrics::counter!("voxfleet_jobs_requeued_lost_total").increment(1);
            requeued.push(id);
        }
        if page.len() < REQUEUE_PAGE as usize {
            break;
        }
    }
    Ok(requeued)
}
