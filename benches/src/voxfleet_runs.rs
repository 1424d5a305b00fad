//! voxfleet's side of sections 1 and 2: no-op `diagnostic` jobs enqueued straight into Redis
//! with `QueueClient::enqueue_many`, run by the real `voxfleet-worker` binary (one process) under
//! a fresh key prefix and a fresh database, which the worker creates and migrates itself.
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use sqlx::Connection;
use voxfleet_jobs::{
    EnqueueRequest, JobId, JobKind, Keys, Priority, QueueClient, QueueName, QueueOptions,
};

use crate::bench::Bench;
use crate::procs::Proc;
use crate::progress;
use crate::pubsub::Subscription;
use crate::report::{Latency, Throughput};

/// How long a worker may take to drain and exit after SIGTERM (its drain timeout is 30 s).
const STOP_GRACE: Duration = Duration::from_secs(40);
/// Jobs per `enqueue_many` call.
const ENQUEUE_CHUNK: usize = 500;

fn diagnostic() -> EnqueueRequest {
    EnqueueRequest {
        id: JobId::new(),
        kind: JobKind::Diagnostic,
        queue: QueueName::cpu(),
        priority: Priority::Normal,
        input: serde_json::json!({}),
        owner: None,
        idempotency_key: None,
        max_retries: None,
        created_at: Utc::now(),
        version: 0,
    }
}

pub(crate) fn spawn_worker(
    b: &Bench,
    redis_url: &str,
    prefix: &str,
    db_url: &str,
    concurrency: u32,
    name: &str,
) -> anyhow::Result<Proc> {
    let args = [
        "--queues".to_string(),
        "cpu".into(),
        "--concurrency".into(),
        concurrency.to_string(),
        "--name".into(),
        name.into(),
    ];
    Proc::spawn(
        &format!("voxfleet-worker {name}"),
        &b.worker_bin,
        &args,
        &[
            ("VOXFLEET_KEY_PREFIX", prefix),
            ("VOXFLEET_REDIS_URL", redis_url),
            ("VOXFLEET_DATABASE_URL", db_url),
        ],
        b.log_path(&format!("voxfleet-worker-{name}")),
    )
}

/// Section 1, voxfleet: `n` jobs queued before the worker starts; the figure is `n` divided by
/// the time from the earliest `started_at` to the latest `finished_at` in the jobs' hashes.
/// Each `round` has keys and a database of its own.
pub async fn throughput(
    b: &Bench,
    concurrency: u32,
    round: u32,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let label = if round > 1 {
        format!("round{round}-")
    } else {
        String::new()
    };
    throughput_on(b, &b.redis_url, &label, 1, concurrency, n, timeout).await
}

