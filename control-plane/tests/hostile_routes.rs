//! Cross-user access on every route, generated from the OpenAPI document the server itself
//! publishes: a new route is covered the day it is added (and a route with a path parameter
//! this suite cannot fill fails it until a fixture is added below).
//!
//! u1 owns a file (with a queued transcription, a transcript and a named speaker); u2, another
//! `user` token, calls every route, substituting u1's ids. Nothing u2 gets back may name any
//! of u1's things, no route may answer 5xx, a route aimed at u1's resource must refuse, and
//! afterwards u1's things are as they were.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Env, run_tool};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

struct Fixture {
    file: String,
    job: String,
    second_job: String,
    speaker: String,
    owner: String,
    /// u1's token's id.
    token: String,
    /// u1's open LLM token reservation.
    reservation: String,
}

impl Fixture {
    /// Strings that must never reach u2.
    fn secrets(&self) -> Vec<&str> {
        vec![
            &self.file,
            &self.job,
            &self.second_job,
            &self.speaker,
            &self.owner,
            &self.token,
            &self.reservation,
            "u1-secret-name",
            "u1-secret-file",
            "u1secretword",
        ]
    }

    /// The value of a path parameter, by the resource the path names.
    fn fill(&self, path: &str) -> String {
        let mut out = String::new();
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').unwrap() + open;
            let param = &rest[open + 1..close];
            let before = &out;
            let value = match param {
                "id" if before.ends_with("/v1/files/") => self.file.clone(),
                "id" if before.ends_with("/v1/jobs/") => self.job.clone(),
                "id" if before.ends_with("/v1/speakers/") => self.speaker.clone(),
                "id" if before.ends_with("/v1/tokens/") || before.ends_with("/v1/me/tokens/") => {
                    self.token.clone()
                }
                "id" if before.ends_with("/v1/users/") => self.owner.clone(),
                "id" if before.ends_with("/v1/me/llm/reservations/") => self.reservation.clone(),
                // u1 makes no share link here (sharing is off by default): any id is 404.
                "id" if before.ends_with("/v1/shares/") => uuid::Uuid::now_v7().to_string(),
                "token" if before.ends_with("/v1/shared/") => "vf_not-a-share-link".into(),
                // Model names are public.
                "id" if before.ends_with("/v1/models/") => "whisper-1".into(),
                "action" => "start".into(),
                _ => panic!(
                    "no fixture for `{{{param}}}` in {path}: add one to hostile_routes.rs so the route is covered"
                ),
            };
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

async fn fixture(env: &Env, u1: &str) -> Fixture {
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("u1-secret-file.wav");
    run_tool(
        Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "1", "sine", "440"]),
    );
    let (s, me) = env.call("GET", "/v1/me", Some(u1), None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    let token = me["token_id"].as_str().unwrap().to_string();
    let (s, r) = env
        .call(
            "POST",
            "/v1/me/llm/reservations",
            Some(u1),
            Some(json!({"operation": "summary", "tokens": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let reservation = r["id"].as_str().unwrap().to_string();
    let (s, v) = env.upload(u1, &wav, Some("transcribe")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["owner"], me["id"], "{v}");
    let file = v["id"].as_str().unwrap().to_string();
    let owner = v["owner"].as_str().unwrap().to_string();
    let job = v["jobs"][0].as_str().unwrap().to_string();
    let (s, v) = env
        .call(
            "POST",
            "/v1/jobs",
            Some(u1),
            Some(json!({"kind": "transcribe", "input": {"file_id": file}, "priority": "low"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let second_job = v["id"].as_str().unwrap().to_string();
    // A transcript and a named speaker, written as a worker would have.
    let pg = env.pg().await;
    let speaker = uuid::Uuid::now_v7();
    let file_id: uuid::Uuid = file.parse().unwrap();
    let owner_id: uuid::Uuid = owner.parse().unwrap();
    sqlx::query(
        "INSERT INTO transcript_segments (file_id, idx, start_s, end_s, text, avg_logprob, \
         no_speech_prob, language) VALUES ($1, 0, 0, 1, 'u1secretword', -0.1, 0.0, 'en')",
    )
    .bind(file_id)
    .execute(&pg)
    .await
    .unwrap();
    sqlx::query("UPDATE files SET transcribed_at = now() WHERE id = $1")
        .bind(file_id)
        .execute(&pg)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO speakers (id, file_id, owner, label, name, speech_s) \
         VALUES ($1, $2, $3, 'SPEAKER_00', 'u1-secret-name', 1.0)",
    )
    .bind(speaker)
    .bind(file_id)
    .bind(owner_id)
    .execute(&pg)
    .await
    .unwrap();
    Fixture {
        file,
        job,
        second_job,
        speaker: speaker.to_string(),
        owner,
        token,
        reservation,
    }
}

/// Calls `method path` as `token`; reads at most 1 MiB or 2 s of the body (event streams
/// never end by themselves).
async fn call_raw(env: &Env, method: &str, path: &str, token: &str) -> (StatusCode, String) {
    let mut rb = env
        .http
        .request(method.parse().unwrap(), format!("{}{}", env.base, path))
        .bearer_auth(token);
    if matches!(method, "POST" | "PUT" | "PATCH") {
        rb = rb.json(&json!({}));
    }
    let res = rb.send().await.unwrap();
    let status = res.status();
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while body.len() < (1 << 20) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_route_gives_one_user_anything_of_anothers() {
    let env = Env::start().await;
    let (u1, u2) = (env.mint_token("user"), env.mint_token("user"));
    let fx = fixture(&env, &u1).await;

    let (s, doc) = env.call("GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("the document lists paths");
    assert!(
        paths.len() >= 40,
        "only {} paths in the document",
        paths.len()
    );

    let mut checked = 0;
    let mut failures = Vec::new();
    for (template, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let m = method.to_ascii_uppercase();
            let path = fx.fill(template);
            // Model names are nobody's: a filled one is not aimed at u1.
            let targets_u1 = path != *template && !template.starts_with("/v1/models/");
            let (status, body) = call_raw(&env, &m, &path, &u2).await;
            checked += 1;
            if status.is_server_error() {
                failures.push(format!("{m} {template}: {status} {body}"));
            }
            if targets_u1 && status.is_success() {
                failures.push(format!(
                    "{m} {template}: u2 reached u1's resource: {status} {body}"
                ));
            }
            for secret in fx.secrets() {
                if body.contains(secret) {
                    failures.push(format!("{m} {template}: u2 saw `{secret}`: {body}"));
                }
            }
        }
    }
    assert!(checked >= 45, "only {checked} routes were called");
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The event stream while one of u1's jobs changes: u1 sees the event, u2 does not.
    let open = |token: String| {
        let (http, base) = (env.http.clone(), env.base.clone());
        tokio::spawn(async move {
            let res = http
                .get(format!("{base}/v1/events"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let mut stream = res.bytes_stream();
            let mut body = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while let Ok(Some(Ok(c))) = tokio::time::timeout_at(deadline, stream.next()).await {
                body.extend_from_slice(&c);
            }
            String::from_utf8_lossy(&body).into_owned()
        })
    };
    let (seen_by_u1, seen_by_u2) = (open(u1.clone()), open(u2.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (s, v) = env
        .call(
            "POST",
            &format!("/v1/jobs/{}/cancel", fx.second_job),
            Some(&u1),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (seen_by_u1, seen_by_u2) = (seen_by_u1.await.unwrap(), seen_by_u2.await.unwrap());
    assert!(
        seen_by_u1.contains(&fx.second_job),
        "u1's own event: {seen_by_u1}"
    );
    for secret in fx.secrets() {
        assert!(
            !seen_by_u2.contains(secret),
            "u2 saw `{secret}`: {seen_by_u2}"
        );
    }

    // u1's things are as they were.
    let (s, f) = env
        .call("GET", &format!("/v1/files/{}", fx.file), Some(&u1), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert!(env.media_dir().join("files").join(&fx.file).exists());
    let (_, j) = env
        .call("GET", &format!("/v1/jobs/{}", fx.job), Some(&u1), None)
        .await;
    assert_eq!(j["status"], "queued", "{j}");
    let (_, sp) = env
        .call(
            "GET",
            &format!("/v1/speakers/{}", fx.speaker),
            Some(&u1),
            None,
        )
        .await;
    assert_eq!(sp["name"], "u1-secret-name", "{sp}");
    let t = env
        .call(
            "GET",
            &format!("/v1/files/{}/transcript?format=txt", fx.file),
            Some(&u1),
            None,
        )
        .await;
    assert_eq!(t.0, StatusCode::OK);
}
