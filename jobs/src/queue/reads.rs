//! The read side of the protocol, and the hand-off to the PostgreSQL persister: plain
//! commands and pipelines, no state changes except dropping persisted ids.
use std::time::Duration;

use redis::AsyncCommands;

use super::{QueueClient, QueueStats};
use crate::error::QueueError;
use crate::hash::snapshot_from_pairs;
use crate::model::{JobId, Priority, QueueName};
use crate::scripts::SCRIPTS;
use crate::snapshot::JobSnapshot;

impl QueueClient {
    /// The live state of a job, if its hash is still in Redis.
    pub async fn get(
        &self,
        queue: &QueueName,
        id: &JobId,
    ) -> Result<Option<JobSnapshot>, QueueError> {
        Ok(self
            .get_many(&[(queue.clone(), *id)])
            .await?
            .pop()
            .flatten())
    }

    /// Live states of many jobs in one round trip (None where Redis no longer has one).
    pub async fn get_many(
        &self,
        items: &[(QueueName, JobId)],
    ) -> Result<Vec<Option<JobSnapshot>>, QueueError> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let mut pipe = redis::pipe();
        for (q, id) in items {
            pipe.hgetall(self.keys.queue(q).job(id));
        }
        let mut c = self.conn.clone();
        let hashes: Vec<Vec<(String, String)>> = pipe.query_async(&mut c).await?;
        hashes
            .into_iter()
            .map(|h| {
                if h.is_empty() {
                    Ok(None)
                } else {
                    snapshot_from_pairs(h).map(Some)
                }
            })
            .collect()
    }

    /// Jobs whose latest state PostgreSQL has not seen, oldest first. With `min_age`, only
    /// entries at least that old (a safety-net sweeper leaves fresh ones to their worker).
    pub async fn awaiting_persist(
        &self,
        queue: &QueueName,
        min_age: Option<Duration>,
        limit: usize,
    ) -> Result<Vec<JobSnapshot>, QueueError> {
        let qk = self.keys.queue(queue);
        let max = match min_age {
            Some(a) => (self.now_ms() - a.as_millis() as i64).to_string(),
            None => "+inf".to_string(),
        };
        let mut c = self.conn.clone();
        let ids: Vec<String> = c
            .zrangebyscore_limit(qk.persist(), "-inf", max, 0, limit as isize)
            .await?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(format!("{}{}", qk.job_prefix(), id));
        }
        let hashes: Vec<Vec<(String, String)>> = pipe.query_async(&mut c).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for (id, h) in ids.iter().zip(hashes) {
            if h.is_empty() {
                gone.push(id.clone());
                continue;
            }
            match snapshot_from_pairs(h) {
                Ok(s) => out.push(s),
                Err(e) => {
                    tracing::error!(job.id = %id, error = %e, "dropping corrupt job record from persist set");
                    gone.push(id.clone());
                }
            }
        }
        if !gone.is_empty() {
            let _: () = c.zrem(qk.persist(), gone).await?;
        }
        Ok(out)
    }

    /// Marks these (id, version) pairs as written to PostgreSQL; finished ones start their TTL.
    pub async fn mark_persisted(
        &self,
        queue: &QueueName,
        done: &[(JobId, i64)],
    ) -> Result<u64, QueueError> {
        if done.is_empty() {
            return Ok(0);
        }
        let qk = self.keys.queue(queue);
        let mut inv = SCRIPTS.persisted.prepare_invoke();
        inv.key(qk.persist())
            .arg(qk.job_prefix())
            .arg(self.opts.finished_ttl.as_secs().max(1));
        for (id, v) in done {
            inv.arg(id.to_string()).arg(*v);
        }
        let mut c = self.conn.clone();
        Ok(inv.invoke_async(&mut c).await?)
    }

    /// Live counts for one queue, in two round trips whatever its length.
    pub async fn stats(&self, queue: &QueueName) -> Result<QueueStats, QueueError> {
        let qk = self.keys.queue(queue);
        let mut pipe = redis::pipe();
        for p in Priority::ALL {
            pipe.llen(qk.pending(p));
        }
        pipe.zcard(qk.leases())
            .zcard(qk.delayed())
            .zcard(qk.persist());
        for p in Priority::ALL {
            pipe.lindex(qk.pending(p), -1);
        }
        let mut c = self.conn.clone();
        #[allow(clippy::type_complexity)]
        let (l0, l1, l2, running, retrying, persist, o0, o1, o2): (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = pipe.query_async(&mut c).await?;
        let heads: Vec<String> = [o0, o1, o2]
            .into_iter()
            .flatten()
            .map(|id| format!("{}{}", qk.job_prefix(), id))
            .collect();
        let mut oldest = None;
        if !heads.is_empty() {
            let mut pipe = redis::pipe();
            for k in &heads {
                pipe.hget(k, "created_at");
            }
            let created: Vec<Option<i64>> = pipe.query_async(&mut c).await?;
            oldest = created.into_iter().flatten().min();
        }
        Ok(QueueStats {
            queued: l0 + l1 + l2,
            queued_by_priority: [l0, l1, l2],
            running,
            retrying,
            awaiting_persist: persist,
            oldest_queued_at_ms: oldest,
        })
    }

    /// Every queue that has had a job, plus the default ones.
    pub async fn known_queues(&self) -> Result<Vec<QueueName>, QueueError> {
        let mut c = self.conn.clone();
        let names: Vec<String> = c.smembers(self.keys.queues()).await?;
        let mut qs: Vec<QueueName> = names.into_iter().filter_map(|n| n.parse().ok()).collect();
        for d in [QueueName::gpu(), QueueName::cpu()] {
            if !qs.contains(&d) {
                qs.push(d);
            }
        }
        qs.sort();
        Ok(qs)
    }

    /// How many leases of `queue` have expired (a cheap check before reaping).
    pub async fn expired_leases(&self, queue: &QueueName) -> Result<u64, QueueError> {
        let mut c = self.conn.clone();
        Ok(
            c.zcount(self.keys.queue(queue).leases(), "-inf", self.now_ms())
                .await?,
        )
    }
}
