//! End to end: the admin statistics (`/v1/stats`), task health (`/v1/tasks/health`) and the
//! Prometheus exposition (`/metrics`) against a planted history, with the real binaries.
mod common;

use std::time::{Duration, Instant};

use common::Env;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use voxfleet_jobs::fleet::{
    DiskStats, GpuStats, LoadedModel, NodeStats, StatsSource, SystemStats, WorkerInfo, WorkerState,
};
use voxfleet_jobs::{Keys, QueueClient, QueueName};

/// A control plane without its scheduler (whose recurring `collect_stats` jobs would change
/// the counts under test), over a jobs table emptied of anything it fired before the restart.
async fn env_without_scheduler() -> Env {
    let mut env = Env::start().await;
    env.cp_env
        .push(("VOXFLEET_NO_SCHEDULER".into(), "true".into()));
    env.restart_control_plane().await;
    sqlx::query("DELETE FROM jobs")
        .execute(&env.pg().await)
        .await
        .unwrap();
    env
}

async fn token(pg: &PgPool, plain: &str, role: &str, age: &str, disabled: bool) {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO users (id, name, role, created_at, disabled) \
         VALUES ($1, $2, $3, now() - $4::interval, $5)",
    )
    .bind(id)
    .bind(format!("planted {role}"))
    .bind(role)
    .bind(age)
    .bind(disabled)
    .execute(pg)
    .await
    .unwrap();
    sqlx::query("INSERT INTO api_tokens (id, name, user_id, token_sha256) VALUES ($1, $2, $1, $3)")
        .bind(id)
        .bind(format!("planted {role}"))
        .bind(voxfleet_store::tokens::hash_token(plain))
        .execute(pg)
        .await
        .unwrap();
}

/// A file of `age`, with `segments` transcript segments and `speakers` speakers.
async fn file(
    pg: &PgPool,
    name: &str,
    duration: Option<f64>,
    age: &str,
    deleting: bool,
    segments: i32,
    speakers: i32,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO files (id, filename, size_bytes, sha256, storage_key, duration_s, created_at, \
            deleting_at) \
         VALUES ($1, $2, 1000, 'x', $3, $4, now() - $5::interval, CASE WHEN $6 THEN now() END)",
    )
    .bind(id)
    .bind(name)
    .bind(format!("planted/{id}"))
    .bind(duration)
    .bind(age)
    .bind(deleting)
    .execute(pg)
    .await
    .unwrap();
    for i in 0..segments {
        sqlx::query(
            "INSERT INTO transcript_segments (file_id, idx, start_s, end_s, text, avg_logprob, \
                no_speech_prob, language) VALUES ($1, $2, $2, $2 + 1, 'hello', -0.1, 0.01, 'en')",
        )
        .bind(id)
        .bind(i)
        .execute(pg)
        .await
        .unwrap();
    }
    for i in 0..speakers {
        sqlx::query("INSERT INTO speakers (id, file_id, label, speech_s) VALUES ($1, $2, $3, 10)")
            .bind(Uuid::new_v4())
            .bind(id)
            .bind(format!("SPEAKER_{i:02}"))
            .execute(pg)
            .await
            .unwrap();
    }
    id
}

/// A job created `created` ago, started `started` after that and finished `ran` later
/// (seconds; None where it never got there).
#[allow(clippy::too_many_arguments)]
async fn job(
    pg: &PgPool,
    kind: &str,
    queue: &str,
    status: &str,
    input: Value,
    created: f64,
    wait: Option<f64>,
    ran: Option<f64>,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "WITH t AS (SELECT now() - make_interval(secs => $6) AS c) \
         INSERT INTO jobs (id, kind, queue, status, input, attempts, worker, created_at, \
            started_at, finished_at) \
         SELECT $1, $2, $3, $4, $5, 1, 'planted-worker', t.c, \
            t.c + make_interval(secs => $7), t.c + make_interval(secs => $7 + $8) FROM t",
    )
    .bind(id)
    .bind(kind)
    .bind(queue)
    .bind(status)
    .bind(input)
    .bind(created)
    .bind(wait)
    .bind(ran)
    .execute(pg)
    .await
    .unwrap();
    id
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-6)
}

