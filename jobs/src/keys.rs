//! Every Redis key voxfleet uses, built in one place. All keys of one queue share the hash tag
//! `{prefix:queue}`, so each Lua script touches a single slot and runs unchanged on Redis
//! Cluster. Keys that are not per queue (worker registry, events) carry the bare prefix.
use crate::model::{JobId, Priority, QueueName};

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// The keys of one queue.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    tag: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn queue(&self, queue: &QueueName) -> QueueKeys {
        QueueKeys {
            tag: format!("{{{}:{}}}", self.prefix, queue),
        }
    }

    /// SET of every queue that has ever had a job (for listing and sweeping).
    pub fn queues(&self) -> String {
        format!("{}:queues", self.prefix)
    }

    /// ZSET worker name → last heartbeat (ms).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// STRING (JSON) with a worker's last heartbeat, expiring when it stops beating.
    pub fn worker(&self, name: &str) -> String {
        format!("{}:worker:{}", self.prefix, name)
    }

    /// STRING (JSON `NodeStats`) with a worker's latest GPU and system readings; it expires a
    /// few heartbeats after the last write, so a reader never mistakes old numbers for fresh.
    pub fn stats(&self, worker: &str) -> String {
        format!("{}:stats:{}", self.prefix, worker)
    }

    /// STRING holding the id of the `collect_stats` job readers asked for (SET NX EX), so
    /// concurrent readers that find stale stats submit one job between them.
    pub fn stats_refresh(&self) -> String {
        format!("{}:stats-refresh", self.prefix)
    }

    /// STRING (JSON): the file and jobs an OpenAI-compatible request started, under a hash of
    /// its owner, audio and parameters, so the same request sent again (an SDK retrying after
    /// a timeout) gets that work's result instead of doing it twice. Expires.
    pub fn request(&self, hash: &str) -> String {
        format!("{}:request:{}", self.prefix, hash)
    }

    /// The pub/sub channel for job events.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// STRING holding the name of the control-plane replica that is ticking a schedule
    /// (SET NX PX; deleted by its holder only).
    pub fn schedule_lock(&self, schedule: &str) -> String {
        format!("{}:sched:lock:{}", self.prefix, schedule)
    }
}

impl QueueKeys {
    /// LIST of job ids waiting at one priority (LPUSH to enqueue, RPOP to claim).
    pub fn pending(&self, p: Priority) -> String {
        format!("{}:pending:{}", self.tag, p.as_str())
    }
    /// ZSET id → time (ms) it becomes due again (retry backoff).
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.tag)
    }
    /// ZSET id → lease deadline (ms).
    pub fn leases(&self) -> String {
        format!("{}:leases", self.tag)
    }
    /// LIST of wake tokens: idle workers block on it (BLPOP), enqueues push to it.
    pub fn wake(&self) -> String {
        format!("{}:wake", self.tag)
    }
    /// ZSET id → time (ms) of a state change not yet written to PostgreSQL.
    pub fn persist(&self) -> String {
        format!("{}:persist", self.tag)
    }
    /// HASH of one job; the scripts build it from [`QueueKeys::job_prefix`].
    pub fn job(&self, id: &JobId) -> String {
        format!("{}{}", self.job_prefix(), id)
    }
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.tag)
    }
    /// STRING: the text a running transcription has finished so far (APPEND per window), for
    /// clients that stream it; it expires an hour after the last write.
    pub fn partial_text(&self, id: &JobId) -> String {
        format!("{}:text:{}", self.tag, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_share_one_hash_tag() {
        let k = Keys::new("vf");
        let q = k.queue(&QueueName::gpu());
        for key in [
            q.pending(Priority::High),
            q.delayed(),
            q.leases(),
            q.wake(),
            q.persist(),
            q.job(&JobId::new()),
            q.partial_text(&JobId::new()),
        ] {
            assert!(key.starts_with("{vf:gpu}:"), "{key}");
        }
        assert_eq!(k.worker("w1"), "vf:worker:w1");
        assert_eq!(k.stats("w1"), "vf:stats:w1");
    }
}
