//! The control plane and workers on a real Redis Cluster (six nodes on loopback, three masters
//! with a replica each: `voxfleet_testkit::cluster`), through `VOXFLEET_REDIS_URL=redis+cluster://…`:
//! jobs, progress events, workers, queues, batches, the scheduler and the statistics it
//! schedules; and a master killed with `kill -9` in the
//! middle of 1,000 jobs, whose replica takes over while every job still ends `succeeded`.
mod common;

use std::time::{Duration, Instant};

use common::{Env, read_events};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voxfleet_testkit::cluster::RedisCluster;

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn jobs_events_workers_and_queues_work_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let mut env = Env::start_with(&cluster.url(), None).await;
    env.worker("w1", &["--concurrency", "2"]);
    let id = env.submit(json!({"sleep_ms": 300, "steps": 3})).await;
    // events come through pub/sub on one node, published by scripts on another
    let events = read_events(&env, &format!("/v1/jobs/{id}/events"), T, |d| {
        d["status"] == "succeeded"
    })
    .await;
    assert_eq!(
        events.last().map(|(_, v)| v["status"].clone()),
        Some(json!("succeeded")),
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|(n, _)| n == "progress").count(),
        3,
        "{events:?}"
    );
    let j = env.job(&id).await;
    assert_eq!(
        (j["attempts"].as_u64(), j["worker"].as_str()),
        (Some(1), Some("w1"))
    );

    // a batch over three priorities, run to the end
    let jobs: Vec<Value> = (0..60)
        .map(|i| {
            let priority = ["high", "normal", "low"][i % 3];
            json!({"kind": "diagnostic", "priority": priority})
        })
        .collect();
    let (s, v) = env.post("/v1/jobs/batch", json!({"jobs": jobs})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    for j in v["jobs"].as_array().unwrap() {
        env.wait_status(j["id"].as_str().unwrap(), "succeeded", T)
            .await;
    }

    // the scheduler's lock (one key) and the statistics it schedules (one key per worker)
    let every10 = json!({"stats_every_seconds": 10, "integrity_every_hours": 0, "consistency_every_hours": 0});
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/schedules",
            Some(common::ADMIN),
            Some(every10),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pg = env.pg().await;
    let deadline = Instant::now() + T;
    loop {
        let ran: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'collect_stats' AND status = 'succeeded'",
        )
        .fetch_one(&pg)
        .await
        .unwrap();
        if ran > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled statistics run succeeded"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let (s, w) = env.get("/v1/workers").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(w["workers"][0]["name"], "w1", "{w}");
    let cpu = env.queue_row("cpu").await;
    assert_eq!(
        (cpu["queued"].as_u64(), cpu["running"].as_u64()),
        (Some(0), Some(0)),
        "{cpu}"
    );
    let (s, r) = env.call("GET", "/readyz", None, None).await;
    assert_eq!(
        (s, r["status"].as_str()),
        (StatusCode::OK, Some("ready")),
        "{r}"
    );
    for log in ["control-plane.log", "worker-w1.log"] {
        let text = env.log(log);
        assert!(
            !text.contains("CROSSSLOT") && !text.contains("panicked"),
            "{log}:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_master_killed_mid_run_fails_over_and_every_job_still_succeeds() {
    const N: usize = 1000;
    const MAX_RETRIES: u64 = 3;
    let cluster = RedisCluster::start();
    let mut env = Env::start_with(&cluster.url(), None).await;
    env.set_retry(true, MAX_RETRIES as u32).await;
    for w in ["a", "b"] {
        env.worker(w, &["--concurrency", "8"]);
    }
    let jobs: Vec<Value> = (0..N)
        .map(|_| json!({"kind": "diagnostic", "input": {"sleep_ms": 100}}))
        .collect();
    let (s, v) = env.post("/v1/jobs/batch", json!({"jobs": jobs})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let pool = env.pg().await;
    let succeeded = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'diagnostic' AND status = 'succeeded'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // kill the master that holds the cpu queue once a fifth of the jobs have left the queue
    let deadline = Instant::now() + T;
    let queued = async || {
        env.queue_row("cpu").await["queued"]
            .as_u64()
            .unwrap_or(N as u64)
    };
    let mut left = queued().await;
    while left > (N - N / 5) as u64 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = queued().await;
    }
    let master = cluster.master_of(&format!("{{{}:cpu}}", env.prefix));
    cluster.kill(master);
    assert!(
        left > 100,
        "the kill falls in the middle of the run ({left} still queued)"
    );
    cluster.wait_failover(master, Duration::from_secs(30));
    assert_ne!(
        cluster.master_of(&format!("{{{}:cpu}}", env.prefix)),
        master,
        "a replica took over the queue's slot"
    );

    let deadline = Instant::now() + Duration::from_secs(240);
    while succeeded().await < N as i64 {
        assert!(
            Instant::now() < deadline,
            "{} of {N} succeeded; logs in {}",
            succeeded().await,
            env.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, attempts FROM jobs WHERE kind = 'diagnostic'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), N, "none lost, none doubled");
    let most = rows.iter().map(|(_, a)| *a).max().unwrap_or(0);
    assert!(
        rows.iter().all(|(s, _)| s == "succeeded"),
        "every job succeeded"
    );
    assert!(
        (1..=MAX_RETRIES as i32 + 1).contains(&most),
        "each job ran at most max_retries + 1 times (most: {most})"
    );
    let reruns = rows.iter().filter(|(_, a)| *a > 1).count();
    println!(
        "failover with {left} of {N} jobs still queued: all succeeded, {reruns} ran more than \
         once, most attempts {most}"
    );
}
