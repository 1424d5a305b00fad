//! Issue 17, users and ownership, end to end with the real control plane and PostgreSQL:
//! the admin user API and its rules, each user's tokens, `/v1/me`, ownership by user (a
//! user's second token sees the first one's files, another user sees none), delegation with
//! `X-Voxfleet-User`, and bad input answered with a coded 4xx that changes nothing.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ADMIN, Env, run_tool};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// One second of a tone (nothing here is transcribed).
fn tone(dir: &Path) -> PathBuf {
    let out = dir.join("tone.wav");
    run_tool(
        Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(&out)
            .args(["synth", "1", "sine", "440"]),
    );
    out
}

/// A request as `token`, acting for `act_as` when given.
async fn call_as(
    env: &Env,
    method: &str,
    path: &str,
    token: &str,
    act_as: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    env.call_for(method, path, Some(token), act_as, body).await
}

async fn create_user(env: &Env, token: &str, body: Value) -> (StatusCode, Value) {
    call_as(env, "POST", "/v1/users", token, None, Some(body)).await
}

/// A new token of user `id`, minted by `by`: the secret.
async fn token_for(env: &Env, by: &str, id: &str, name: &str) -> String {
    let (s, v) = call_as(
        env,
        "POST",
        &format!("/v1/users/{id}/tokens"),
        by,
        None,
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["user_id"], id);
    v["token"].as_str().unwrap().to_string()
}

