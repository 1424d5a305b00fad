//! The named peer, apalis-redis 1.0.0 with its default `Config` (only the queue name is set,
//! so each run has its own keys): the same workloads as voxfleet's, with the worker in its own
//! process (`voxfleet-bench apalis-worker`, a hidden subcommand of this binary) and tasks pushed
//! from the harness with `TaskSink`.
//!
//! The worker's handler is a no-op that tells the harness what happened in one pipelined round
//! trip: `SET first NX now` (first start), `INCR done`, `ZADD last GT now` (latest finish), and
//! for latency samples a `PUBLISH` of the sample's number.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apalis::prelude::{BoxDynError, Data, TaskSink, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use redis::AsyncCommands;

use crate::bench::Bench;
use crate::procs::Proc;
use crate::progress;
use crate::pubsub::Subscription;
use crate::report::{Latency, Throughput};

const STOP_GRACE: Duration = Duration::from_secs(15);
const PUSH_CHUNK: usize = 500;

/// The hidden `apalis-worker` subcommand.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Tasks run at once (apalis's concurrency layer).
    #[arg(long)]
    pub concurrency: usize,
    /// The apalis-redis queue name (every key of the run starts with it).
    #[arg(long)]
    pub namespace: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    pub redis_url: String,
}

/// The keys the probe handler writes, under the run's namespace.
#[derive(Debug, Clone)]
struct ProbeKeys {
    first_start: String,
    done: String,
    last_finish: String,
    started: String,
}

impl ProbeKeys {
    fn new(ns: &str) -> Self {
        Self {
            first_start: format!("{ns}:bench:first_start_ms"),
            done: format!("{ns}:bench:done"),
            last_finish: format!("{ns}:bench:last_finish_ms"),
            started: format!("{ns}:bench:started"),
        }
    }
}

struct Probe {
    conn: ConnectionManager,
    keys: ProbeKeys,
}

fn storage(conn: ConnectionManager, ns: &str) -> RedisStorage<u64> {
    RedisStorage::new(conn).with_config(Config::default().queue(ns))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Task argument 0 is a throughput task; n > 0 is latency sample n.
async fn probe_handler(seq: u64, probe: Data<Arc<Probe>>) -> Result<(), BoxDynError> {
    let now = now_ms();
    let k = &probe.keys;
    let mut pipe = redis::pipe();
    if seq > 0 {
        pipe.cmd("PUBLISH").arg(&k.started).arg(seq).ignore();
    }
    pipe.cmd("SET")
        .arg(&k.first_start)
        .arg(now)
        .arg("NX")
        .ignore()
        .cmd("INCR")
        .arg(&k.done)
        .ignore()
        .cmd("ZADD")
        .arg(&k.last_finish)
        .arg("GT")
        .arg(now)
        .arg("t")
        .ignore();
    let mut conn = probe.conn.clone();
    pipe.query_async::<()>(&mut conn).await?;
    Ok(())
}

/// Runs the apalis-redis worker until SIGTERM.
pub async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let conn = apalis_redis::connect(args.redis_url.as_str())
        .await
        .context("connecting to Redis")?;
    let probe = Arc::new(Probe {
        conn: apalis_redis::connect(args.redis_url.as_str()).await?,
        keys: ProbeKeys::new(&args.namespace),
    });
    let worker = WorkerBuilder::new(format!("{}-worker", args.namespace))
        .backend(storage(conn, &args.namespace))
        .concurrency(args.concurrency)
        .data(probe)
        .build(probe_handler);
    worker
        .run_until(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            term.recv().await;
            Ok::<(), std::io::Error>(())
        })
        .await
        .context("apalis worker")?;
    Ok(())
}

fn spawn_worker(b: &Bench, ns: &str, concurrency: u32) -> anyhow::Result<Proc> {
    let args = [
        "apalis-worker".to_string(),
        "--concurrency".into(),
        concurrency.to_string(),
        "--namespace".into(),
        ns.into(),
        "--redis-url".into(),
        b.redis_url.clone(),
    ];
    Proc::spawn(
        &format!("apalis-redis worker {ns}"),
        &b.self_bin,
        &args,
        &[],
        b.log_path(&format!("apalis-worker-{ns}")),
    )
}

