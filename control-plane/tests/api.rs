//! The API end to end: real control plane, real worker, real Redis and PostgreSQL.
mod common;

use std::time::Duration;

use common::{ADMIN, Env, read_events};
use reqwest::StatusCode;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn auth_roles_and_bad_input_get_coded_errors() {
    let env = Env::start().await;
    let user = env.mint_token("user");
    let diag = json!({"kind": "diagnostic", "input": {}});

    let (s, v) = env.call("POST", "/v1/jobs", None, Some(diag.clone())).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = env
        .call("POST", "/v1/jobs", Some("vf_nope"), Some(diag.clone()))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = env
        .call("POST", "/v1/jobs", Some(&user), Some(diag.clone()))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "diagnostic is admin-only"
    );
    let (s, v) = env
        .call("GET", "/v1/settings/retry", Some(&user), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, v) = env.call("GET", "/v1/workers", Some(&user), None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));

    // malformed JSON
    let res = env
        .http
        .post(format!("{}/v1/jobs", env.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&res.json::<Value>().await.unwrap()), "malformed_json");
    // oversized body
    let big = "x".repeat((1 << 20) + 1000);
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "diagnostic", "input": {"pad": big}}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // wrong shape, unknown kind, wrong payload types
    let (s, v) = env.post("/v1/jobs", json!({"kind": 5})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let (s, v) = env.post("/v1/jobs", json!({"kind": "mine_bitcoin"})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_kind")
    );
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "retention", "input": {"days": 3}}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
    );
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "transcribe", "input": {"file_id": uuid::Uuid::nil()}}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "transcribe", "input": {"file_id": uuid::Uuid::nil(), "beam_size": 50}}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
    );
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "diagnostic", "input": {"sleep_ms": "long"}}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
    );
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "diagnostic", "input": {"steps": 0}}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
    );
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "diagnostic", "queue": "Bad Queue"}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_queue")
    );
    let (s, v) = env
        .post("/v1/jobs", json!({"kind": "diagnostic", "max_retries": 11}))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input")
    );
    // settings out of range
    for bad in [
        json!({"limit_retries": true, "max_retries": 0}),
        json!({"limit_retries": true, "max_retries": 11}),
    ] {
        let (s, v) = env
            .call("PUT", "/v1/settings/retry", Some(ADMIN), Some(bad))
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting")
        );
    }
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/retry",
            Some(ADMIN),
            Some(json!({"limit_retries": "yes"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    // batches: too many, and one bad item rejects the whole batch
    let many: Vec<Value> = (0..1001).map(|_| json!({"kind": "diagnostic"})).collect();
    let (s, v) = env.post("/v1/jobs/batch", json!({"jobs": many})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_jobs")
    );
    let (s, v) = env
        .post(
            "/v1/jobs/batch",
            json!({"jobs": [{"kind": "diagnostic"}, {"kind": "nope"}]}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_kind")
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1]")
    );
    let (_, list) = env.get("/v1/jobs").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        0,
        "nothing was queued by rejected requests"
    );
    // unknown job, bad list query
    let (s, v) = env.get("/v1/jobs/not-a-uuid").await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = env.get(&format!("/v1/jobs/{}", uuid::Uuid::now_v7())).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = env.get("/v1/jobs?limit=0").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (s, v) = env.get("/v1/jobs?status=sleeping").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
    assert!(
        env.log("control-plane.log")
            .lines()
            .all(|l| !l.contains("panicked"))
    );
}

#[tokio::test]
async fn a_diagnostic_job_runs_end_to_end_with_progress_events() {
    let mut env = Env::start().await;
    env.worker("w1", &["--concurrency", "2"]);
    let id = env.submit(json!({"sleep_ms": 600, "steps": 3})).await;
    let events = read_events(&env, &format!("/v1/jobs/{id}/events"), T, |d| {
        d["status"] == "succeeded"
    })
    .await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        events.last().unwrap().1["status"],
        "succeeded",
        "{events:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "progress").count(),
        3,
        "{names:?}"
    );
    let last_progress = events.iter().rev().find(|(n, _)| n == "progress").unwrap();
    assert_eq!(last_progress.1["progress"]["percent"], 100.0);
    let j = env.job(&id).await;
    assert_eq!(j["status"], "succeeded");
    assert_eq!(j["attempts"], 1);
    assert_eq!(j["worker"], "w1");
    assert_eq!(j["result"]["steps"], 3);
    assert!(j["started_at"].is_string() && j["finished_at"].is_string());

    // the record reaches PostgreSQL
    let pool = env.pg().await;
    let mut status = String::new();
    for _ in 0..100 {
        status = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "succeeded");

    let (s, w) = env.get("/v1/workers").await;
    assert_eq!(s, StatusCode::OK);
    let w0 = &w["workers"][0];
    assert_eq!(
        (
            w0["name"].as_str(),
            w0["state"].as_str(),
            w0["device"].as_str()
        ),
        (Some("w1"), Some("running"), Some("cpu"))
    );
    assert_eq!(w0["queues"], json!(["cpu"]));
    let (s, g) = env.get("/v1/gpus").await;
    assert_eq!(
        (s, g["gpus"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "no GPU on this machine"
    );
    let cpu = env.queue_row("cpu").await;
    assert_eq!(
        (cpu["queued"].as_u64(), cpu["running"].as_u64()),
        (Some(0), Some(0))
    );
    let (s, r) = env.call("GET", "/readyz", None, None).await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("ready")));
    let metrics = env.text_auth("/metrics").await;
    assert!(metrics.contains("voxfleet_jobs_total{"), "{metrics}");
    assert!(metrics.contains("voxfleet_queue_depth{"), "{metrics}");
    let (s, api) = env.call("GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for p in [
        "/v1/jobs",
        "/v1/jobs/{id}/events",
        "/v1/settings/retry",
        "/v1/gpus",
    ] {
        assert!(
            api["paths"][p].is_object(),
            "missing {p} in the OpenAPI document"
        );
    }
    // idle worker, submit → started quickly (not on a slow timer): checked loosely here;
    // the benchmark measures it
    let id = env.submit(json!({})).await;
    env.wait_status(&id, "succeeded", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn idempotency_keys_batches_and_listing() {
    let mut env = Env::start().await;
    let body = json!({"kind": "diagnostic", "input": {}, "idempotency_key": "upload-42"});
    let (s1, a) = env.post("/v1/jobs", body.clone()).await;
    let (s2, b) = env.post("/v1/jobs", body).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(a["id"], b["id"], "same key, same job");
    let jobs: Vec<Value> = (0..50)
        .map(|i| json!({"kind": "diagnostic", "priority": if i % 2 == 0 { "high" } else { "low" }}))
        .collect();
    let (s, v) = env.post("/v1/jobs/batch", json!({"jobs": jobs})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 50);
    let cpu = env.queue_row("cpu").await;
    assert_eq!(cpu["queued"], 51);
    assert_eq!(
        cpu["queued_by_priority"],
        json!({"high": 25, "normal": 1, "low": 25})
    );
    env.worker("w1", &["--concurrency", "8"]);
    let last = v["jobs"][49]["id"].as_str().unwrap().to_string();
    env.wait_status(&last, "succeeded", T).await;
    // pages of 20, newest first, no duplicates
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=20&cursor={c}"),
            None => "/v1/jobs?limit=20".into(),
        };
        let (s, page) = env.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for j in page["jobs"].as_array().unwrap() {
            assert!(seen.insert(j["id"].as_str().unwrap().to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 51);
    // users see only their own jobs
    let user = env.mint_token("user");
    let (s, l) = env.call("GET", "/v1/jobs", Some(&user), None).await;
    assert_eq!(
        (s, l["jobs"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    let (s, _) = env
        .call("GET", &format!("/v1/jobs/{last}"), Some(&user), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn retry_cap_comes_from_the_setting_and_changes_apply_without_restart() {
    let mut env = Env::start().await;
    env.worker("w1", &["--concurrency", "4", "--retry-backoff-ms", "20"]);
    env.set_retry(true, 2).await;
    let a = env.submit(json!({"fail": "always"})).await;
    let j = env.wait_status(&a, "failed", T).await;
    assert_eq!(j["attempts"], 3, "max_retries 2: three attempts");
    assert_eq!(j["error"]["code"], "diagnostic_failure");
    // change the setting; the running worker applies it at its next decision
    env.set_retry(true, 1).await;
    let b = env.submit(json!({"fail": "always"})).await;
    assert_eq!(env.wait_status(&b, "failed", T).await["attempts"], 2);
    // the job's own lower cap
    let c = env
        .submit_with(json!({"kind": "diagnostic", "input": {"fail": "always"}, "max_retries": 0}))
        .await;
    assert_eq!(env.wait_status(&c, "failed", T).await["attempts"], 1);
    // a permanent error fails at once
    let d = env.submit(json!({"fail": "permanent"})).await;
    assert_eq!(env.wait_status(&d, "failed", T).await["attempts"], 1);
    // a transient error is retried and then succeeds
    let e = env.submit(json!({"fail": "first_attempt"})).await;
    assert_eq!(env.wait_status(&e, "succeeded", T).await["attempts"], 2);
    // a panicking handler fails its job with a code; the worker carries on
    let p = env.submit(json!({"fail": "panic"})).await;
    let jp = env.wait_status(&p, "failed", T).await;
    assert_eq!(
        (jp["attempts"].as_u64(), jp["error"]["code"].as_str()),
        (Some(1), Some("handler_panic")),
        "{jp}"
    );
    // crash is refused by a worker without --allow-crash: a bad request, not a crash
    let f = env.submit(json!({"crash": true})).await;
    let jf = env.wait_status(&f, "failed", T).await;
    assert_eq!(
        (jf["attempts"].as_u64(), jf["error"]["code"].as_str()),
        (Some(1), Some("crash_not_allowed"))
    );
    // the dead-letter: failed jobs stay listed and can be re-run
    let cpu = env.queue_row("cpu").await;
    assert!(cpu["failed"].as_u64().unwrap() >= 4, "{cpu}");
    let (s, _) = env.post(&format!("/v1/jobs/{e}/retry"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "a succeeded job is not re-run");
    let (s, v) = env.post(&format!("/v1/jobs/{c}/retry"), json!({})).await;
    assert_eq!(
        (s, v["status"].as_str(), v["attempts"].as_u64()),
        (StatusCode::ACCEPTED, Some("queued"), Some(0))
    );
    let again = env.wait_status(&c, "failed", T).await;
    assert_eq!(again["attempts"], 1);
    assert_ne!(again["finished_at"], j["finished_at"]);
    // with the limit off, retries continue past max_retries
    env.set_retry(false, 1).await;
    let g = env.submit(json!({"fail": "always"})).await;
    env.wait_job(&g, T, |j| j["attempts"].as_u64().unwrap_or(0) >= 4)
        .await;
    let (s, _) = env.post(&format!("/v1/jobs/{g}/cancel"), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    env.wait_status(&g, "cancelled", T).await;
}

#[tokio::test]
async fn cancel_removes_queued_jobs_and_stops_running_ones() {
    let mut env = Env::start().await;
    let queued = env.submit(json!({})).await;
    let (s, v) = env
        .post(&format!("/v1/jobs/{queued}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::ACCEPTED, Some("cancelled"))
    );
    let (s, v) = env
        .post(&format!("/v1/jobs/{queued}/cancel"), json!({}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "job_finished"));

    env.worker("w1", &[]);
    let long = env.submit(json!({"sleep_ms": 60000, "steps": 600})).await;
    env.wait_status(&long, "running", T).await;
    let t0 = std::time::Instant::now();
    let (s, _) = env
        .post(&format!("/v1/jobs/{long}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let j = env.wait_status(&long, "cancelled", T).await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the handler stopped at a checkpoint, not at the end"
    );
    assert_eq!(j["error"]["code"], "cancelled");
    // the cancelled job was removed from the queue: the worker is free for the next one
    let next = env.submit(json!({})).await;
    env.wait_status(&next, "succeeded", T).await;
    let j = env.job(&queued).await;
    assert_eq!(
        (j["status"].as_str(), j["attempts"].as_u64()),
        (Some("cancelled"), Some(0)),
        "never ran"
    );
}

/// No GPU can run here, so this test publishes the heartbeat a GPU worker would (its NVML
/// reading is the mocked part) and checks what operators see: `/v1/gpus`, `/v1/workers` and the
/// DCGM-named gauges; and that a silent worker turns `lost` with its GPU unhealthy.
#[tokio::test]
async fn gpu_readings_from_heartbeats_are_served_and_exported() {
    use voxfleet_jobs::fleet::{GpuStats, WorkerInfo, WorkerState};
    let env = Env::start().await;
    let q = voxfleet_jobs::QueueClient::new(
        &env.redis_url,
        voxfleet_jobs::Keys::new(&env.prefix),
        Default::default(),
    )
    .unwrap();
    let gpu = GpuStats {
        index: 0,
        uuid: "GPU-8f3e0000-0000-0000-0000-000000000000".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        memory_total_bytes: 80 << 30,
        memory_used_bytes: 20 << 30,
        memory_free_bytes: 60 << 30,
        utilization_percent: Some(87),
        temperature_celsius: Some(61),
        power_watts: Some(412.5),
        healthy: true,
    };
    let mut info = WorkerInfo {
        name: "gpu-box-1".into(),
        host: "gpu-box".into(),
        pid: 4242,
        version: "0.1.0".into(),
        queues: vec!["gpu".into()],
        concurrency: 1,
        running: vec![],
        device: "cuda:0".into(),
        gpus: vec![gpu],
        state: WorkerState::Running,
        started_at: chrono::Utc::now(),
        last_heartbeat: chrono::Utc::now(),
        heartbeat_interval_s: 5,
        models: vec![],
    };
    q.heartbeat(&info, Duration::from_secs(60)).await.unwrap();
    let (s, g) = env.get("/v1/gpus").await;
    assert_eq!(s, StatusCode::OK);
    let g0 = &g["gpus"][0];
    assert_eq!(g0["worker"], "gpu-box-1");
    assert_eq!(g0["memory_used_bytes"], 20u64 << 30);
    assert_eq!(
        (g0["utilization_percent"].as_u64(), g0["healthy"].as_bool()),
        (Some(87), Some(true))
    );
    let (_, w) = env.get("/v1/workers").await;
    assert_eq!(
        (
            w["workers"][0]["device"].as_str(),
            w["workers"][0]["gpu_count"].as_u64()
        ),
        (Some("cuda:0"), Some(1))
    );
    let metrics = env.text_auth("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("DCGM_FI_DEV_GPU_UTIL{") && l.ends_with(" 87")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("DCGM_FI_DEV_FB_USED{") && l.ends_with(" 20480")),
        "{metrics}"
    );
    // a worker silent for more than three intervals is lost, and its GPU unhealthy
    info.last_heartbeat = chrono::Utc::now() - chrono::Duration::seconds(60);
    q.heartbeat(&info, Duration::from_secs(60)).await.unwrap();
    let (_, w) = env.get("/v1/workers").await;
    assert_eq!(w["workers"][0]["state"], "lost");
    let (_, g) = env.get("/v1/gpus").await;
    assert_eq!(g["gpus"][0]["healthy"], false);
}
