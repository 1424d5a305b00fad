//! Moving job states from Redis to PostgreSQL. A state change adds the job to its queue's
//! persist set (inside the same Lua script), and it leaves that set only after PostgreSQL has
//! that version. While PostgreSQL is unreachable the states wait in Redis and are retried; a
//! finished job's hash starts its TTL only once it is stored.
use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgPool;
use voxfleet_jobs::{JobId, JobSnapshot, QueueClient, QueueName};

use crate::db::StoreError;
use crate::jobs::upsert_snapshots;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Queue(#[from] voxfleet_jobs::QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes up to `limit` pending states of `queue` (only those at least `min_age` old, if
/// given). Returns how many were written and acknowledged.
pub async fn persist_batch(
    queue: &QueueClient,
    pool: &PgPool,
    name: &QueueName,
    min_age: Option<Duration>,
    limit: usize,
) -> Result<usize, PersistError> {
    let snaps = queue.awaiting_persist(name, min_age, limit).await?;
    if snaps.is_empty() {
        return Ok(0);
    }
    upsert_snapshots(pool, &snaps).await?;
    let done: Vec<_> = snaps.iter().map(|s| (s.id, s.version)).collect();
    queue.mark_persisted(name, &done).await?;
    Ok(snaps.len())
}

/// Writes states the caller already holds, exactly as Redis has them (a worker's own
/// successes, as its finish script wrote them), and acknowledges them: they leave the persist
/// sets without being read back from Redis. One whose hash has changed again since stays in
/// its set for the next [`persist_batch`].
pub async fn persist_known(
    queue: &QueueClient,
    pool: &PgPool,
    snaps: &[JobSnapshot],
) -> Result<usize, PersistError> {
    if snaps.is_empty() {
        return Ok(0);
    }
    upsert_snapshots(pool, snaps).await?;
    let mut by_queue: BTreeMap<&QueueName, Vec<(JobId, i64)>> = BTreeMap::new();
    for s in snaps {
        by_queue
            .entry(&s.queue)
            .or_default()
            .push((s.id, s.version));
    }
    for (name, done) in by_queue {
        queue.mark_persisted(name, &done).await?;
    }
    Ok(snaps.len())
}

/// Drains a queue's persist set, in batches, until it is empty or an error occurs.
pub async fn persist_all(
    queue: &QueueClient,
    pool: &PgPool,
    name: &QueueName,
    min_age: Option<Duration>,
) -> Result<usize, PersistError> {
    let mut total = 0;
    loop {
        let n = persist_batch(queue, pool, name, min_age, 500).await?;
        total += n;
        if n < 500 {
            return Ok(total);
        }
    }
}
