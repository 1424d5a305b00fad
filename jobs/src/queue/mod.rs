//! The Redis queue protocol. Every state change is one Lua script (atomic, one slot); reads
//! are plain commands. Connections ([`RedisConn`]: one server or a Redis Cluster) reconnect
//! with backoff after Redis restarts or fails over: a call made while Redis is down returns an
//! error the caller retries, and no process has to exit.
//!
//! Per queue: three pending LISTs (high, normal, low), a `delayed` ZSET for retry backoff, a
//! `leases` ZSET (deadline per running job), a `wake` LIST idle workers block on, and a
//! `persist` ZSET of jobs whose latest state PostgreSQL has not seen yet.
use std::time::Duration;

use crate::clock::Clock;
use crate::conn::{RedisConn, RedisTarget};
use crate::error::{ErrorClass, QueueError};
use crate::hash::{flat_pairs, new_job_fields, snapshot_from_pairs};
use crate::keys::Keys;
use crate::model::{JobId, JobStatus, Priority, QueueName};
use crate::retry::RetrySettings;
use crate::scripts::SCRIPTS;
use crate::snapshot::{EnqueueRequest, JobSnapshot};

mod live;
mod reads;
mod wait;

pub use wait::WorkWaiter;

/// Jobs per enqueue.lua call: Redis runs a script without serving anyone else, so a batch of
/// a thousand is split into calls of a few milliseconds each.
const ENQUEUE_PER_CALL: usize = 200;

/// The `queued` event of a job about to be enqueued, as the JSON the events channel carries
/// (encoded here, where the fields are at hand, rather than by Redis).
fn queued_event(r: &EnqueueRequest, now: i64) -> String {
    let ev = crate::events::JobEvent {
        id: r.id,
        event_type: "status".into(),
        status: JobStatus::Queued,
        kind: r.kind.as_str().into(),
        queue: r.queue.to_string(),
        attempts: 0,
        progress_done: None,
        progress_total: None,
        error_code: None,
        owner: r.owner,
        started_at: None,
        at: now,
    };
    serde_json::to_string(&ev).unwrap_or_default()
}

/// Tunables of the protocol, with their defaults.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// How long a claim holds a job without renewal (default 15 s; a dead worker's jobs are
    /// back in the queue within this plus one reaper interval).
    pub lease: Duration,
    /// How long a finished job's hash stays in Redis once PostgreSQL has it (default 10 min).
    pub finished_ttl: Duration,
    /// First retry delay (default 1 s), doubled per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest retry delay (default 5 min).
    pub backoff_max: Duration,
    /// Redis reply timeout for ordinary commands (default 5 s).
    pub response_timeout: Duration,
    /// Where `now` comes from (default: the system clock).
    pub clock: Clock,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            finished_ttl: Duration::from_secs(600),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            response_timeout: Duration::from_secs(5),
            clock: Clock::System,
        }
    }
}

/// A job this worker holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: JobSnapshot,
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    Job(Box<ClaimedJob>),
    /// Nothing to run; the earliest retry is due at this time (ms), if any.
    Empty {
        next_due_ms: Option<i64>,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded(serde_json::Value),
    Cancelled,
    /// Given back by a draining worker: re-queued, no attempt counted.
    Release,
    Error {
        class: ErrorClass,
        code: String,
        message: String,
    },
}

/// What [`QueueClient::finish_many`] recorded.
#[derive(Debug, Default)]
pub struct Finished {
    /// Each job's new status, in the order given (`None` where this worker no longer held it).
    pub statuses: Vec<Option<JobStatus>>,
    /// The jobs that succeeded, each exactly as the script wrote it (version included), for
    /// the worker's persister: it writes them to PostgreSQL without reading them back.
    pub succeeded: Vec<JobSnapshot>,
    /// The jobs claimed for the freed slots.
    pub next: Vec<ClaimedJob>,
}

/// What a cancel request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Removed from the queue.
    Cancelled,
    /// Running: its handler is told at its next checkpoint.
    Cancelling,
    /// Not in Redis (expired or unknown).
    Missing,
    /// Already finished with this status.
    AlreadyFinished(JobStatus),
}

/// Live counts of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queued: u64,
    pub queued_by_priority: [u64; 3],
    pub running: u64,
    pub retrying: u64,
    pub awaiting_persist: u64,
    pub oldest_queued_at_ms: Option<i64>,
}

#[derive(Clone)]
pub struct QueueClient {
    target: RedisTarget,
    conn: RedisConn,
    keys: Keys,
    opts: QueueOptions,
}

