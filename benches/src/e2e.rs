//! Section 5 (only with `--only e2e`): end to end against Celery. voxfleet: N no-op
//! `diagnostic` jobs submitted through the real control plane's `POST /v1/jobs/batch` (100 per
//! call from one client, as a platform sends them) and run by one real worker at concurrency
//! C, from the first request to the moment Redis holds none of them queued, running or
//! retrying; afterwards every one must be `succeeded` in PostgreSQL. Celery: the same number
//! of no-op tasks sent by a Celery client to one Celery worker (threads pool, concurrency C)
//! on the same Redis, from the first send to the last result read back
//! (`benches/python/celery_peer.py`, run by the Python given with `--celery-python`).
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use voxfleet_jobs::{Keys, QueueClient, QueueName, QueueOptions};

use crate::bench::Bench;
use crate::report::Throughput;
use crate::{api, progress, voxfleet_runs};

/// How long a worker may take to drain and exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(40);
/// Submissions per `POST /v1/jobs/batch`.
const BATCH: usize = 100;

/// voxfleet's side; see the module docs.
pub async fn voxfleet(
    b: &Bench,
    jobs: usize,
    concurrency: u32,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let cp = api::start_control_plane(b, "e2e").await?;
    let mut worker = voxfleet_runs::spawn_worker(
        b,
        &b.redis_url,
        &cp.prefix,
        &cp.db_url,
        concurrency,
        "bench-e2e",
    )?;
    let q = QueueClient::new(&b.redis_url, Keys::new(&cp.prefix), QueueOptions::default())?;
    let cpu = QueueName::cpu();
    let client = reqwest::Client::new();
    let auth = format!("Bearer {}", cp.token);
    let url = format!("{}/v1/jobs/batch", cp.base);
    let full = batch_body(BATCH);
    let post = |n: usize| {
        let body = if n == BATCH {
            full.clone()
        } else {
            batch_body(n)
        };
        client
            .post(&url)
            .header(AUTHORIZATION, &auth)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    // The worker is ready once one job has run through it (not timed).
    let r = post(1).await?;
    ensure!(r.status().is_success(), "warm-up batch: {}", r.status());
    wait_drained(&q, &cpu, &mut worker, Duration::from_secs(60)).await?;

    let pb = progress::bar(jobs as u64, "voxfleet e2e submit + run");
    let started = Instant::now();
    let mut sent = 0;
    while sent < jobs {
        let n = BATCH.min(jobs - sent);
        let r = post(n).await?;
        ensure!(
            r.status().is_success(),
            "POST /v1/jobs/batch: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        sent += n;
        pb.set_position(sent as u64);
    }
    let left = wait_drained(&q, &cpu, &mut worker, timeout).await;
    let seconds = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let stopped = worker.stop(STOP_GRACE).await;
    cp.proc.stop(Duration::from_secs(20)).await.ok();
    left?;
    let status = stopped?;
    let rows = voxfleet_runs::count_succeeded_rows(&cp.db_url).await?;
    // the warm-up job is one of the rows
    ensure!(
        rows == jobs as i64 + 1,
        "{rows} of {} jobs `succeeded` in PostgreSQL",
        jobs + 1
    );
    Ok(Throughput::Done {
        jobs,
        seconds,
        jobs_per_s: jobs as f64 / seconds,
        checks: format!(
            "{jobs}/{jobs} rows `succeeded` in PostgreSQL after the worker drained; on SIGTERM the worker ended with {status}"
        ),
    })
}

/// The body of `POST /v1/jobs/batch` with `n` no-op `diagnostic` jobs.
fn batch_body(n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "jobs": vec![serde_json::json!({"kind": "diagnostic", "input": {}}); n]
    }))
    .expect("a JSON body")
}

/// Polls until Redis holds no job of `queue` queued, running or retrying.
async fn wait_drained(
    q: &QueueClient,
    queue: &QueueName,
    worker: &mut crate::procs::Proc,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        worker.check_alive()?;
        let s = q.stats(queue).await.context("reading queue stats")?;
        if s.queued + s.running + s.retrying == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} jobs still waiting or running after {timeout:?}",
                s.queued + s.running + s.retrying
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Celery's side: `celery_peer.py` run by `python`; its JSON line read back.
pub async fn celery(
    b: &Bench,
    python: &Path,
    jobs: usize,
    concurrency: u32,
) -> anyhow::Result<Throughput> {
    let script = peer_script()?;
    let sp = progress::spinner(format!(
        "celery: {jobs} tasks, threads pool -c {concurrency}"
    ));
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args(["--jobs", &jobs.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--redis", b.redis_url.as_str()])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    sp.finish_and_clear();
    ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("reading the peer's figures from `{}`", line.trim()))?;
    let seconds = v["seconds"].as_f64().context("no `seconds`")?;
    let ok = v["ok"].as_u64().unwrap_or(0);
    ensure!(ok == jobs as u64, "{ok} of {jobs} Celery results read back");
    Ok(Throughput::Done {
        jobs,
        seconds,
        jobs_per_s: jobs as f64 / seconds,
        checks: format!(
            "{}: {ok}/{jobs} results read back from its Redis result backend",
            v["peer"].as_str().unwrap_or("celery")
        ),
    })
}

/// `benches/python/celery_peer.py` of this checkout (the harness is run from it).
fn peer_script() -> anyhow::Result<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/celery_peer.py");
    ensure!(p.is_file(), "{} is missing", p.display());
    Ok(p)
}
