//! Issue 17, transcription budgets, end to end with the real control plane, PostgreSQL and
//! Redis: each transcription reserves its file's probed minutes when it is submitted; the
//! warning at 80 %; refusal at 100 % on every way in (the jobs API, uploads with `process`,
//! OpenAI's endpoint in its `insufficient_quota` shape) leaving nothing stored; a cancelled
//! job gives its minutes back; 50 parallel submissions with room for 10 admit exactly 10; and
//! the month rolls over in the configured timezone.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use common::{Env, run_tool};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use voxfleet_store::budgets::BudgetSettings;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A minute of a quiet tone: 1.0 minute of probed audio exactly.
fn minute_of_audio(dir: &Path) -> PathBuf {
    let out = dir.join("minute.wav");
    run_tool(
        Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(&out)
            .args(["synth", "60", "sine", "300", "vol", "0.1"]),
    );
    out
}

/// A user with a 10-minute monthly budget, their token, and one uploaded minute of audio.
async fn setup(env: &Env) -> (String, String, String, PathBuf) {
    let (s, u) = env
        .post(
            "/v1/users",
            json!({"email": "gil@example.org", "name": "Gil", "transcription_budget_minutes": 10}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let user = u["id"].as_str().unwrap().to_string();
    let (s, t) = env
        .post(&format!("/v1/users/{user}/tokens"), json!({"name": "gil"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let token = t["token"].as_str().unwrap().to_string();
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = minute_of_audio(&dir);
    let (s, f) = env.upload(&token, &wav, None).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["duration_s"].as_f64(), Some(60.0), "{f}");
    (user, token, f["id"].as_str().unwrap().to_string(), wav)
}

/// `POST /v1/jobs` transcribing `file` as `token`: status, body, the budget warning header.
async fn transcribe(env: &Env, token: &str, file: &str) -> (StatusCode, Value, Option<String>) {
    let res = env
        .http
        .post(format!("{}/v1/jobs", env.base))
        .bearer_auth(token)
        .json(&json!({"kind": "transcribe", "input": {"file_id": file}}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let warning = res
        .headers()
        .get("x-voxfleet-budget-warning")
        .map(|v| v.to_str().unwrap().to_string());
    (status, res.json().await.unwrap(), warning)
}

async fn budget(env: &Env, token: &str) -> Value {
    let (s, me) = env.call("GET", "/v1/me", Some(token), None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    me["transcription_budget"].clone()
}

async fn file_count(env: &Env) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM files")
        .fetch_one(&env.pg().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn submissions_reserve_minutes_warn_at_80_percent_and_stop_at_the_budget() {
    let env = Env::start().await;
    let (_, token, file, wav) = setup(&env).await;

    // Seven minutes: no warning; the eighth to the tenth carry it; the eleventh is refused.
    let mut jobs = Vec::new();
    for i in 1..=10 {
        let (s, j, warning) = transcribe(&env, &token, &file).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{j}");
        assert_eq!(warning.is_some(), i >= 8, "submission {i}: {warning:?}");
        jobs.push(j["id"].as_str().unwrap().to_string());
    }
    let b = budget(&env, &token).await;
    assert_eq!(
        (
            b["budget_minutes"].as_i64(),
            b["reserved_minutes"].as_f64(),
            b["used_minutes"].as_f64()
        ),
        (Some(10), Some(10.0), Some(0.0)),
        "{b}"
    );
    assert_eq!(b["warning"], true, "{b}");
    let (s, v, _) = transcribe(&env, &token, &file).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"),
        "{v}"
    );
    let (_, audit) = env
        .get("/v1/admin/audit?event=budget.transcription.block&outcome=failure")
        .await;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );

    // Every other way in is refused too, and leaves no file behind.
    let files = file_count(&env).await;
    let (s, v) = env.upload(&token, &wav, Some("transcribe")).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"),
        "{v}"
    );
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&wav).unwrap()).file_name("minute.wav"),
        )
        .text("model", "whisper-1");
    let (s, body) = env
        .post_form("/v1/audio/transcriptions", &token, form)
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(
        (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
        (Some("insufficient_quota"), Some("insufficient_quota")),
        "OpenAI's shape: {v}"
    );
    assert_eq!(
        file_count(&env).await,
        files,
        "refused uploads are not kept"
    );
    // Diarization is not transcription: it is not counted.
    let (s, j) = env
        .call(
            "POST",
            "/v1/jobs",
            Some(&token),
            Some(json!({"kind": "diarize", "input": {"file_id": file}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{j}");

    // A cancelled job gives its minute back; a finished one turns its reservation into usage.
    let (s, v) = env
        .call(
            "POST",
            &format!("/v1/jobs/{}/cancel", jobs[0]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let pg = env.pg().await;
    sqlx::query(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
            processing_seconds) SELECT id, owner, (input->>'file_id')::uuid, 'transcribe', \
            'tiny.en', 60, 1 FROM jobs WHERE id = $1::uuid",
    )
    .bind(&jobs[1])
    .execute(&pg)
    .await
    .unwrap();
    // The cancel reaches PostgreSQL with the control plane's persister (states older than
    // 5 s, every 2 s): the minute comes back within seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let b = loop {
        let b = budget(&env, &token).await;
        if b["reserved_minutes"].as_f64() == Some(8.0) || std::time::Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(
        (b["reserved_minutes"].as_f64(), b["used_minutes"].as_f64()),
        (Some(8.0), Some(1.0)),
        "{b}"
    );
    let (s, v, warning) = transcribe(&env, &token, &file).await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "the cancelled minute is free again: {v}"
    );
    assert!(warning.unwrap().contains("100%"));
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_parallel_submissions_with_room_for_ten_admit_exactly_ten() {
    let env = Env::start().await;
    let (_, token, file, _) = setup(&env).await;
    let calls = (0..50).map(|_| {
        let (env_http, base, token, file) = (
            env.http.clone(),
            env.base.clone(),
            token.clone(),
            file.clone(),
        );
        tokio::spawn(async move {
            env_http
                .post(format!("{base}/v1/jobs"))
                .bearer_auth(&token)
                .json(&json!({"kind": "transcribe", "input": {"file_id": file}}))
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    let statuses = futures::future::join_all(calls).await;
    let admitted = statuses
        .iter()
        .filter(|s| *s.as_ref().unwrap() == StatusCode::ACCEPTED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| *s.as_ref().unwrap() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((admitted, refused), (10, 40), "{statuses:?}");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'transcribe'")
        .fetch_one(&env.pg().await)
        .await
        .unwrap();
    assert_eq!(queued, 10, "no refused job was recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_month_rolls_over_in_the_configured_timezone() {
    let env = Env::start().await;
    let (user, token, file, _) = setup(&env).await;
    let now = Utc::now();
    let utc = BudgetSettings::default();
    let kiritimati = BudgetSettings {
        timezone: "Pacific/Kiritimati".into(),
        ..Default::default()
    };
    let (start_utc, start_k) = (utc.month_start(now), kiritimati.month_start(now));
    assert_ne!(start_utc, start_k);
    // A minute an hour after the earlier of the two month starts, before the later one: it
    // is this month's in one timezone and last month's in the other. And one from well before.
    let (earlier, later) = (start_utc.min(start_k), start_utc.max(start_k));
    let between: DateTime<Utc> = earlier + Duration::hours(1);
    assert!(between < later);
    let pg = env.pg().await;
    for at in [between, earlier - Duration::days(3)] {
        sqlx::query(
            "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
                processing_seconds, at) VALUES ($1, $2::uuid, $3::uuid, 'transcribe', 'tiny.en', \
                300, 1, $4)",
        )
        .bind(Uuid::new_v4())
        .bind(&user)
        .bind(&file)
        .bind(at)
        .execute(&pg)
        .await
        .unwrap();
    }
    let used_in = |b: &Value| b["used_minutes"].as_f64().unwrap();
    let b = budget(&env, &token).await;
    let utc_counts_it = start_utc == earlier;
    assert_eq!(
        used_in(&b),
        if utc_counts_it { 5.0 } else { 0.0 },
        "UTC: {b}"
    );

    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/budgets",
            Some(common::ADMIN),
            Some(json!({"timezone": "Pacific/Kiritimati"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let b = budget(&env, &token).await;
    assert_eq!(
        used_in(&b),
        if utc_counts_it { 0.0 } else { 5.0 },
        "Kiritimati: {b}"
    );
    assert_eq!(
        b["month_start"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(start_k)
    );
    let (_, listed) = env.get(&format!("/v1/users/{user}")).await;
    assert_eq!(
        listed["usage"]["minutes_this_month"].as_f64(),
        Some(used_in(&b)),
        "{listed}"
    );

    for bad in [
        json!({"timezone": "Mars/Olympus"}),
        json!({"warn_percent": 100}),
    ] {
        let (s, v) = env
            .call(
                "PUT",
                "/v1/settings/budgets",
                Some(common::ADMIN),
                Some(bad),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting"),
            "{v}"
        );
    }
    let (s, _) = env
        .call("PUT", "/v1/settings/budgets", Some(&token), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// The platform's LLM work for a user: reserve before a call, commit the real count or
/// release, or report after the fact; refused past the monthly token budget, even when
/// reservations arrive in parallel.
#[tokio::test(flavor = "multi_thread")]
async fn llm_token_budgets_reserve_commit_release_and_report() {
    let env = Env::start().await;
    let (s, u) = env
        .post(
            "/v1/users",
            json!({"email": "hal@example.org", "name": "Hal", "token_budget": 100000}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let hal = u["id"].as_str().unwrap().to_string();
    // The platform acts for Hal with a delegating token.
    let (_, p) = env
        .post("/v1/tokens", json!({"name": "platform", "role": "user"}))
        .await;
    let platform = p["token"].as_str().unwrap().to_string();
    let (s, _) = env
        .call(
            "PATCH",
            &format!("/v1/tokens/{}", p["id"].as_str().unwrap()),
            Some(common::ADMIN),
            Some(json!({"can_delegate": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (http, base, token, hal) = (
            env.http.clone(),
            env.base.clone(),
            platform.clone(),
            hal.clone(),
        );
        async move {
            let mut rb = http
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .bearer_auth(token)
                .header("x-voxfleet-user", hal);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let res = rb.send().await.unwrap();
            let status = res.status();
            let warned = res.headers().contains_key("x-voxfleet-budget-warning");
            (
                status,
                res.json::<Value>().await.unwrap_or(Value::Null),
                warned,
            )
        }
    };
    let reserve = |n: i64| {
        call(
            "POST",
            "/v1/me/llm/reservations".into(),
            Some(json!({"operation": "summary", "tokens": n})),
        )
    };

    let (s, a, warned) = reserve(60_000).await;
    assert_eq!((s, warned), (StatusCode::CREATED, false), "{a}");
    let (s, b, warned) = reserve(30_000).await;
    assert_eq!((s, warned), (StatusCode::CREATED, true), "90 %: {b}");
    let (s, v, _) = reserve(20_000).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"),
        "{v}"
    );

    let (s, v, _) = call(
        "POST",
        format!(
            "/v1/me/llm/reservations/{}/commit",
            a["id"].as_str().unwrap()
        ),
        Some(json!({"tokens": 50_000})),
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("committed")),
        "{v}"
    );
    let (s, v, _) = call(
        "DELETE",
        format!("/v1/me/llm/reservations/{}", b["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("released")),
        "{v}"
    );
    let (s, v, _) = call(
        "POST",
        format!(
            "/v1/me/llm/reservations/{}/commit",
            b["id"].as_str().unwrap()
        ),
        Some(json!({"tokens": 1})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "reservation_closed"),
        "{v}"
    );
    // A report after the fact always counts.
    let (s, v, warned) = call(
        "POST",
        "/v1/me/llm/usage".into(),
        Some(json!({"operation": "chat", "tokens": 40_000})),
    )
    .await;
    assert_eq!((s, warned), (StatusCode::CREATED, true), "{v}");
    let (_, me, _) = call("GET", "/v1/me".into(), None).await;
    assert_eq!(
        (
            me["token_budget"]["used"].as_i64(),
            me["token_budget"]["reserved"].as_i64()
        ),
        (Some(90_000), Some(0)),
        "{me}"
    );
    let (_, listed) = env.get(&format!("/v1/users/{hal}")).await;
    assert_eq!(listed["usage"]["llm_tokens_this_month"], 90_000, "{listed}");

    // 10,000 left: twenty parallel reservations of 1,000 admit exactly ten.
    let results = futures::future::join_all((0..20).map(|_| reserve(1_000))).await;
    let admitted = results
        .iter()
        .filter(|r| r.0 == StatusCode::CREATED)
        .count();
    let refused = results
        .iter()
        .filter(|r| r.0 == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((admitted, refused), (10, 10));

    // Bad input changes nothing; another user's reservation is not found.
    for body in [
        json!({"operation": "", "tokens": 5}),
        json!({"operation": "x", "tokens": -1}),
    ] {
        let (s, v, _) = call("POST", "/v1/me/llm/usage".into(), Some(body)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            "{v}"
        );
    }
    let (s, v) = env
        .call(
            "DELETE",
            &format!("/v1/me/llm/reservations/{}", a["id"].as_str().unwrap()),
            Some(common::ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// Issue 17, cost per connector: transcriptions reported from other connectors and LLM calls
/// are priced from the price table at the time they are written (an LLM reservation at the
/// time it is reserved), `self_hosted` costs 0, and the month's usage and cost show in
/// `/v1/me`, the admin user list and `/v1/stats` (by connector and by user, month by month).
#[tokio::test(flavor = "multi_thread")]
async fn usage_costs_follow_the_connector_and_the_price_when_written() {
    let env = Env::start().await;
    let close = |a: &Value, b: f64| (a.as_f64().unwrap_or(f64::NAN) - b).abs() < 1e-9;

    let (s, prices) = env.get("/v1/settings/prices").await;
    assert_eq!(s, StatusCode::OK, "{prices}");
    assert_eq!(
        prices["transcription_per_minute"],
        json!({"openai_transcribe": 0.006, "openai_transcribe_mini": 0.003,
               "openai_whisper": 0.006, "self_hosted": 0.0}),
        "the seed's prices"
    );
    let (s, u) = env
        .post(
            "/v1/users",
            json!({"email": "ivy@example.org", "name": "Ivy", "transcription_budget_minutes": 10}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let ivy = u["id"].as_str().unwrap().to_string();
    let (_, t) = env
        .post(&format!("/v1/users/{ivy}/tokens"), json!({"name": "ivy"}))
        .await;
    let token = t["token"].as_str().unwrap().to_string();
    let post = |path: &'static str, body: Value| {
        let token = token.clone();
        let env = &env;
        async move { env.call("POST", path, Some(&token), Some(body)).await }
    };

    // Two minutes through OpenAI's Whisper: $0.012, and they count against the budget.
    let (s, r) = post(
        "/v1/me/usage/transcriptions",
        json!({"connector": "openai_whisper", "model": "whisper-1", "audio_seconds": 120}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert!(
        close(&r["cost_usd"], 0.012) && close(&r["unit_price_usd"], 0.006),
        "{r}"
    );
    // Bad reports change nothing.
    let (_, other) = env
        .post(
            "/v1/users",
            json!({"email": "jon@example.org", "name": "Jon"}),
        )
        .await;
    let (_, jt) = env
        .post(
            &format!("/v1/users/{}/tokens", other["id"].as_str().unwrap()),
            json!({"name": "jon"}),
        )
        .await;
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let (s, jf) = env
        .upload(jt["token"].as_str().unwrap(), &minute_of_audio(&dir), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{jf}");
    for (body, status, want) in [
        (
            json!({"connector": "acme", "audio_seconds": 60}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_connector",
        ),
        (
            json!({"connector": "Open AI", "audio_seconds": 60}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"connector": "openai_whisper", "audio_seconds": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"connector": "openai_whisper", "audio_seconds": 60, "file_id": jf["id"]}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let (s, v) = post("/v1/me/usage/transcriptions", body.clone()).await;
        assert_eq!((s, code(&v)), (status, want), "{body}: {v}");
    }

    // Prices: admins only, validated, audited; self_hosted stays free.
    let table = json!({
        "transcription_per_minute": {"openai_whisper": 0.006, "acme": 0.01},
        "llm_per_million_tokens": {"openai_gpt": 2.0}
    });
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/prices",
            Some(&token),
            Some(table.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/prices",
            Some(common::ADMIN),
            Some(json!({"transcription_per_minute": {"self_hosted": 0.5}})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting"),
        "{v}"
    );
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/prices",
            Some(common::ADMIN),
            Some(table),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, r) = post(
        "/v1/me/usage/transcriptions",
        json!({"connector": "acme", "audio_seconds": 60}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert!(close(&r["cost_usd"], 0.01), "{r}");
    assert_eq!(r["model"], "acme", "the model defaults to the connector");
    // LLM: a report at $2 per million, and a reservation whose price is fixed when reserved.
    let (s, r) = post(
        "/v1/me/llm/usage",
        json!({"operation": "summary", "tokens": 500_000, "connector": "openai_gpt"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert!(close(&r["cost_usd"], 1.0), "{r}");
    let (s, res) = post(
        "/v1/me/llm/reservations",
        json!({"operation": "chat", "tokens": 100_000, "connector": "openai_gpt"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{res}");
    assert!(
        close(&res["cost_usd"], 0.0),
        "nothing spent while reserved: {res}"
    );
    let (s, v) = post(
        "/v1/me/llm/reservations",
        json!({"operation": "chat", "tokens": 1, "connector": "acme_llm"}),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_connector"),
        "{v}"
    );
    let (s, _) = env
        .call(
            "PUT",
            "/v1/settings/prices",
            Some(common::ADMIN),
            Some(json!({"llm_per_million_tokens": {"openai_gpt": 4.0}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, r) = env
        .call(
            "POST",
            &format!(
                "/v1/me/llm/reservations/{}/commit",
                res["id"].as_str().unwrap()
            ),
            Some(&token),
            Some(json!({"tokens": 200_000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(close(&r["cost_usd"], 0.4), "the reservation's $2: {r}");
    // acme left the table: it can no longer be reported, and its row keeps its cost.
    let (s, v) = post(
        "/v1/me/usage/transcriptions",
        json!({"connector": "acme", "audio_seconds": 60}),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_connector"),
        "{v}"
    );

    // voxfleet's own transcription, as the worker writes it (no connector named): free.
    let pg = env.pg().await;
    sqlx::query(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
         processing_seconds) VALUES ($1, $2, NULL, 'transcribe', 'tiny.en', 60, 3)",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::parse_str(&ivy).unwrap())
    .execute(&pg)
    .await
    .unwrap();
    // Last month's reported minute is in last month's figures only.
    let budgets = BudgetSettings::default();
    let (this_from, _) = budgets.month_around(Utc::now());
    let last_month = this_from - Duration::days(1);
    sqlx::query(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
         processing_seconds, connector, unit_price_usd, cost_usd, at) \
         VALUES ($1, $2, NULL, 'transcribe', 'whisper-1', 60, 0, 'openai_whisper', 0.006, 0.006, $3)",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::parse_str(&ivy).unwrap())
    .bind(last_month)
    .execute(&pg)
    .await
    .unwrap();

    // Ivy's month: 2 + 1 + 1 minutes, 700,000 tokens, $0.012 + $0.01 + $1.0 + $0.4.
    let want_cost = 0.012 + 0.01 + 1.0 + 0.4;
    let (s, me) = env.call("GET", "/v1/me", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert!(close(&me["costs"]["cost_usd"], want_cost), "{me}");
    assert!(close(&me["costs"]["minutes"], 4.0), "{me}");
    assert_eq!(me["costs"]["llm_tokens"], 700_000, "{me}");
    let by: Vec<(String, f64)> = me["costs"]["by_connector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["connector"].as_str().unwrap().to_string(),
                c["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = by.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["acme", "openai_gpt", "openai_whisper", "self_hosted"],
        "{me}"
    );
    assert!(by[3].1 == 0.0 && (by[1].1 - 1.4).abs() < 1e-9, "{me}");
    assert!(
        close(&me["usage"]["cost_usd_this_month"], want_cost),
        "{me}"
    );
    assert!(
        close(&me["transcription_budget"]["used_minutes"], 4.0),
        "reported minutes count against the budget: {me}"
    );

    let (s, list) = env.get("/v1/users?q=ivy").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(
        close(&list["users"][0]["usage"]["cost_usd_this_month"], want_cost),
        "{list}"
    );

    let (s, stats) = env.get("/v1/stats").await;
    assert_eq!(s, StatusCode::OK, "{stats}");
    let usage = &stats["usage"];
    let (y, m) = budgets.month_of(Utc::now());
    assert_eq!(usage["month"], format!("{y:04}-{m:02}"), "{usage}");
    assert!(close(&usage["cost_usd"], want_cost), "{usage}");
    assert_eq!(usage["by_user"].as_array().unwrap().len(), 1, "{usage}");
    assert_eq!(usage["by_user"][0]["user_id"], ivy.as_str(), "{usage}");
    assert_eq!(usage["by_user"][0]["name"], "Ivy", "{usage}");
    let last: DateTime<Utc> = last_month;
    let (s, stats) = env
        .get(&format!("/v1/stats?month={}", last.format("%Y-%m")))
        .await;
    assert_eq!(s, StatusCode::OK, "{stats}");
    assert!(close(&stats["usage"]["cost_usd"], 0.006), "{stats}");
    assert!(close(&stats["usage"]["minutes"], 1.0), "{stats}");
    for bad in ["2026-13", "last", "2026-1"] {
        let (s, v) = env.get(&format!("/v1/stats?month={bad}")).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{bad}: {v}"
        );
    }
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'settings.prices' AND outcome = 'success'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(audited, 2);
}