impl QueueClient {
    /// Milliseconds since the Unix epoch, on the client's [`Clock`].
    pub fn now_ms(&self) -> i64 {
        self.opts.clock.now_ms()
    }

    /// Creates a client for `redis_url` (one server, or `redis+cluster://` for a Redis
    /// Cluster: see [`crate::conn`]); it connects lazily, so it can start while Redis is
    /// still down.
    pub fn new(redis_url: &str, keys: Keys, opts: QueueOptions) -> Result<Self, QueueError> {
        let target = RedisTarget::parse(redis_url)?;
        let conn = target.connect_lazy(Some(opts.response_timeout))?;
        Ok(Self {
            target,
            conn,
            keys,
            opts,
        })
    }

    /// A separate connection for blocking commands (a blocking command would stall every
    /// other command multiplexed on the shared connection).
    pub(crate) fn blocking_connection(&self, max_block: Duration) -> Result<RedisConn, QueueError> {
        self.target
            .connect_lazy(Some(max_block + Duration::from_secs(3)))
    }

    /// What an idle worker of `queues` blocks on until an enqueue signals one of them; each
    /// wait blocks at most `max_block`.
    pub fn waiter(
        &self,
        queues: &[QueueName],
        max_block: Duration,
    ) -> Result<WorkWaiter, QueueError> {
        WorkWaiter::new(self, queues, max_block)
    }

