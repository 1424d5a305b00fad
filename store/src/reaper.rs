//! Recovering the jobs of dead workers: leases that expired are reaped (re-queued or failed,
//! with the attempt counted as `worker_lost`) under the retry setting read from PostgreSQL at
//! that moment. Every worker and control plane runs it; the script is atomic, so more runners
//! only make recovery faster.
use voxfleet_jobs::{QueueClient, QueueName};

use crate::settings::RetrySettingsSource;

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