/// Section 1, apalis-redis: `n` tasks pushed before the worker starts; the figure is `n`
/// divided by the time from the first handler start to the last handler finish. Each `round`
/// has a namespace of its own (the probe's counters live under it).
pub async fn throughput(
    b: &Bench,
    concurrency: u32,
    round: u32,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let ns = b.prefix(&format!("apalis_c{concurrency}_r{round}"));
    let keys = ProbeKeys::new(&ns);
    let conn = apalis_redis::connect(b.redis_url.as_str()).await?;
    let mut store = storage(conn.clone(), &ns);
    let pb = progress::bar(n as u64, format!("apalis c={concurrency} push"));
    let mut left = n;
    while left > 0 {
        let k = left.min(PUSH_CHUNK);
        store
            .push_bulk(vec![0u64; k])
            .await
            .context("apalis push_bulk")?;
        pb.inc(k as u64);
        left -= k;
    }
    pb.finish_and_clear();

    let mut worker = spawn_worker(b, &ns, concurrency)?;
    let mut c = conn.clone();
    let pb = progress::bar(n as u64, format!("apalis c={concurrency} run"));
    let started = Instant::now();
    loop {
        worker.check_alive()?;
        let done: Option<u64> = c.get(&keys.done).await?;
        let done = done.unwrap_or(0);
        pb.set_position(done.min(n as u64));
        if done >= n as u64 {
            break;
        }
        if started.elapsed() >= timeout {
            pb.abandon();
            let _ = worker.stop(STOP_GRACE).await;
            return Ok(Throughput::TimedOut {
                after_s: started.elapsed().as_secs_f64(),
                done,
                total: n as u64,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pb.finish_and_clear();
    let first: Option<i64> = c.get(&keys.first_start).await?;
    let last: Option<f64> = c.zscore(&keys.last_finish, "t").await?;
    let (Some(first), Some(last)) = (first, last) else {
        bail!("the probe handler left no start/finish times");
    };
    // apalis acknowledges in batches; give it a moment before reading its own done count.
    let done_set = format!("{ns}:done");
    let mut acked: u64 = 0;
    for _ in 0..50 {
        acked = c.scard(&done_set).await?;
        if acked >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stop = worker.stop(STOP_GRACE).await;
    let seconds = ((last as i64) - first).max(1) as f64 / 1000.0;
    let mut checks =
        format!("{n}/{n} handler runs counted; {acked}/{n} in apalis-redis's done set");
    match stop {
        Ok(status) if status.success() => checks += "; worker exited 0 on SIGTERM",
        Ok(status) => checks += &format!("; worker exited with {status} on SIGTERM"),
        Err(e) => checks += &format!("; stopping the worker: {e:#}"),
    }
    Ok(Throughput::Done {
        jobs: n,
        seconds,
        jobs_per_s: n as f64 / seconds,
        checks,
    })
}

/// Section 2, apalis-redis: with the worker idle, one task at a time; the time from the start
/// of the push to the arrival of the handler's `PUBLISH`.
pub async fn latency(
    b: &Bench,
    concurrency: u32,
    samples: usize,
    gap: Duration,
    sample_timeout: Duration,
) -> anyhow::Result<Latency> {
    let ns = b.prefix("apalis_lat");
    let keys = ProbeKeys::new(&ns);
    let mut sub = Subscription::new(&b.redis_client()?, &keys.started).await?;
    let mut store = storage(apalis_redis::connect(b.redis_url.as_str()).await?, &ns);
    let mut worker = spawn_worker(b, &ns, concurrency)?;

    // Warm-up (not counted): the first task is there when the worker starts.
    let sp = progress::spinner("apalis-redis latency: worker starting");
    store.push(1u64).await.context("apalis push")?;
    if sub
        .wait_for(
            &mut worker,
            sample_timeout.max(Duration::from_secs(60)),
            |p| p == b"1",
        )
        .await?
        .is_none()
    {
        bail!("the apalis-redis warm-up task did not start");
    }
    sp.finish_and_clear();

    let pb = progress::bar(samples as u64, "apalis-redis latency");
    let mut ms = Vec::with_capacity(samples);
    let mut timeouts = 0;
    for i in 0..samples {
        tokio::time::sleep(gap).await;
        let seq = i as u64 + 2;
        let want = seq.to_string();
        let t0 = Instant::now();
        store.push(seq).await.context("apalis push")?;
        match sub
            .wait_for(&mut worker, sample_timeout, |p| p == want.as_bytes())
            .await?
        {
            Some(at) => {
                let v = at.duration_since(t0).as_secs_f64() * 1000.0;
                pb.suspend(|| {
                    progress::note(format!("  apalis-redis sample {}: {v:.0} ms", i + 1))
                });
                ms.push(v);
            }
            None => {
                pb.suspend(|| {
                    progress::note(format!(
                        "  apalis-redis sample {}: timed out after {sample_timeout:?}",
                        i + 1
                    ))
                });
                timeouts += 1;
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let _ = worker.stop(STOP_GRACE).await;
    Ok(Latency::from_samples(samples, ms, timeouts))
}
