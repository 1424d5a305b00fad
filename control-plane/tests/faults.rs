//! Failures the peers we replace get wrong, each with real processes: a worker killed with
//! SIGKILL mid-job, a job that kills its worker every time, SIGTERM drains, a Redis restart, and
//! PostgreSQL unreachable for a while.
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Env, free_port};
use reqwest::StatusCode;
use serde_json::json;

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_worker_killed_mid_job_loses_its_lease_and_the_attempt_counts() {
    let mut env = Env::start().await;
    // default lease (15 s): the 30 s promise must hold for the shipped configuration
    let a = env.worker("a", &[]);
    let id = env.submit(json!({"sleep_ms": 4000, "steps": 40})).await;
    env.wait_job(&id, T, |j| j["status"] == "running" && j["worker"] == "a")
        .await;
    env.signal(a, "-KILL");
    let killed = Instant::now();
    env.worker("b", &[]);
    // watch the job: it must come back with the attempt counted and `worker_lost`
    let mut requeued_after = None;
    let mut saw_worker_lost = false;
    let deadline = Instant::now() + T;
    loop {
        let j = env.job(&id).await;
        if j["error"]["code"] == "worker_lost" {
            saw_worker_lost = true;
        }
        if requeued_after.is_none() && j["attempts"].as_u64() == Some(1) && j["status"] != "running"
        {
            requeued_after = Some(killed.elapsed());
        }
        if j["attempts"].as_u64() == Some(2) && requeued_after.is_none() {
            requeued_after = Some(killed.elapsed());
        }
        if j["status"] == "succeeded" {
            assert_eq!(j["attempts"], 2, "{j}");
            assert_eq!(j["worker"], "b");
            break;
        }
        assert!(Instant::now() < deadline, "job not recovered: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = requeued_after.unwrap();
    eprintln!(
        "kill -9: job re-queued {:.1} s after the worker died",
        after.as_secs_f64()
    );
    assert!(after < Duration::from_secs(30), "re-queued after {after:?}");
    assert!(
        saw_worker_lost,
        "the lost attempt is recorded as worker_lost"
    );
}

#[tokio::test]
async fn a_job_that_kills_its_worker_every_time_ends_failed() {
    let mut env = Env::start().await;
    env.set_retry(true, 2).await;
    let args = [
        "--allow-crash",
        "--lease-seconds",
        "2",
        "--retry-backoff-ms",
        "100",
    ];
    let mut w = env.worker("crashy-0", &args);
    let id = env
        .submit(json!({"crash": true, "sleep_ms": 100, "steps": 1}))
        .await;
    let mut crashes = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let j = loop {
        let j = env.job(&id).await;
        if j["status"] == "failed" {
            break j;
        }
        // a supervisor restarting the worker, as a container orchestrator would
        if let Some(st) = env.workers[w].try_wait().unwrap() {
            assert!(!st.success(), "the worker aborted");
            crashes += 1;
            w = env.worker(&format!("crashy-{crashes}"), &args);
        }
        assert!(
            Instant::now() < deadline,
            "still not failed after {crashes} crashes: {j}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        j["attempts"], 3,
        "max_retries 2 → 3 attempts, then failed: {j}"
    );
    assert_eq!(j["error"]["code"], "worker_lost");
    assert_eq!(crashes, 3);
    // and the fleet goes on: the last worker is alive and takes new work
    let ok = env.submit(json!({})).await;
    env.wait_status(&ok, "succeeded", T).await;
}

#[tokio::test]
async fn sigterm_finishes_running_jobs_then_exits_zero() {
    let mut env = Env::start().await;
    let w = env.worker("drainer", &["--concurrency", "2"]);
    let id = env.submit(json!({"sleep_ms": 1500, "steps": 3})).await;
    env.wait_status(&id, "running", T).await;
    env.signal(w, "-TERM");
    let status = wait_exit(&mut env.workers[w], Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(env.job(&id).await["status"], "succeeded");
    let (_, ws) = env.get("/v1/workers").await;
    assert_eq!(ws["workers"][0]["state"], "stopped", "{ws}");
    // a queued job submitted now waits for the next worker: nothing claimed it
    let later = env.submit(json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.job(&later).await["status"], "queued");
}

#[tokio::test]
async fn sigterm_releases_jobs_that_outlast_the_drain_timeout() {
    let mut env = Env::start().await;
    let w = env.worker("slow", &["--drain-timeout-seconds", "1"]);
    let id = env.submit(json!({"sleep_ms": 60000, "steps": 600})).await;
    env.wait_status(&id, "running", T).await;
    env.signal(w, "-TERM");
    let status = wait_exit(&mut env.workers[w], Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    let j = env.job(&id).await;
    assert_eq!(
        (j["status"].as_str(), j["attempts"].as_u64()),
        (Some("queued"), Some(0)),
        "released, no attempt counted: {j}"
    );
    env.worker("next", &[]);
    env.wait_job(&id, T, |j| {
        j["status"] == "running" && j["worker"] == "next"
    })
    .await;
}

fn wait_exit(c: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private redis-server with an append-only file, so a restart keeps the queue as a
/// production Redis configured for voxfleet would.
struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("voxfleet-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            port,
            dir,
            child: None,
        };
        r.up();
        r
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Killed, its append-only files removed, and started again empty: a Redis that lost
    /// everything (no persistence, or writes a failover dropped).
    fn lose_everything(&mut self) {
        self.crash();
        std::fs::remove_dir_all(&self.dir).unwrap();
        std::fs::create_dir_all(&self.dir).unwrap();
        self.up();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn workers_and_control_plane_ride_out_a_redis_restart() {
    let mut redis = PrivateRedis::start();
    let mut env = Env::start_with(&redis.url(), None).await;
    let w = env.worker("survivor", &["--concurrency", "2"]);
    let mut ids = vec![];
    for _ in 0..10 {
        ids.push(env.submit(json!({"sleep_ms": 300, "steps": 2})).await);
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis.crash();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // while Redis is down: the API says so clearly, and nobody exits
    let (s, v) = env.post("/v1/jobs", json!({"kind": "diagnostic"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")),
        "{v}"
    );
    assert!(env.control_plane_alive());
    assert!(
        env.workers[w].try_wait().unwrap().is_none(),
        "worker still running"
    );
    redis.up();
    for id in &ids {
        env.wait_status(id, "succeeded", T).await;
    }
    let after = env.submit(json!({})).await;
    env.wait_status(&after, "succeeded", T).await;
    assert!(env.control_plane_alive());
    assert!(
        env.workers[w].try_wait().unwrap().is_none(),
        "worker still running"
    );
    let log = env.log("worker-survivor.log");
    assert!(
        log.contains("redis failing"),
        "the outage was logged:\n{log}"
    );
    assert!(
        log.contains("redis recovered"),
        "the recovery was logged:\n{log}"
    );
}

#[tokio::test]
async fn waiting_jobs_that_redis_lost_are_queued_again_and_run_once() {
    let mut redis = PrivateRedis::start();
    let mut env = Env::start_with(&redis.url(), None).await;
    env.cp_env
        .push(("VOXFLEET_REQUEUE_LOST_AFTER_SECONDS".into(), "1".into()));
    env.restart_control_plane().await;
    let mut ids = vec![];
    for _ in 0..5 {
        ids.push(env.submit(json!({"sleep_ms": 50})).await);
    }
    // no worker yet: the jobs wait in Redis, and PostgreSQL holds them as queued
    redis.lose_everything();
    env.worker("after", &[]);
    for id in &ids {
        let j = env.wait_status(id, "succeeded", T).await;
        assert_eq!(j["attempts"], 1, "{j}");
    }
    let log = env.log("control-plane.log");
    assert_eq!(
        log.matches("queued a job again that Redis had lost")
            .count(),
        ids.len(),
        "each lost job queued again once:\n{log}"
    );
}

#[tokio::test]
async fn running_jobs_that_redis_lost_are_queued_again_and_finish() {
    let mut redis = PrivateRedis::start();
    let mut env = Env::start_with(&redis.url(), None).await;
    env.cp_env
        .push(("VOXFLEET_REQUEUE_LOST_AFTER_SECONDS".into(), "1".into()));
    env.restart_control_plane().await;
    env.worker("first", &["--concurrency", "1"]);
    let id = env.submit(json!({"sleep_ms": 6000, "steps": 12})).await;
    env.wait_status(&id, "running", T).await;
    // PostgreSQL holds the job as running (its persister saw the claim), then Redis loses
    // everything while the attempt is under way
    sqlx::query("UPDATE jobs SET status = 'running', updated_at = now() WHERE id = $1::uuid")
        .bind(&id)
        .execute(&env.pg().await)
        .await
        .unwrap();
    redis.lose_everything();
    let j = env.wait_status(&id, "succeeded", T).await;
    assert_eq!(
        j["attempts"], 1,
        "one attempt since it was queued again: {j}"
    );
    let log = env.log("control-plane.log");
    assert_eq!(
        log.matches("queued a job again that Redis had lost")
            .count(),
        1,
        "queued again once:\n{log}"
    );
    let worker = env.log("worker-first.log");
    assert!(
        worker.contains("lease lost while running"),
        "the first attempt stopped when its lease was gone:\n{worker}"
    );
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let (o, c) = (open.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut up) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut up).await;
                    }
                });
                c.lock().unwrap().push(h.abort_handle());
            }
        });
        Self {
            port,
            open,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn results_written_while_postgres_is_unreachable_arrive_when_it_returns() {
    let proxy = Proxy::start(5432).await;
    let mut env = Env::start_with(
        &common::redis_url(),
        Some(&format!("postgres://postgres@127.0.0.1:{}", proxy.port)),
    )
    .await;
    let w = env.worker("pg-outage", &["--concurrency", "2"]);
    let mut ids = vec![];
    for _ in 0..6 {
        ids.push(env.submit(json!({"sleep_ms": 800, "steps": 2})).await);
    }
    proxy.cut();
    let direct = env.pg().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // the jobs ran meanwhile (Redis has them), but PostgreSQL could not be written
    let (s, v) = env.call("GET", "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["redis"], "ok");
    // Only this test's jobs count: the control plane's own schedules (stats, retention) may
    // queue jobs of their own when the run is slow.
    let own: Vec<uuid::Uuid> = ids.iter().map(|i| i.parse().unwrap()).collect();
    let done: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'succeeded' AND id = ANY($1)")
            .bind(&own)
            .fetch_one(&direct)
            .await
            .unwrap();
    assert_eq!(done, 0, "nothing reached PostgreSQL during the outage");
    assert!(
        env.workers[w].try_wait().unwrap().is_none(),
        "worker still running"
    );
    proxy.restore();
    let deadline = Instant::now() + T;
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND attempts = 1 AND id = ANY($1)",
        )
        .bind(&own)
        .fetch_one(&direct)
        .await
        .unwrap();
        if done == ids.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {} results arrived",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        assert_eq!(env.job(id).await["status"], "succeeded");
    }
}

#[tokio::test]
async fn an_attempt_past_the_job_timeout_fails_as_retryable_timeout() {
    let mut env = Env::start().await;
    env.worker(
        "strict",
        &["--job-timeout-seconds", "1", "--retry-backoff-ms", "20"],
    );
    let id = env
        .submit_with(json!({"kind": "diagnostic", "input": {"sleep_ms": 30000, "steps": 300}, "max_retries": 1}))
        .await;
    let j = env.wait_status(&id, "failed", T).await;
    assert_eq!(
        (j["attempts"].as_u64(), j["error"]["code"].as_str()),
        (Some(2), Some("timeout")),
        "{j}"
    );
    // the worker is free again
    let ok = env.submit(json!({})).await;
    env.wait_status(&ok, "succeeded", T).await;
}