/// As [`throughput`], on the Redis (or `redis+cluster://` Cluster) at `redis_url`, with
/// `workers` worker processes of `concurrency` each; `label` tells the runs apart.
pub async fn throughput_on(
    b: &Bench,
    redis_url: &str,
    label: &str,
    workers: usize,
    concurrency: u32,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let tag = format!("{label}w{workers}c{concurrency}");
    let prefix = b.prefix(&tag);
    let (_, db_url) = b.database(&tag);
    let q = QueueClient::new(redis_url, Keys::new(&prefix), QueueOptions::default())?;
    let cpu = QueueName::cpu();
    let what = format!("voxfleet {label}{workers}x c={concurrency}");

    let reqs: Vec<EnqueueRequest> = (0..n).map(|_| diagnostic()).collect();
    let pb = progress::bar(n as u64, format!("{what} enqueue"));
    for chunk in reqs.chunks(ENQUEUE_CHUNK) {
        q.enqueue_many(chunk).await.context("enqueue_many")?;
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();

    let mut procs = Vec::with_capacity(workers);
    for w in 0..workers {
        procs.push(spawn_worker(
            b,
            redis_url,
            &prefix,
            &db_url,
            concurrency,
            &format!("bench-{tag}-{w}"),
        )?);
    }
    let pb = progress::bar(n as u64, format!("{what} run"));
    let started = Instant::now();
    loop {
        for worker in &mut procs {
            worker.check_alive()?;
        }
        let s = q.stats(&cpu).await.context("reading queue stats")?;
        let left = s.queued + s.running + s.retrying;
        pb.set_position(n as u64 - left.min(n as u64));
        if left == 0 {
            break;
        }
        if started.elapsed() >= timeout {
            pb.abandon();
            for worker in procs {
                worker.stop(STOP_GRACE).await?;
            }
            return Ok(Throughput::TimedOut {
                after_s: started.elapsed().as_secs_f64(),
                done: n as u64 - left.min(n as u64),
                total: n as u64,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pb.finish_and_clear();

    let span = read_outcomes(&q, &cpu, &reqs).await?;
    let mut stops = Vec::with_capacity(workers);
    for worker in procs {
        stops.push(worker.stop(STOP_GRACE).await);
    }
    let persisted = count_succeeded_rows(&db_url).await;
    let seconds = (span.last_finish_ms - span.first_start_ms).max(1) as f64 / 1000.0;
    let mut checks = format!("{n}/{n} jobs `succeeded` in their Redis hashes");
    match persisted {
        Ok(rows) => {
            checks +=
                &format!("; {rows}/{n} rows `succeeded` in PostgreSQL after the worker drained")
        }
        Err(e) => checks += &format!("; PostgreSQL check failed: {e:#}"),
    }
    let failed: Vec<String> = stops
        .into_iter()
        .filter_map(|stop| match stop {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!("a worker exited with {status} on SIGTERM")),
            Err(e) => Some(format!("stopping a worker: {e:#}")),
        })
        .collect();
    if failed.is_empty() {
        checks += &format!("; all {workers} worker(s) exited 0 on SIGTERM");
    } else {
        checks += &format!("; {}", failed.join("; "));
    }
    Ok(Throughput::Done {
        jobs: n,
        seconds,
        jobs_per_s: n as f64 / seconds,
        checks,
    })
}

struct Span {
    first_start_ms: i64,
    last_finish_ms: i64,
}

/// Reads every job's status and times from its hash; fails unless all succeeded.
async fn read_outcomes(
    q: &QueueClient,
    queue: &QueueName,
    reqs: &[EnqueueRequest],
) -> anyhow::Result<Span> {
    let qk = q.keys().queue(queue);
    let mut conn = q.connection();
    let mut first = i64::MAX;
    let mut last = i64::MIN;
    let mut not_ok: std::collections::BTreeMap<String, usize> = Default::default();
    for chunk in reqs.chunks(ENQUEUE_CHUNK) {
        let mut pipe = redis::pipe();
        for r in chunk {
            pipe.cmd("HMGET")
                .arg(qk.job(&r.id))
                .arg("status")
                .arg("started_at")
                .arg("finished_at");
        }
        let rows: Vec<(Option<String>, Option<i64>, Option<i64>)> = pipe
            .query_async(&mut conn)
            .await
            .context("reading job hashes")?;
        for (status, start, finish) in rows {
            match (status.as_deref(), start, finish) {
                (Some("succeeded"), Some(s), Some(f)) => {
                    first = first.min(s);
                    last = last.max(f);
                }
                (s, ..) => {
                    *not_ok
                        .entry(s.unwrap_or("missing").to_string())
                        .or_default() += 1
                }
            }
        }
    }
    if !not_ok.is_empty() {
        bail!("not every job succeeded: {not_ok:?} of {}", reqs.len());
    }
    Ok(Span {
        first_start_ms: first,
        last_finish_ms: last,
    })
}

pub(crate) async fn count_succeeded_rows(db_url: &str) -> anyhow::Result<i64> {
    let mut pg = sqlx::PgConnection::connect(db_url).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
        .fetch_one(&mut pg)
        .await?;
    pg.close().await.ok();
    Ok(n)
}

/// Section 2, voxfleet: with the worker idle, one job at a time; the time from the start of
/// the enqueue call to the arrival of the job's `running` event on `<prefix>:events` (published
/// by the claim script when the worker takes the job).
pub async fn latency(
    b: &Bench,
    concurrency: u32,
    samples: usize,
    gap: Duration,
    sample_timeout: Duration,
) -> anyhow::Result<Latency> {
    let prefix = b.prefix("lat");
    let (_, db_url) = b.database("lat");
    let q = QueueClient::new(&b.redis_url, Keys::new(&prefix), QueueOptions::default())?;
    let mut events = Subscription::new(&b.redis_client()?, &q.keys().events()).await?;
    let mut worker = spawn_worker(
        b,
        &b.redis_url,
        &prefix,
        &db_url,
        concurrency,
        "bench-latency",
    )?;

    // Warm-up (not counted): waits for the worker to create its database and start claiming.
    let sp = progress::spinner("voxfleet latency: worker starting");
    let warm = diagnostic();
    q.enqueue(&warm).await?;
    let id = warm.id.to_string();
    if events
        .wait_for(
            &mut worker,
            sample_timeout.max(Duration::from_secs(60)),
            |p| is_event(p, &id, "succeeded"),
        )
        .await?
        .is_none()
    {
        bail!(
            "the warm-up job did not finish; see {}",
            b.log_path("voxfleet-worker-bench-latency").display()
        );
    }
    sp.finish_and_clear();

    let pb = progress::bar(samples as u64, "voxfleet latency");
    let mut ms = Vec::with_capacity(samples);
    let mut timeouts = 0;
    for _ in 0..samples {
        tokio::time::sleep(gap).await;
        let job = diagnostic();
        let id = job.id.to_string();
        let t0 = Instant::now();
        q.enqueue(&job).await?;
        match events
            .wait_for(&mut worker, sample_timeout, |p| is_event(p, &id, "running"))
            .await?
        {
            Some(at) => ms.push(at.duration_since(t0).as_secs_f64() * 1000.0),
            None => timeouts += 1,
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    worker.stop(STOP_GRACE).await?;
    Ok(Latency::from_samples(samples, ms, timeouts))
}

/// Whether an event payload is about job `id` with `status`.
fn is_event(payload: &[u8], id: &str, status: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(payload)
        .is_ok_and(|v| v["id"].as_str() == Some(id) && v["status"].as_str() == Some(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_events_by_id_and_status() {
        let p = br#"{"id":"a","type":"status","status":"running","at":1}"#;
        assert!(is_event(p, "a", "running"));
        assert!(!is_event(p, "a", "succeeded"));
        assert!(!is_event(p, "b", "running"));
        assert!(!is_event(b"not json", "a", "running"));
    }
}
