//! What the tests set up behind the page: accounts through the admin API, transcripts
//! written straight into PostgreSQL, and GPU workers' heartbeats published through the calls a
//! worker publishes its own with.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;
use voxfleet_jobs::fleet::{GpuStats, WorkerInfo, WorkerState};
use voxfleet_jobs::{Keys, QueueClient, QueueOptions};

use crate::common::Env;

/// A person's account through the admin API.
pub(crate) async fn person(
    env: &Env,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> String {
    let (s, u) = env
        .post(
            "/v1/users",
            json!({"email": email, "name": name, "role": role, "password": password}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    u["id"].as_str().unwrap().to_string()
}

/// The super admin most tests sign in as: email and password.
pub(crate) const ROOT: (&str, &str) = ("root@example.org", "correct horse battery");

/// The account [`ROOT`] names, "Rae Root", a super admin; its id.
pub(crate) async fn root(env: &Env) -> String {
    person(env, ROOT.0, "Rae Root", "super_admin", ROOT.1).await
}

/// Transcripts written as a worker would have, for the re-index to work on.
pub(crate) async fn plant_transcripts(env: &Env, n: usize) {
    let pg = env.pg().await;
    for i in 0..n {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO files (id, owner, filename, size_bytes, sha256, storage_key, \
             transcribed_at) VALUES ($1, NULL, $2, 1, 'x', $3, now())",
        )
        .bind(id)
        .bind(format!("planted-{i}.wav"))
        .bind(format!("planted/{id}"))
        .execute(&pg)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO transcript_segments (file_id, idx, start_s, end_s, text, avg_logprob, \
             no_speech_prob, temperature, compression_ratio, language) \
             VALUES ($1, 0, 0, 60, $2, 0, 0, 0, 1, 'en')",
        )
        .bind(id)
        .bind(format!(
            "meeting {i} about rivers, budgets and the quarterly plan"
        ))
        .execute(&pg)
        .await
        .unwrap();
    }
}

/// The queue client a worker publishes through, on this test's key prefix.
fn worker_queue(env: &Env) -> QueueClient {
    QueueClient::new(
        &env.redis_url,
        Keys::new(&env.prefix),
        QueueOptions::default(),
    )
    .unwrap()
}

/// An H100 as the worker's NVML reading (`voxfleet_worker::gpu::Gpus::stats`) gives it: 80 GiB
/// of memory, `used_gib` of it in use. A stand-in for NVML, which cannot run on a machine
/// without an NVIDIA GPU.
pub(crate) fn h100(
    index: u32,
    used_gib: u64,
    utilization: u32,
    celsius: u32,
    watts: f64,
) -> GpuStats {
    GpuStats {
        index,
        uuid: format!("GPU-5d1e0000-0000-0000-0000-{index:012}"),
        name: "NVIDIA H100 80GB HBM3".into(),
        memory_total_bytes: 80 << 30,
        memory_used_bytes: used_gib << 30,
        memory_free_bytes: (80 - used_gib) << 30,
        utilization_percent: Some(utilization),
        temperature_celsius: Some(celsius),
        power_watts: Some(watts),
        healthy: true,
    }
}

/// A running worker's heartbeat carrying these GPU readings, published as the worker's
/// heartbeat publishes it (`QueueClient::heartbeat_with`: the heartbeat, kept an hour, and
/// beside it the readings, kept three intervals). A minute's interval: the worker is alive and
/// its readings fresh for three minutes.
pub(crate) async fn gpu_heartbeat(env: &Env, worker: &str, host: &str, gpus: Vec<GpuStats>) {
    let now = Utc::now();
    let info = WorkerInfo {
        name: worker.into(),
        host: host.into(),
        pid: 4242,
        version: env!("CARGO_PKG_VERSION").into(),
        queues: vec!["gpu".into()],
        concurrency: 1,
        running: vec![],
        device: "cuda:0".into(),
        gpus,
        state: WorkerState::Running,
        started_at: now,
        last_heartbeat: now,
        heartbeat_interval_s: 60,
        models: vec![],
    };
    worker_queue(env)
        .heartbeat_with(&info, Duration::from_secs(3600), None)
        .await
        .unwrap();
}

/// Lets a worker's readings expire while its heartbeat stays live, which the page reports as
/// stale: its last readings are written again as a `collect_stats` job writes them
/// (`QueueClient::put_node_stats`), kept one second instead of `COLLECTED_STATS_TTL`, and
/// waited out.
pub(crate) async fn expire_readings(env: &Env, worker: &str) {
    let q = worker_queue(env);
    let name = [worker.to_string()];
    let last = q.node_stats(&name).await.unwrap().remove(0);
    let last = last.unwrap_or_else(|| panic!("{worker} has no readings to expire"));
    q.put_node_stats(&last, Duration::from_secs(1))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while q.node_stats(&name).await.unwrap()[0].is_some() {
        assert!(
            Instant::now() < deadline,
            "{worker}'s readings never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
