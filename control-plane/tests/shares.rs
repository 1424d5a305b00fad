//! Issue 17, public share links, end to end with the real control plane and PostgreSQL: only a
//! file's owner with `public_sharing`, and only while the instance allows it, makes a link;
//! anyone with the link reads the transcript without a token until the link expires, is
//! revoked, or sharing is withdrawn.
mod common;

use std::process::Command;

use common::{ADMIN, Env, run_tool};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_transcript_opens_for_anyone_until_it_expires_or_is_revoked() {
    let env = Env::start().await;
    let mut people = Vec::new();
    for (email, sharing) in [("mia@example.org", true), ("ned@example.org", false)] {
        let (s, u) = env
            .post(
                "/v1/users",
                json!({"email": email, "name": email, "public_sharing": sharing}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        let id = u["id"].as_str().unwrap().to_string();
        let (_, t) = env
            .post(&format!("/v1/users/{id}/tokens"), json!({"name": "t"}))
            .await;
        people.push((id, t["token"].as_str().unwrap().to_string()));
    }
    let ((mia_id, mia), (_, ned)) = (&people[0], &people[1]);

    // Mia's file with a transcript, written as a worker would have.
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("t.wav");
    run_tool(
        Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "1", "sine", "440"]),
    );
    let (_, f) = env.upload(mia, &wav, None).await;
    let file = f["id"].as_str().unwrap().to_string();
    let pg = env.pg().await;
    sqlx::query(
        "INSERT INTO transcript_segments (file_id, idx, start_s, end_s, text, avg_logprob, \
         no_speech_prob, language) VALUES ($1::uuid, 0, 0, 1, 'shared words', -0.1, 0.0, 'en')",
    )
    .bind(&file)
    .execute(&pg)
    .await
    .unwrap();
    sqlx::query("UPDATE files SET transcribed_at = now(), language = 'en' WHERE id = $1::uuid")
        .bind(&file)
        .execute(&pg)
        .await
        .unwrap();
    let env = &env;
    let share = |token: &str, body: Value| {
        let path = format!("/v1/files/{file}/shares");
        let token = token.to_string();
        async move { env.call("POST", &path, Some(&token), Some(body)).await }
    };

    // Off on the instance: nobody shares.
    let (s, v) = share(mia, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/auth",
            Some(ADMIN),
            Some(json!({"public_sharing_allowed": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // On: Mia shares her file; Ned (no permission, not his file) cannot.
    let (s, v) = share(ned, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not his file: {v}");
    let (s, v) = share(mia, json!({"expires_in_days": 0})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{v}"
    );
    let (s, link) = share(mia, json!({"expires_in_days": 3})).await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let path = link["path"].as_str().unwrap().to_string();

    // Anyone with the link reads it, without a token, in any format.
    let (s, t) = env.call("GET", &path, None, None).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["text"], "shared words");
    let txt = env.text(&format!("{path}?format=txt")).await;
    assert_eq!(txt.trim(), "shared words");
    let (s, _) = env
        .call("GET", "/v1/shared/vf_not-a-link", None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Withdrawn permission closes it; given back, it opens again.
    let patch = |sharing: bool| {
        let path = format!("/v1/users/{mia_id}");
        async move {
            env.call(
                "PATCH",
                &path,
                Some(ADMIN),
                Some(json!({"public_sharing": sharing})),
            )
            .await
        }
    };
    patch(false).await;
    assert_eq!(
        env.call("GET", &path, None, None).await.0,
        StatusCode::NOT_FOUND
    );
    patch(true).await;
    assert_eq!(env.call("GET", &path, None, None).await.0, StatusCode::OK);

    // Expired: closed.
    sqlx::query(
        "UPDATE share_links SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(link["id"].as_str().unwrap())
    .execute(&pg)
    .await
    .unwrap();
    assert_eq!(
        env.call("GET", &path, None, None).await.0,
        StatusCode::NOT_FOUND
    );

    // Revoked: closed for good; Ned cannot revoke (or see) Mia's links.
    let (s, second) = share(mia, json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    let second_path = second["path"].as_str().unwrap().to_string();
    let revoke = format!("/v1/shares/{}", second["id"].as_str().unwrap());
    assert_eq!(
        env.call("DELETE", &revoke, Some(ned), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.call("GET", &second_path, None, None).await.0,
        StatusCode::OK
    );
    let (s, v) = env.call("DELETE", &revoke, Some(mia), None).await;
    assert_eq!(
        (s, v["revoked_at"].is_string()),
        (StatusCode::OK, true),
        "{v}"
    );
    assert_eq!(
        env.call("GET", &second_path, None, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = env
        .call("GET", &format!("/v1/files/{file}/shares"), Some(mia), None)
        .await;
    assert_eq!(list["shares"].as_array().map(Vec::len), Some(2), "{list}");
    assert!(
        !list.to_string().contains(second["token"].as_str().unwrap()),
        "no secrets listed"
    );

    // Sharing off on the instance closes every link.
    let (s, third) = share(mia, json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    env.call(
        "PUT",
        "/v1/settings/auth",
        Some(ADMIN),
        Some(json!({"public_sharing_allowed": false})),
    )
    .await;
    let third_path = third["path"].as_str().unwrap();
    assert_eq!(
        env.call("GET", third_path, None, None).await.0,
        StatusCode::NOT_FOUND
    );
}