async fn user_count(env: &Env) -> usize {
    let (s, v) = env.get("/v1/users?limit=500").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["users"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_manage_users_under_the_account_rules() {
    let env = Env::start().await;
    let (s, boot) = env.get("/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{boot}");
    assert_eq!(
        (boot["role"].as_str(), boot["name"].as_str()),
        (Some("super_admin"), Some("bootstrap"))
    );
    let boot_id = boot["id"].as_str().unwrap().to_string();

    let (s, ann) = create_user(
        &env,
        ADMIN,
        json!({"email": "Ann@Example.org", "name": "Ann Admin", "role": "admin",
               "password": "ann's password", "transcription_budget_minutes": 600,
               "token_budget": 200000}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{ann}");
    assert_eq!(ann["has_password"], true);
    assert!(ann.get("password_hash").is_none() && !ann.to_string().contains("argon2"));
    let ann_id = ann["id"].as_str().unwrap().to_string();
    let ann_token = token_for(&env, ADMIN, &ann_id, "ann's laptop").await;

    // Bad input: a coded 4xx, and no account made.
    let before = user_count(&env).await;
    for (body, status, want) in [
        (
            json!({"email": "ann@example.ORG", "name": "Twin"}),
            StatusCode::CONFLICT,
            "email_taken",
        ),
        (
            json!({"email": "nope", "name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"email": "x@y.org", "name": "X", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({"email": "x@y.org", "name": "X", "transcription_budget_minutes": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"email": "x@y.org", "name": "X", "token_budget": 105000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"email": "x@y.org", "name": "X", "role": "owner"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"email": "x@y.org", "name": "X", "default_language": "English"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            json!({"email": "x@y.org", "name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
    ] {
        let (s, v) = create_user(&env, &ann_token, body.clone()).await;
        assert_eq!((s, code(&v)), (status, want), "{body}: {v}");
    }
    assert_eq!(user_count(&env).await, before, "nothing made");

    // An admin makes users and admins, not super_admins, and cannot touch one.
    let (s, v) = create_user(
        &env,
        &ann_token,
        json!({"email": "root2@example.org", "name": "R", "role": "super_admin"}),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (s, v) = call_as(
        &env,
        "PATCH",
        &format!("/v1/users/{boot_id}"),
        &ann_token,
        None,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");

    // Nobody changes their own role or disables themselves.
    for body in [json!({"role": "user"}), json!({"disabled": true})] {
        let (s, v) = call_as(
            &env,
            "PATCH",
            &format!("/v1/users/{ann_id}"),
            &ann_token,
            None,
            Some(body),
        )
        .await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "self_change"), "{v}");
    }
    // Nor delete themselves.
    let (s, v) = call_as(
        &env,
        "DELETE",
        &format!("/v1/users/{ann_id}"),
        &ann_token,
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "self_change"), "{v}");
    let (s, v) = call_as(
        &env,
        "DELETE",
        &format!("/v1/users/{boot_id}"),
        ADMIN,
        None,
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "self_change"), "{v}");
    // The last super_admin is the bootstrap account: it cannot demote itself either.
    let (s, v) = call_as(
        &env,
        "PATCH",
        &format!("/v1/users/{boot_id}"),
        ADMIN,
        None,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "self_change"), "{v}");

    // A user: made by the admin, with defaults; the user role reaches no admin route.
    let (s, alice) = create_user(
        &env,
        &ann_token,
        json!({"email": "alice@example.org", "name": "Alice", "external_id": "speakr-17",
               "default_language": "de", "public_sharing": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{alice}");
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let alice_token = token_for(&env, &ann_token, &alice_id, "alice's phone").await;
    for (m, p) in [
        ("GET", "/v1/users".to_string()),
        ("GET", format!("/v1/users/{ann_id}")),
        ("GET", format!("/v1/users/{alice_id}/tokens")),
        ("GET", "/v1/tokens".to_string()),
    ] {
        let (s, v) = call_as(&env, m, &p, &alice_token, None, None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{p}: {v}"
        );
    }
    let (s, v) = call_as(
        &env,
        "PATCH",
        &format!("/v1/users/{alice_id}"),
        &alice_token,
        None,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (s, me) = call_as(&env, "GET", "/v1/me", &alice_token, None, None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(
        (
            me["id"].as_str(),
            me["default_language"].as_str(),
            me["delegated"].as_bool()
        ),
        (Some(alice_id.as_str()), Some("de"), Some(false))
    );

    // Her transcriptions that name no language take her default; one that names it keeps it.
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = tone(&dir);
    let (s, f) = env.upload(&alice_token, &wav, Some("transcribe")).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let job = f["jobs"][0].as_str().unwrap().to_string();
    let (_, j) = call_as(
        &env,
        "GET",
        &format!("/v1/jobs/{job}"),
        &alice_token,
        None,
        None,
    )
    .await;
    assert_eq!(j["input"]["language"], "de", "{j}");
    let (s, j) = call_as(
        &env,
        "POST",
        "/v1/jobs",
        &alice_token,
        None,
        Some(json!({"kind": "transcribe", "input": {"file_id": f["id"], "language": "fr"}})),
    )
    .await;
    assert_eq!(
        (s, j["input"]["language"].as_str()),
        (StatusCode::ACCEPTED, Some("fr")),
        "{j}"
    );

    // Search by name or email, any case.
    let (_, v) = env.get("/v1/users?q=EXAMPLE.org").await;
    let mut names: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Alice", "Ann Admin"]);

    // Disabled: the user's tokens stop at once; enabled again, they work.
    let (s, v) = call_as(
        &env,
        "PATCH",
        &format!("/v1/users/{alice_id}"),
        &ann_token,
        None,
        Some(json!({"disabled": true, "token_budget": null, "name": "Alice A."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["disabled"].as_bool(), v["name"].as_str()),
        (Some(true), Some("Alice A."))
    );
    let (s, v) = call_as(&env, "GET", "/v1/me", &alice_token, None, None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "user_disabled"),
        "{v}"
    );
    let (s, _) = call_as(
        &env,
        "PATCH",
        &format!("/v1/users/{alice_id}"),
        &ann_token,
        None,
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call_as(&env, "GET", "/v1/me", &alice_token, None, None).await;
    assert_eq!(s, StatusCode::OK);

    // Password reset: the confirmation must match and the policy holds.
    let path = format!("/v1/users/{alice_id}/password");
    for (body, want) in [
        (
            json!({"password": "a long password", "confirm": "a long passw0rd"}),
            "password_mismatch",
        ),
        (
            json!({"password": "short", "confirm": "short"}),
            "weak_password",
        ),
    ] {
        let (s, v) = call_as(&env, "POST", &path, &ann_token, None, Some(body)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, want),
            "{v}"
        );
    }
    let (s, v) = call_as(
        &env,
        "POST",
        &path,
        &ann_token,
        None,
        Some(json!({"password": "a long password", "confirm": "a long password"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // Every change is in the audit log with the acting token and user.
    let pg = env.pg().await;
    let rows: Vec<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT action, user_id FROM audit_log WHERE target = $1 ORDER BY id")
            .bind(&alice_id)
            .fetch_all(&pg)
            .await
            .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.user.create",
            "admin.user.update",
            "admin.user.update",
            "admin.user.password_reset"
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.1.map(|u| u.to_string()) == Some(ann_id.clone()))
    );

    // The audit API: super_admin only, filtered by event prefix and user, paged, exported.
    let (s, v) = call_as(&env, "GET", "/v1/admin/audit", &ann_token, None, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let q = format!("/v1/admin/audit?event=admin.user.&user={ann_id}&limit=2");
    let (s, page) = env.get(&q).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{page}");
    assert!(
        entries
            .iter()
            .all(|e| e["event"].as_str().unwrap().starts_with("admin.user."))
    );
    assert_eq!(entries[0]["event"], "admin.user.password_reset");
    assert_eq!(entries[0]["source_ip"], "127.0.0.1");
    assert_eq!(entries[0]["outcome"], "success");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = env.get(&format!("{q}&cursor={cursor}")).await;
    assert!(
        rest["entries"][0]["id"].as_i64() < entries[1]["id"].as_i64(),
        "{rest}"
    );
    let res = env
        .http
        .get(format!(
            "{}/v1/admin/audit/export?event=admin.user.role_change",
            env.base
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"audit-logs-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let csv = res.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,at,event,outcome,user_id,token_id,target,source_ip,detail")
    );
    assert_eq!(lines.count(), 0, "no role changed here: {csv}");
    let (s, v) = env.get("/v1/admin/audit/export?format=xml").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_query"),
        "{v}"
    );
    let (s, v) = env.get("/v1/admin/audit?outcome=maybe").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_query"),
        "{v}"
    );
}

/// The audit log's event codes: listed for a super_admin (the dashboard's event filter
/// offers them), refused like every audit route to anyone else, and each one filters the log.
#[tokio::test(flavor = "multi_thread")]
async fn audit_event_codes_are_listed_and_filter_the_log() {
    let env = Env::start().await;
    let (s, v) = env.get("/v1/admin/audit/events").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let events = v["events"].as_array().expect("a list of events");
    let codes: Vec<&str> = events
        .iter()
        .map(|e| e["code"].as_str().expect("a code"))
        .collect();
    let described = |e: &Value| e["description"].as_str().is_some_and(|d| !d.is_empty());
    assert!(events.iter().all(described), "{v}");
    let mut unique = codes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "{v}");

    for role in ["user", "admin"] {
        let token = env.mint_token(role);
        let (s, v) = call_as(&env, "GET", "/v1/admin/audit/events", &token, None, None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{role}: {v}"
        );
    }

    // Two listed events happen; filtering by each code finds its rows and only those.
    let (s, eve) = create_user(
        &env,
        ADMIN,
        json!({"email": "eve@example.org", "name": "Eve"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{eve}");
    env.set_retry(true, 4).await;
    for event in ["admin.user.create", "settings.retry"] {
        assert!(codes.contains(&event), "{event} is not listed: {codes:?}");
        let path = format!("/v1/admin/audit?event={event}");
        let (s, page) = env.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let entries = page["entries"].as_array().unwrap();
        let only_it = entries.iter().all(|e| e["event"] == event);
        assert!(!entries.is_empty() && only_it, "{event}: {page}");
    }
    // Every listed code is a filter the log takes.
    for event in &codes {
        let path = format!("/v1/admin/audit?event={event}&limit=1");
        let (s, page) = env.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{event}: {page}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_belong_to_users_and_delegation_acts_for_them() {
    let env = Env::start().await;
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = tone(&dir);
    let mk = |email: &str, ext: &str| json!({"email": email, "name": email.split('@').next().unwrap(), "external_id": ext});
    let (_, alice) = create_user(&env, ADMIN, mk("alice@example.org", "ext-alice")).await;
    let (_, bob) = create_user(&env, ADMIN, mk("bob@example.org", "ext-bob")).await;
    let (alice_id, bob_id) = (
        alice["id"].as_str().unwrap().to_string(),
        bob["id"].as_str().unwrap().to_string(),
    );
    let alice_phone = token_for(&env, ADMIN, &alice_id, "phone").await;
    let alice_laptop = token_for(&env, ADMIN, &alice_id, "laptop").await;
    let bob_token = token_for(&env, ADMIN, &bob_id, "bob").await;

    // A file uploaded with one of alice's tokens is alice's: her other token sees it, bob not.
    let (s, f) = env.upload(&alice_phone, &wav, None).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["owner"], alice_id.as_str());
    let file = f["id"].as_str().unwrap().to_string();
    let (s, _) = call_as(
        &env,
        "GET",
        &format!("/v1/files/{file}"),
        &alice_laptop,
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call_as(
        &env,
        "GET",
        &format!("/v1/files/{file}"),
        &bob_token,
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = call_as(&env, "GET", "/v1/files", &bob_token, None, None).await;
    assert_eq!(v["files"].as_array().map(Vec::len), Some(0), "{v}");

    // The admin list counts her recording and its bytes.
    let (_, v) = env.get(&format!("/v1/users/{alice_id}")).await;
    assert_eq!(v["usage"]["recordings"], 1, "{v}");
    assert_eq!(v["usage"]["storage_bytes"], f["size_bytes"], "{v}");

    // Her own tokens: listed, made and revoked by her; bob cannot revoke hers.
    let (_, v) = call_as(&env, "GET", "/v1/me/tokens", &alice_phone, None, None).await;
    assert_eq!(v["tokens"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(!v.to_string().contains(&alice_laptop));
    let (s, t) = call_as(
        &env,
        "POST",
        "/v1/me/tokens",
        &alice_phone,
        None,
        Some(json!({"name": "cli", "expires_at": "2099-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, v) = call_as(
        &env,
        "POST",
        "/v1/me/tokens",
        &alice_phone,
        None,
        Some(json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{v}"
    );
    let tid = t["id"].as_str().unwrap();
    let (s, _) = call_as(
        &env,
        "DELETE",
        &format!("/v1/me/tokens/{tid}"),
        &bob_token,
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call_as(
        &env,
        "DELETE",
        &format!("/v1/me/tokens/{tid}"),
        &alice_phone,
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call_as(
        &env,
        "GET",
        "/v1/me",
        t["token"].as_str().unwrap(),
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A platform's token (a service account) may not act for users until an admin allows it.
    let (s, p) = env
        .post("/v1/tokens", json!({"name": "speakr", "role": "user"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (platform, platform_id) = (
        p["token"].as_str().unwrap().to_string(),
        p["id"].as_str().unwrap().to_string(),
    );
    let (s, v) = call_as(&env, "GET", "/v1/me", &platform, Some(&alice_id), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "delegation_not_allowed"),
        "{v}"
    );
    let (s, v) = call_as(&env, "GET", "/v1/me", &bob_token, Some(&alice_id), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "delegation_not_allowed"),
        "{v}"
    );
    let (s, v) = call_as(
        &env,
        "PATCH",
        &format!("/v1/tokens/{platform_id}"),
        &bob_token,
        None,
        Some(json!({"can_delegate": true})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a user cannot grant it: {v}");
    let (s, v) = call_as(
        &env,
        "PATCH",
        &format!("/v1/tokens/{platform_id}"),
        ADMIN,
        None,
        Some(json!({"can_delegate": true})),
    )
    .await;
    assert_eq!(
        (s, v["can_delegate"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );

    // Allowed: by id or by the platform's own id; what it makes is the user's.
    let (s, me) = call_as(&env, "GET", "/v1/me", &platform, Some(&alice_id), None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(
        (me["id"].as_str(), me["delegated"].as_bool()),
        (Some(alice_id.as_str()), Some(true))
    );
    let (s, me) = call_as(&env, "GET", "/v1/me", &platform, Some("ext:ext-bob"), None).await;
    assert_eq!(
        (s, me["id"].as_str()),
        (StatusCode::OK, Some(bob_id.as_str())),
        "{me}"
    );
    let (s, v) = call_as(
        &env,
        "GET",
        &format!("/v1/files/{file}"),
        &platform,
        Some("ext:ext-bob"),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "as bob, alice's file is not there: {v}"
    );
    let (s, v) = call_as(
        &env,
        "GET",
        &format!("/v1/files/{file}"),
        &platform,
        Some("ext:ext-alice"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, t) = call_as(
        &env,
        "POST",
        "/v1/me/tokens",
        &platform,
        Some(&bob_id),
        Some(json!({"name": "made for bob"})),
    )
    .await;
    assert_eq!(
        (s, t["user_id"].as_str()),
        (StatusCode::CREATED, Some(bob_id.as_str())),
        "{t}"
    );
    let pg = env.pg().await;
    let (actor, user): (Option<Uuid>, Option<Uuid>) = sqlx::query_as(
        "SELECT actor, user_id FROM audit_log WHERE action = 'token.create' AND target = $1",
    )
    .bind(t["id"].as_str().unwrap())
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(
        (actor.map(|u| u.to_string()), user.map(|u| u.to_string())),
        (Some(platform_id.clone()), Some(bob_id.clone())),
        "the audit row names the token and the user"
    );

    // Unknown users, malformed values and users above the token's role are refused.
    for (who, status, want) in [
        (
            Uuid::new_v4().to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_user",
        ),
        (
            "ext:nobody".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_user",
        ),
        (
            "alice".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_user",
        ),
    ] {
        let (s, v) = call_as(&env, "GET", "/v1/me", &platform, Some(&who), None).await;
        assert_eq!((s, code(&v)), (status, want), "{who}: {v}");
    }
    let (_, boot) = env.get("/v1/me").await;
    let (s, v) = call_as(
        &env,
        "GET",
        "/v1/me",
        &platform,
        Some(boot["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "a user's token acting as a super_admin: {v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn recovering_files_requeues_a_users_failed_and_stuck_work() {
    let env = Env::start().await;
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = tone(&dir);
    let (_, u) = create_user(
        &env,
        ADMIN,
        json!({"email": "fay@example.org", "name": "Fay"}),
    )
    .await;
    let fay = u["id"].as_str().unwrap().to_string();
    let token = token_for(&env, ADMIN, &fay, "fay").await;

    // A cancelled transcription (no worker runs here: it stays queued until cancelled) ...
    let (s, f1) = env.upload(&token, &wav, Some("transcribe")).await;
    assert_eq!(s, StatusCode::CREATED, "{f1}");
    let cancelled = f1["jobs"][0].as_str().unwrap().to_string();
    let (s, v) = call_as(
        &env,
        "POST",
        &format!("/v1/jobs/{cancelled}/cancel"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // ... and one PostgreSQL records as running that no worker holds (lost: stuck).
    let (s, f2) = env.upload(&token, &wav, None).await;
    assert_eq!(s, StatusCode::CREATED, "{f2}");
    let pg = env.pg().await;
    let stuck = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, kind, queue, status, input, owner, attempts, created_at, \
                           started_at) \
         VALUES ($1, 'transcribe', 'gpu', 'running', jsonb_build_object('file_id', $2::text), \
                 $3, 1, now() - interval '1 hour', now() - interval '1 hour')",
    )
    .bind(stuck)
    .bind(f2["id"].as_str().unwrap())
    .bind(fay.parse::<Uuid>().unwrap())
    .execute(&pg)
    .await
    .unwrap();
    sqlx::query("UPDATE files SET transcription_job = $1 WHERE id = $2::uuid")
        .bind(stuck)
        .bind(f2["id"].as_str().unwrap())
        .execute(&pg)
        .await
        .unwrap();

    let path = format!("/v1/users/{fay}/recover");
    let (s, v) = call_as(&env, "POST", &path, &token, None, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (s, r) = env.post(&path, json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["failed_requeued"].as_u64(), r["stuck_requeued"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let (_, j) = env.get(&format!("/v1/jobs/{cancelled}")).await;
    assert_eq!(j["status"], "queued", "re-run: {j}");
    let (_, j) = env.get(&format!("/v1/jobs/{stuck}")).await;
    assert_eq!(
        (j["status"].as_str(), j["error"]["code"].as_str()),
        (Some("cancelled"), Some("abandoned")),
        "{j}"
    );
    let (_, f) = env
        .get(&format!("/v1/files/{}", f2["id"].as_str().unwrap()))
        .await;
    let fresh = f["transcription_job_id"].as_str().unwrap().to_string();
    assert_ne!(fresh, stuck.to_string());
    assert!(
        r["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j == fresh.as_str()),
        "{r}"
    );
    let (_, j) = env.get(&format!("/v1/jobs/{fresh}")).await;
    assert_eq!(
        (j["status"].as_str(), j["input"]["file_id"].as_str()),
        (Some("queued"), f2["id"].as_str()),
        "{j}"
    );

    // Nothing left to recover: a second call re-queues nothing.
    let (_, r) = env.post(&path, json!(null)).await;
    assert_eq!(
        (r["failed_requeued"].as_u64(), r["stuck_requeued"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
}