const DAY: f64 = 86_400.0;

/// The stats definitions on a planted history: users (tokens), files (without those being
/// deleted), segments, speakers, job counts, success rate over finished jobs only, processing
/// time from start to finish, queue wait from creation to start, and stuck jobs (no lease, or
/// past their kind's maximum run time) with their age.
#[tokio::test]
async fn stats_and_task_health_follow_their_definitions() {
    let env = env_without_scheduler().await;
    let pg = env.pg().await;

    // users: the bootstrap super_admin, two users (one a month old), an admin, a disabled user
    let user_token = "planted-user-token-0123456789";
    token(&pg, user_token, "user", "1 hour", false).await;
    token(
        &pg,
        "planted-old-user-token-012345",
        "user",
        "30 days",
        false,
    )
    .await;
    token(
        &pg,
        "planted-admin-token-0123456789",
        "admin",
        "2 days",
        false,
    )
    .await;
    token(
        &pg,
        "planted-disabled-token-0123456",
        "user",
        "1 hour",
        true,
    )
    .await;

    // files: the one being deleted by retention counts nowhere, nor its segments and speakers
    let f1 = file(&pg, "meeting.wav", Some(120.5), "1 hour", false, 3, 2).await;
    let f2 = file(&pg, "interview.mp3", Some(60.0), "10 days", false, 2, 1).await;
    let f3 = file(&pg, "broken.wav", None, "2 hours", false, 0, 0).await;
    let f4 = file(&pg, "old.wav", Some(1000.0), "40 days", true, 4, 4).await;

    // jobs: created / waited / ran (seconds)
    let t = DAY; // a day ago
    let j1 = job(
        &pg,
        "transcribe",
        "gpu",
        "succeeded",
        json!({"file_id": f1}),
        t,
        Some(10.0),
        Some(60.0),
    )
    .await;
    let _j2 = job(
        &pg,
        "diarize",
        "gpu",
        "succeeded",
        json!({"file_id": f2}),
        t - 100.0,
        Some(30.0),
        Some(120.0),
    )
    .await;
    let j3 = job(
        &pg,
        "transcribe",
        "gpu",
        "failed",
        json!({"file_id": f3}),
        t - 300.0,
        Some(5.0),
        Some(30.0),
    )
    .await;
    let _j4 = job(
        &pg,
        "diagnostic",
        "cpu",
        "cancelled",
        json!({}),
        t - 400.0,
        Some(20.0),
        Some(10.0),
    )
    .await;
    let _j5 = job(
        &pg,
        "diagnostic",
        "cpu",
        "queued",
        json!({}),
        t - 500.0,
        None,
        None,
    )
    .await;
    let _j9 = job(
        &pg,
        "transcribe",
        "gpu",
        "retrying",
        json!({"file_id": f4}),
        t - 600.0,
        None,
        None,
    )
    .await;
    // running: one no worker holds a lease on, one leased but past the diagnostic kind's hour,
    // one leased and well within the transcribe kind's limit
    let j6 = job(
        &pg,
        "diagnostic",
        "cpu",
        "running",
        json!({}),
        7260.0,
        Some(60.0),
        None,
    )
    .await;
    let j7 = job(
        &pg,
        "diagnostic",
        "cpu",
        "running",
        json!({}),
        5430.0,
        Some(30.0),
        None,
    )
    .await;
    let j8 = job(
        &pg,
        "transcribe",
        "gpu",
        "running",
        json!({"file_id": f1}),
        615.0,
        Some(15.0),
        None,
    )
    .await;
    let mut redis = redis::Client::open(env.redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let in_an_hour = chrono::Utc::now().timestamp_millis() + 3_600_000;
    for (queue, id) in [(QueueName::cpu(), j7), (QueueName::gpu(), j8)] {
        let _: () = redis::cmd("ZADD")
            .arg(Keys::new(&env.prefix).queue(&queue).leases())
            .arg(in_an_hour)
            .arg(id.to_string())
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    let (s, v) = env.get("/v1/stats").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["window_days"], 7);
    assert_eq!(
        v["users"],
        json!({"total": 4, "recent": 3, "users": 2, "admins": 1, "super_admins": 1})
    );
    assert_eq!(
        (
            &v["files"]["total"],
            &v["files"]["recent_uploads"],
            &v["files"]["segments"]
        ),
        (&json!(3), &json!(2), &json!(5)),
        "{v}"
    );
    assert!(close(&v["files"]["total_audio_seconds"], 180.5), "{v}");
    let tasks = &v["tasks"];
    for (k, n) in [
        ("total", 9),
        ("queued", 1),
        ("retrying", 1),
        ("running", 3),
        ("succeeded", 2),
        ("failed", 1),
        ("cancelled", 1),
    ] {
        assert_eq!(tasks[k], n, "{k}: {v}");
    }
    // 2 of the 3 that finished (the cancelled one is left out)
    assert!(close(&tasks["success_rate"], 2.0 / 3.0), "{v}");
    // (60 + 120 + 30) / 3: succeeded and failed jobs, start to finish
    assert!(close(&tasks["avg_processing_seconds"], 70.0), "{v}");
    // (10 + 30 + 5 + 20 + 60 + 30 + 15) / 7: every job that started, creation to start
    assert!(close(&tasks["avg_queue_wait_seconds"], 170.0 / 7.0), "{v}");
    assert_eq!(v["speakers"]["total"], 3, "{v}");
    assert_eq!(v["speakers"]["files_with_speakers"], 2, "{v}");
    assert!(close(&v["speakers"]["average_per_file"], 1.5), "{v}");
    let cp = &v["system"]["control_plane"];
    assert!(
        cp["cpu_per_core"].as_array().is_some_and(|c| !c.is_empty())
            && cp["memory_total_bytes"].as_u64() > Some(0),
        "{v}"
    );
    assert_eq!((&v["gpus"], &v["refresh_job"]), (&json!([]), &Value::Null));
    // a wider window
    let (_, v) = env.get("/v1/stats?days=60").await;
    assert_eq!(
        (&v["users"]["recent"], &v["files"]["recent_uploads"]),
        (&json!(4), &json!(3))
    );
    let (s, _) = env.get("/v1/stats?days=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // admins only
    let (s, _) = env.call("GET", "/v1/stats", Some(user_token), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env
        .call("GET", "/v1/tasks/health", Some(user_token), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, h) = env.get("/v1/tasks/health").await;
    assert_eq!(s, StatusCode::OK, "{h}");
    assert_eq!(
        h["counts"],
        tasks.clone(),
        "the same definitions as /v1/stats"
    );
    let jobs = h["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 9);
    let row = |id: Uuid| jobs.iter().find(|j| j["id"] == id.to_string()).unwrap();
    let r1 = row(j1);
    assert_eq!(
        (&r1["status"], &r1["file_id"], &r1["filename"], &r1["kind"]),
        (
            &json!("succeeded"),
            &json!(f1),
            &json!("meeting.wav"),
            &json!("transcribe")
        )
    );
    assert!(close(&r1["duration_seconds"], 60.0), "{r1}");
    assert!(
        r1["created_at"].is_string()
            && r1["started_at"].is_string()
            && r1["finished_at"].is_string()
    );
    let r3 = row(j3);
    assert_eq!(
        (&r3["status"], &r3["filename"]),
        (&json!("failed"), &json!("broken.wav"))
    );
    assert!(
        row(j6)["duration_seconds"].is_null(),
        "running: no duration yet"
    );
    let (_, h3) = env.get("/v1/tasks/health?limit=3").await;
    let newest: Vec<&str> = h3["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        newest,
        [j8.to_string(), j7.to_string(), j6.to_string()],
        "newest first"
    );
    let (s, _) = env.get("/v1/tasks/health?limit=501").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let stuck = h["stuck"].as_array().unwrap();
    assert_eq!(stuck.len(), 2, "{h}");
    assert_eq!(
        (&stuck[0]["id"], &stuck[0]["reason"]),
        (&json!(j6), &json!("no_lease"))
    );
    assert_eq!(
        (
            &stuck[1]["id"],
            &stuck[1]["reason"],
            &stuck[1]["max_runtime_seconds"]
        ),
        (&json!(j7), &json!("max_runtime_exceeded"), &json!(3600))
    );
    // ages: started two hours and 90 minutes before the planting (a few seconds ago)
    let age = |j: &Value| j["age_seconds"].as_f64().unwrap();
    assert!((7200.0..7260.0).contains(&age(&stuck[0])), "{h}");
    assert!((5400.0..5460.0).contains(&age(&stuck[1])), "{h}");
}

fn planted_gpu() -> GpuStats {
    GpuStats {
        index: 0,
        uuid: "GPU-5d1e0000-0000-0000-0000-00000000cafe".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        memory_total_bytes: 80 << 30,
        memory_used_bytes: 20 << 30,
        memory_free_bytes: 60 << 30,
        utilization_percent: Some(87),
        temperature_celsius: Some(61),
        power_watts: Some(412.5),
        healthy: true,
    }
}

fn stats_of<'a>(v: &'a Value, section: &str, worker: &str) -> Option<&'a Value> {
    let list = if section == "system" {
        &v["system"]["workers"]
    } else {
        &v[section]
    };
    list.as_array()?.iter().find(|w| w["worker"] == worker)
}

/// GPU readings reach `/v1/stats` and the DCGM-named gauges from a worker's stats key; once
/// the key is gone the worker is reported stale with no numbers and a `collect_stats` job is
/// asked for (once between readers), which a real worker runs, its fresh readings replacing
/// the stale report.
///
/// The GPU readings are planted: CI machines have no NVIDIA device, so no worker here can
/// produce them (everything downstream of the Redis key is real).
#[tokio::test]
async fn gpu_readings_are_exported_and_stale_ones_are_refreshed() {
    let mut env = env_without_scheduler().await;
    let q = QueueClient::new(&env.redis_url, Keys::new(&env.prefix), Default::default()).unwrap();
    let now = chrono::Utc::now();
    let info = WorkerInfo {
        name: "gpu-box-1".into(),
        host: "gpu-box".into(),
        pid: 4242,
        version: "0.1.0".into(),
        queues: vec!["gpu".into()],
        concurrency: 1,
        running: vec![],
        device: "cuda:0".into(),
        gpus: vec![planted_gpu()],
        state: WorkerState::Running,
        started_at: now,
        last_heartbeat: now,
        // live for three intervals: long enough for the checks before the real worker starts
        heartbeat_interval_s: 60,
        models: vec![LoadedModel {
            name: "whisper-tiny.en".into(),
            device: "cuda:0".into(),
            bytes: 151 << 20,
            ..LoadedModel::default()
        }],
    };
    q.heartbeat(&info, Duration::from_secs(3600)).await.unwrap();
    let planted = NodeStats {
        worker: "gpu-box-1".into(),
        host: "gpu-box".into(),
        gpus: vec![planted_gpu()],
        system: Some(SystemStats {
            host: "gpu-box".into(),
            cpu_percent: 12.5,
            cpu_per_core: vec![10.0, 15.0],
            memory_total_bytes: 64 << 30,
            memory_used_bytes: 16 << 30,
            memory_available_bytes: 48 << 30,
            disks: vec![DiskStats {
                mount_point: "/".into(),
                file_system: "ext4".into(),
                total_bytes: 1 << 40,
                available_bytes: 1 << 39,
                used_bytes: 1 << 39,
            }],
            sampled_at: now,
        }),
        collected_at: now,
        source: StatsSource::CollectStats,
    };
    q.put_node_stats(&planted, Duration::from_secs(120))
        .await
        .unwrap();

    let metrics = env.text_auth("/metrics").await;
    let labels = r#"{gpu="0",UUID="GPU-5d1e0000-0000-0000-0000-00000000cafe",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-box"}"#;
    for (name, value) in [
        ("DCGM_FI_DEV_GPU_UTIL", "87"),
        ("DCGM_FI_DEV_FB_USED", "20480"),
        ("DCGM_FI_DEV_FB_FREE", "61440"),
        ("DCGM_FI_DEV_GPU_TEMP", "61"),
        ("DCGM_FI_DEV_POWER_USAGE", "412.5"),
    ] {
        let line = format!("{name}{labels} {value}");
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("voxfleet_worker_up{worker=\"gpu-box-1\"} 1\n"),
        "{metrics}"
    );

    let (s, v) = env.get("/v1/stats").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let g = stats_of(&v, "gpus", "gpu-box-1").unwrap();
    assert_eq!(
        (&g["readings"], &g["source"]),
        (&json!("fresh"), &json!("collect_stats")),
        "{v}"
    );
    assert_eq!(g["gpus"][0]["memory_used_bytes"], 20u64 << 30);
    assert_eq!(g["gpus"][0]["utilization_percent"], 87);
    let sys = stats_of(&v, "system", "gpu-box-1").unwrap();
    assert_eq!(sys["system"]["cpu_per_core"], json!([10.0, 15.0]), "{v}");
    let m = stats_of(&v, "models", "gpu-box-1").unwrap();
    assert_eq!(m["models"][0]["name"], "whisper-tiny.en");
    assert_eq!(v["refresh_job"], Value::Null);

    // the readings expire (deleted here rather than waited for): no old numbers anywhere
    let mut redis = redis::Client::open(env.redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(Keys::new(&env.prefix).stats("gpu-box-1"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let (_, v) = env.get("/v1/stats").await;
    let g = stats_of(&v, "gpus", "gpu-box-1").unwrap();
    assert_eq!(
        (&g["readings"], &g["gpus"], &g["collected_at"]),
        (&json!("stale"), &json!([]), &Value::Null),
        "{v}"
    );
    let sys = stats_of(&v, "system", "gpu-box-1").unwrap();
    assert_eq!(
        (&sys["readings"], &sys["system"]),
        (&json!("stale"), &Value::Null)
    );
    let refresh = v["refresh_job"]
        .as_str()
        .expect("a refresh is asked for")
        .to_string();
    let metrics = env.text_auth("/metrics").await;
    assert!(
        !metrics.contains("DCGM_FI_DEV_"),
        "stale GPU gauges exported:\n{metrics}"
    );
    // a second reader shares the refresh instead of asking again
    let (_, v2) = env.get("/v1/stats").await;
    assert_eq!(v2["refresh_job"], refresh.as_str());
    let j = env.job(&refresh).await;
    assert_eq!(
        (&j["kind"], &j["queue"], &j["status"]),
        (&json!("collect_stats"), &json!("cpu"), &json!("queued"))
    );

    // a real worker runs the refresh; its fresh readings then appear
    env.worker("w1", &[]);
    let j = env.wait_ended(&refresh, Duration::from_secs(120)).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    let result = &j["result"];
    assert_eq!(
        (&result["worker"], &result["source"]),
        (&json!("w1"), &json!("collect_stats")),
        "{j}"
    );
    let cores = result["system"]["cpu_per_core"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        cores > 0 && result["system"]["memory_total_bytes"].as_u64() > Some(0),
        "{j}"
    );
    assert!(result["system"]["disks"].is_array(), "{j}");
    assert_eq!(result["gpus"], json!([]), "no NVIDIA device here");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = env.get("/v1/stats").await;
        let fresh = stats_of(&v, "system", "w1")
            .filter(|s| s["readings"] == "fresh")
            .map(|s| s["system"]["cpu_per_core"].as_array().map_or(0, Vec::len));
        if fresh == Some(cores) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "w1's readings never appeared: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = env.text_auth("/metrics").await;
    assert!(
        metrics.contains("voxfleet_worker_up{worker=\"w1\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("voxfleet_queue_depth_by_priority{"),
        "{metrics}"
    );
    assert!(metrics.contains("voxfleet_jobs_total{"), "{metrics}");
}