    /// A pub/sub connection (to any node of a cluster: each one hears every event).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, QueueError> {
        self.target.pubsub().await
    }

    /// Whether this client talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.target.is_cluster()
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn options(&self) -> &QueueOptions {
        &self.opts
    }

    /// A handle on the shared multiplexed connection, for plain commands.
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// Queues one job (or re-queues a failed one: its hash is rebuilt from `req`).
    pub async fn enqueue(&self, req: &EnqueueRequest) -> Result<(), QueueError> {
        self.enqueue_many(std::slice::from_ref(req)).await
    }

    /// Queues many jobs in one round trip.
    #[tracing::instrument(level = "debug", skip_all, fields(jobs = reqs.len()))]
    pub async fn enqueue_many(&self, reqs: &[EnqueueRequest]) -> Result<(), QueueError> {
        self.run_enqueue(false, reqs).await.map(drop)
    }

    /// Queues those of `reqs` that Redis has no hash for (jobs PostgreSQL holds as queued that
    /// Redis lost: a failover, or a restart without persistence), atomically per job, so a
    /// job that exists (claimed, running, already re-queued) is left alone. Returns the ids it
    /// queued.
    #[tracing::instrument(level = "debug", skip_all, fields(jobs = reqs.len()))]
    pub async fn requeue_lost(&self, reqs: &[EnqueueRequest]) -> Result<Vec<JobId>, QueueError> {
        if reqs.is_empty() {
            return Ok(vec![]);
        }
        // A plain read first, so a long backlog that Redis still holds costs one EXISTS per
        // job, not a script call; the script checks again, atomically, for the rest.
        let mut pipe = redis::pipe();
        for r in reqs {
            pipe.exists(self.keys.queue(&r.queue).job(&r.id));
        }
        let mut c = self.conn.clone();
        let known: Vec<bool> = pipe.query_async(&mut c).await?;
        let missing: Vec<EnqueueRequest> = reqs
            .iter()
            .zip(known)
            .filter(|(_, k)| !k)
            .map(|(r, _)| r.clone())
            .collect();
        let queued = self.run_enqueue(true, &missing).await?;
        Ok(missing
            .iter()
            .zip(queued)
            .filter(|(_, q)| *q == 1)
            .map(|(r, _)| r.id)
            .collect())
    }

    /// Runs enqueue.lua over `reqs` in one round trip: one invocation per queue (its keys share
    /// one slot) and per [`ENQUEUE_PER_CALL`] jobs, so Redis pays the script's fixed cost
    /// once per batch, not once per job. With `guard`, a job is queued only while Redis has no
    /// hash for it. Returns, in `reqs`' order, 1 for each job queued and 0 for each left alone.
    async fn run_enqueue(
        &self,
        guard: bool,
        reqs: &[EnqueueRequest],
    ) -> Result<Vec<i64>, QueueError> {
        if reqs.is_empty() {
            return Ok(vec![]);
        }
        let now = self.now_ms();
        // indices of `reqs` per queue, each queue in first-seen order and its jobs in theirs
        let mut groups: Vec<(&QueueName, Vec<usize>)> = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            match groups.iter_mut().find(|(q, _)| *q == &r.queue) {
                Some((_, ix)) => ix.push(i),
                None => groups.push((&r.queue, vec![i])),
            }
        }
        let mut pipe = redis::pipe();
        pipe.load_script(&SCRIPTS.enqueue).ignore();
        pipe.sadd(
            self.keys.queues(),
            groups.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(),
        )
        .ignore();
        let mut order = Vec::with_capacity(reqs.len());
        for (queue, ix) in &groups {
            let qk = self.keys.queue(queue);
            for chunk in ix.chunks(ENQUEUE_PER_CALL) {
                let mut inv = SCRIPTS.enqueue.prepare_invoke();
                inv.key(qk.pending(Priority::High))
                    .key(qk.pending(Priority::Normal))
                    .key(qk.pending(Priority::Low))
                    .key(qk.wake())
                    .arg(qk.job_prefix())
                    .arg(self.keys.events())
                    .arg(if guard { "1" } else { "0" });
                for &i in chunk {
                    let r = &reqs[i];
                    let fields = new_job_fields(r);
                    inv.arg(r.id.to_string())
                        .arg(r.priority.index())
                        .arg(queued_event(r, now))
                        .arg(fields.len() * 2);
                    for (k, v) in fields {
                        inv.arg(k).arg(v);
                    }
                }
                pipe.invoke_script(&inv);
                order.extend_from_slice(chunk);
            }
        }
        let mut c = self.conn.clone();
        let replies: Vec<Vec<i64>> = pipe.query_async(&mut c).await?;
        let mut out = vec![0; reqs.len()];
        for (i, queued) in order.into_iter().zip(replies.into_iter().flatten()) {
            out[i] = queued;
        }
        Ok(out)
    }

    /// Atomically takes the highest-priority job of `queue` and leases it to `worker`.
    pub async fn claim(&self, queue: &QueueName, worker: &str) -> Result<Claim, QueueError> {
        let (mut jobs, next_due_ms) = self.claim_many(queue, worker, 1).await?;
        Ok(match jobs.pop() {
            Some(j) => Claim::Job(Box::new(j)),
            None => Claim::Empty { next_due_ms },
        })
    }

    /// Atomically takes up to `count` jobs of `queue` (highest priority first) and leases them
    /// to `worker`, in one round trip. Also returns when the earliest retry is due, if any.
    #[tracing::instrument(level = "debug", skip(self), fields(queue = %queue))]
    pub async fn claim_many(
        &self,
        queue: &QueueName,
        worker: &str,
        count: usize,
    ) -> Result<(Vec<ClaimedJob>, Option<i64>), QueueError> {
        let qk = self.keys.queue(queue);
        let mut c = self.conn.clone();
        let out: Vec<Vec<String>> = SCRIPTS
            .claim
            .key(qk.pending(Priority::High))
            .key(qk.pending(Priority::Normal))
            .key(qk.pending(Priority::Low))
            .key(qk.delayed())
            .key(qk.leases())
            .arg(self.now_ms())
            .arg(self.opts.lease.as_millis() as u64)
            .arg(worker)
            .arg(qk.job_prefix())
            .arg(self.keys.events())
            .arg(count.max(1))
            .invoke_async(&mut c)
            .await?;
        let mut out = out.into_iter();
        let next_due = out
            .next()
            .and_then(|h| h.into_iter().next())
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| *v >= 0.0)
            .map(|v| v as i64);
        Ok((parse_jobs(out)?, next_due))
    }

    /// Extends the leases `worker` holds on `ids`. Returns (ids it lost, ids asked to cancel).
    pub async fn renew(
        &self,
        queue: &QueueName,
        worker: &str,
        ids: &[JobId],
    ) -> Result<(Vec<JobId>, Vec<JobId>), QueueError> {
        if ids.is_empty() {
            return Ok((vec![], vec![]));
        }
        let qk = self.keys.queue(queue);
        let mut inv = SCRIPTS.renew.prepare_invoke();
        inv.key(qk.leases())
            .arg(self.now_ms())
            .arg(self.opts.lease.as_millis() as u64)
            .arg(worker)
            .arg(qk.job_prefix());
        for id in ids {
            inv.arg(id.to_string());
        }
        let mut c = self.conn.clone();
        let (lost, cancel): (Vec<String>, Vec<String>) = inv.invoke_async(&mut c).await?;
        let parse = |v: Vec<String>| v.iter().filter_map(|s| s.parse().ok()).collect();
        Ok((parse(lost), parse(cancel)))
    }

    /// Records how an attempt ended. `settings` is the global retry setting as read from
    /// PostgreSQL now. Returns the new status, or `None` if the worker no longer held the job
    /// (its lease expired and it was reaped, or it was re-queued).
    pub async fn finish(
        &self,
        claimed: &ClaimedJob,
        worker: &str,
        outcome: &Outcome,
        settings: RetrySettings,
    ) -> Result<Option<JobStatus>, QueueError> {
        let mut done = self
            .finish_many(
                &claimed.job.queue,
                worker,
                &[(claimed, outcome)],
                settings,
                0,
            )
            .await?;
        Ok(done.statuses.pop().flatten())
    }

    /// Records the outcomes of several attempts of one queue in one script, and claims up to
    /// `claim_next` jobs of that queue.
    #[tracing::instrument(level = "debug", skip_all, fields(queue = %queue, jobs = items.len(), claim_next))]
    pub async fn finish_many(
        &self,
        queue: &QueueName,
        worker: &str,
        items: &[(&ClaimedJob, &Outcome)],
        settings: RetrySettings,
        claim_next: usize,
    ) -> Result<Finished, QueueError> {
        let qk = self.keys.queue(queue);
        let now = self.now_ms();
        let (limit_on, global_max) = settings.lua_cap_args();
        let mut inv = SCRIPTS.finish.prepare_invoke();
        inv.key(qk.leases())
            .key(qk.persist())
            .key(qk.delayed())
            .key(qk.pending(Priority::High))
            .key(qk.pending(Priority::Normal))
            .key(qk.pending(Priority::Low))
            .key(qk.wake())
            .arg(worker)
            .arg(now)
            .arg(qk.job_prefix())
            .arg(self.keys.events())
            .arg(limit_on)
            .arg(global_max)
            .arg(self.opts.lease.as_millis() as u64)
            .arg(claim_next);
        for (claimed, outcome) in items {
            let delay = crate::retry::backoff(
                claimed.job.attempts.max(1),
                self.opts.backoff_base,
                self.opts.backoff_max,
                rand::random::<f64>(),
            );
            let (name, a3, a4, retryable) = match outcome {
                Outcome::Succeeded(v) => ("succeeded", v.to_string(), String::new(), 0),
                Outcome::Cancelled => ("cancelled", String::new(), String::new(), 0),
                Outcome::Release => ("release", String::new(), String::new(), 0),
                Outcome::Error {
                    class,
                    code,
                    message,
                } => (
                    "error",
                    code.clone(),
                    message.clone(),
                    i64::from(*class == ErrorClass::Retryable),
                ),
            };
            inv.arg(claimed.job.id.to_string())
                .arg(name)
                .arg(a3)
                .arg(a4)
                .arg(retryable)
                .arg(delay.as_millis() as u64);
        }
        let mut c = self.conn.clone();
        let out: Vec<Vec<String>> = inv.invoke_async(&mut c).await?;
        let mut out = out.into_iter();
        let statuses = out
            .next()
            .unwrap_or_default()
            .iter()
            .map(|s| s.parse::<JobStatus>().ok())
            .collect::<Vec<_>>();
        let written = out.next().unwrap_or_default();
        if statuses.len() != items.len() || written.len() != 3 * items.len() {
            return Err(QueueError::Corrupt {
                id: items
                    .first()
                    .map(|(c, _)| c.job.id.to_string())
                    .unwrap_or_default(),
                detail: format!(
                    "finish returned {} statuses and {} written values for {} jobs",
                    statuses.len(),
                    written.len(),
                    items.len()
                ),
            });
        }
        let mut succeeded = Vec::new();
        for (((claimed, outcome), status), w) in items.iter().zip(&statuses).zip(written.chunks(3))
        {
            if let (Some(JobStatus::Succeeded), Outcome::Succeeded(result)) = (status, outcome) {
                succeeded.push(stored_success(&claimed.job, result, now, w)?);
            }
        }
        Ok(Finished {
            statuses,
            succeeded,
            next: parse_jobs(out)?,
        })
    }

    /// Re-queues or fails jobs whose lease expired (their worker died). Safe to run from any
    /// number of processes at once. Returns what it did, at most 100 jobs per call.
    #[tracing::instrument(level = "debug", skip(self, settings), fields(queue = %queue))]
    pub async fn reap(
        &self,
        queue: &QueueName,
        settings: RetrySettings,
    ) -> Result<Vec<(JobId, JobStatus)>, QueueError> {
        let qk = self.keys.queue(queue);
        let (limit_on, global_max) = settings.lua_cap_args();
        let mut c = self.conn.clone();
        let out: Vec<String> = SCRIPTS
            .reap
            .key(qk.leases())
            .key(qk.persist())
            .key(qk.delayed())
            .arg(self.now_ms())
            .arg(qk.job_prefix())
            .arg(self.keys.events())
            .arg(limit_on)
            .arg(global_max)
            .arg(self.opts.backoff_base.as_millis() as u64)
            .arg(self.opts.backoff_max.as_millis() as u64)
            .arg(rand::random::<f64>())
            .invoke_async(&mut c)
            .await?;
        Ok(out
            .chunks_exact(2)
            .filter_map(|p| Some((p[0].parse().ok()?, p[1].parse().ok()?)))
            .collect())
    }

    /// Cancels a job: removed if queued or waiting to retry; flagged if running.
    #[tracing::instrument(level = "debug", skip(self), fields(queue = %queue, job.id = %id))]
    pub async fn cancel(&self, queue: &QueueName, id: &JobId) -> Result<CancelOutcome, QueueError> {
        let qk = self.keys.queue(queue);
        let mut c = self.conn.clone();
        let out: String = SCRIPTS
            .cancel
            .key(qk.pending(Priority::High))
            .key(qk.pending(Priority::Normal))
            .key(qk.pending(Priority::Low))
            .key(qk.delayed())
            .key(qk.persist())
            .arg(id.to_string())
            .arg(self.now_ms())
            .arg(qk.job_prefix())
            .arg(self.keys.events())
            .invoke_async(&mut c)
            .await?;
        Ok(match out.as_str() {
            "cancelled" => CancelOutcome::Cancelled,
            "cancelling" => CancelOutcome::Cancelling,
            "missing" => CancelOutcome::Missing,
            other => CancelOutcome::AlreadyFinished(
                other
                    .trim_start_matches("finished:")
                    .parse()
                    .map_err(|e: String| QueueError::Corrupt {
                        id: id.to_string(),
                        detail: e,
                    })?,
            ),
        })
    }

    /// Records progress (done of total) and publishes a progress event, while the worker that
    /// claimed `claimed` still holds it (otherwise nothing is written).
    pub async fn progress(
        &self,
        claimed: &ClaimedJob,
        done: u64,
        total: u64,
    ) -> Result<(), QueueError> {
        let job = &claimed.job;
        let key = self.keys.queue(&job.queue).job(&job.id);
        let now = self.now_ms();
        let payload = Self::running_payload(claimed, "progress", done, total, now);
        let mut c = self.conn.clone();
        let _written: i64 = SCRIPTS
            .progress
            .key(&key)
            .arg(job.worker.as_deref().unwrap_or_default())
            .arg(done)
            .arg(total)
            .arg(now)
            .arg(self.keys.events())
            .arg(payload)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }
}

/// A succeeded job as finish.lua left its hash: the claimed state, the result, the finish
/// time, no error, and the version and progress fields the script returned (`written`).
fn stored_success(
    job: &JobSnapshot,
    result: &serde_json::Value,
    now: i64,
    written: &[String],
) -> Result<JobSnapshot, QueueError> {
    let corrupt = |s: &str| QueueError::Corrupt {
        id: job.id.to_string(),
        detail: format!("finish wrote `{s}` for a success"),
    };
    let num = |s: &String| -> Result<Option<i64>, QueueError> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| corrupt(s))
    };
    let mut s = job.clone();
    s.status = JobStatus::Succeeded;
    s.result = Some(result.clone());
    s.finished_at = Some(crate::model::ms_to_time(now));
    s.error_code = None;
    s.error_message = None;
    s.version = num(&written[0])?.ok_or_else(|| corrupt(""))?;
    s.progress_done = num(&written[1])?.map(|v| v.max(0) as u64);
    s.progress_total = num(&written[2])?.map(|v| v.max(0) as u64);
    Ok(s)
}

fn parse_jobs(items: impl Iterator<Item = Vec<String>>) -> Result<Vec<ClaimedJob>, QueueError> {
    items
        .map(|h| {
            Ok(ClaimedJob {
                job: snapshot_from_pairs(flat_pairs(h))?,
            })
        })
        .collect()
}
