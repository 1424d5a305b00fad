//! Authentication holes from issue 13, end to end with the real binaries: the bootstrap
//! admin token rotates on start and a revoked one never comes back (item 5), tokens are
//! listed and revoked by CLI and API with an audit trail (item 5), `/metrics` needs a token
//! (item 12), and the `Bearer` scheme is case-insensitive (item 13).
mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, Env, control_plane_bin, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use voxfleet_store::tokens::hash_token;

const T: Duration = Duration::from_secs(30);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A GET with a raw `Authorization` header (or none): status and body text.
async fn get_raw(env: &Env, base: &str, path: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut rb = env.http.get(format!("{base}{path}"));
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    let res = rb.send().await.unwrap();
    let s = res.status();
    (s, res.text().await.unwrap())
}

async fn token_id(pg: &PgPool, plain: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_sha256 = $1")
        .bind(hash_token(plain))
        .fetch_one(pg)
        .await
        .unwrap()
}

/// The audit rows for `action` on `target`: (actor, detail).
async fn audits(pg: &PgPool, action: &str, target: Uuid) -> Vec<(Option<Uuid>, Value)> {
    sqlx::query_as(
        "SELECT actor, coalesce(detail, 'null'::jsonb) FROM audit_log \
         WHERE action = $1 AND target = $2 ORDER BY id",
    )
    .bind(action)
    .bind(target.to_string())
    .fetch_all(pg)
    .await
    .unwrap()
}

/// The control-plane CLI against this environment's database: (success, stdout, stderr).
fn cli(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(control_plane_bin())
        .env("VOXFLEET_DATABASE_URL", &env.db_url)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn set_admin_token(env: &mut Env, token: &str) {
    env.cp_env.retain(|(k, _)| k != "VOXFLEET_ADMIN_TOKEN");
    env.cp_env
        .push(("VOXFLEET_ADMIN_TOKEN".into(), token.into()));
}

/// Item 13: `bearer`, `BEARER` and extra spaces are the same scheme (RFC 7235); other schemes
/// and a missing separator are still refused.
#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let env = Env::start().await;
    for header in [
        format!("bearer {ADMIN}"),
        format!("BEARER {ADMIN}"),
        format!("bEaReR {ADMIN}"),
        format!("Bearer    {ADMIN}"),
        format!("Bearer {ADMIN}"),
    ] {
        let (s, body) = get_raw(&env, &env.base, "/v1/jobs", Some(&header)).await;
        assert_eq!(s, StatusCode::OK, "`{header}`: {body}");
    }
    for header in [
        format!("Basic {ADMIN}"),
        format!("Bearer{ADMIN}"),
        format!("Bearerx {ADMIN}"),
        "Bearer".to_string(),
        "bearer    ".to_string(),
        "bearer vf_not_a_token".to_string(),
    ] {
        let (s, body) = get_raw(&env, &env.base, "/v1/jobs", Some(&header)).await;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "`{header}`: {body}"
        );
    }
}

/// Item 12: `/metrics` shows worker and queue names, so it needs an admin token or the
/// dedicated metrics token; `--metrics-bind` serves it without auth on a private listener;
/// the health probes stay open.
#[tokio::test]
async fn metrics_needs_an_admin_or_metrics_token() {
    let mut env = Env::start().await;
    let metrics_token = "scrape-token-0123456789abcdef";
    let private = format!("127.0.0.1:{}", free_port());
    env.cp_env
        .push(("VOXFLEET_METRICS_TOKEN".into(), metrics_token.into()));
    env.cp_env
        .push(("VOXFLEET_METRICS_BIND".into(), private.clone()));
    env.restart_control_plane().await;
    let user = env.mint_token("user");
    let admin = env.mint_token("admin");
    env.worker("w-private-name", &[]);
    let deadline = Instant::now() + T;
    loop {
        let (_, w) = env.get("/v1/workers").await;
        if w["workers"][0]["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "worker did not start: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let worker_series = "voxfleet_worker_up{worker=\"w-private-name\"} 1";

    for (auth, status, want) in [
        (None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            Some("Bearer vf_wrong".to_string()),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some(format!("Bearer {metrics_token}x")),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some(format!("Basic {metrics_token}")),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some(format!("Bearer {user}")),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let (s, body) = get_raw(&env, &env.base, "/metrics", auth.as_deref()).await;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!((s, code(&v)), (status, want), "{auth:?}: {body}");
        assert!(!body.contains("w-private-name"), "{auth:?} sees: {body}");
        assert!(!body.contains("voxfleet_"), "{auth:?} sees: {body}");
    }
    for auth in [
        format!("Bearer {ADMIN}"),
        format!("Bearer {admin}"),
        format!("Bearer {metrics_token}"),
        format!("bearer  {metrics_token}"),
    ] {
        let (s, body) = get_raw(&env, &env.base, "/metrics", Some(&auth)).await;
        assert_eq!(s, StatusCode::OK, "{auth}: {body}");
        assert!(body.contains(worker_series), "{auth}: {body}");
        assert!(body.contains("voxfleet_queue_depth{"), "{auth}: {body}");
    }
    // the private listener: /metrics without auth, and nothing else
    let private = format!("http://{private}");
    let (s, body) = get_raw(&env, &private, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains(worker_series), "{body}");
    let (s, body) = get_raw(&env, &private, "/v1/jobs", Some(&format!("Bearer {ADMIN}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    // the probes stay open
    for path in ["/healthz", "/readyz"] {
        let (s, body) = get_raw(&env, &env.base, path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
    }
}

/// Item 5: a restart with a new VOXFLEET_ADMIN_TOKEN revokes the old bootstrap token
/// (audited), a revoked bootstrap token never comes back (the start fails and says what to
/// do), and a revocation through the API takes effect at once on that replica.
#[tokio::test]
async fn bootstrap_token_rotates_and_a_revoked_one_never_comes_back() {
    let mut env = Env::start().await;
    let pg = env.pg().await;
    let (s, _) = env.call("GET", "/v1/jobs", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK);
    let old_id = token_id(&pg, ADMIN).await;

    let second = "second-admin-token-0123456789abcdef";
    set_admin_token(&mut env, second);
    env.restart_control_plane().await;
    let (s, v) = env.call("GET", "/v1/jobs", Some(ADMIN), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "the rotated-out bootstrap token still works: {v}"
    );
    let (s, v) = env.call("GET", "/v1/jobs", Some(second), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let second_id = token_id(&pg, second).await;
    let rotated = audits(&pg, "token.rotate", old_id).await;
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(rotated[0].1["replaced_by"], second_id.to_string());

    // the list shows one active bootstrap token, and never a secret
    let (s, v) = env.call("GET", "/v1/tokens", Some(second), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let text = v.to_string();
    assert!(!text.contains(ADMIN) && !text.contains(second), "{v}");
    assert!(!text.contains(&hash_token(second)), "{v}");
    let tokens = v["tokens"].as_array().unwrap();
    let find = |id: Uuid| {
        tokens
            .iter()
            .find(|t| t["id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} not listed: {v}"))
            .clone()
    };
    let (old, new) = (find(old_id), find(second_id));
    assert!(old["revoked_at"].is_string(), "{old}");
    assert_eq!(
        (new["bootstrap"].as_bool(), new["role"].as_str()),
        (Some(true), Some("super_admin"))
    );
    assert!(new["revoked_at"].is_null(), "{new}");
    assert_eq!(
        tokens
            .iter()
            .filter(|t| t["bootstrap"] == true && t["revoked_at"].is_null())
            .count(),
        1,
        "{v}"
    );

    // the revoked bootstrap token is refused at start, and stays revoked
    set_admin_token(&mut env, ADMIN);
    let (status, log) = env
        .control_plane_exit(T)
        .await
        .expect("a control plane with a revoked VOXFLEET_ADMIN_TOKEN kept running");
    assert!(!status.success());
    assert!(
        log.contains("revoked") && log.contains("set a new VOXFLEET_ADMIN_TOKEN"),
        "{log}"
    );
    let revoked: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM api_tokens WHERE id = $1")
            .bind(old_id)
            .fetch_one(&pg)
            .await
            .unwrap();
    assert!(revoked.is_some(), "un-revoked");
    let (s, _) = env.call("GET", "/v1/jobs", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // revoking the current bootstrap token through the API (itself) works at once
    let (s, v) = env
        .call(
            "DELETE",
            &format!("/v1/tokens/{second_id}"),
            Some(second),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["revoked_at"].is_string(), "{v}");
    let (s, _) = env.call("GET", "/v1/jobs", Some(second), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked token kept working");
    set_admin_token(&mut env, second);
    let (status, log) = env
        .control_plane_exit(T)
        .await
        .expect("a control plane with a revoked VOXFLEET_ADMIN_TOKEN kept running");
    assert!(!status.success() && log.contains("revoked"), "{log}");

    // a new secret brings the operator back
    let third = "third-admin-token-0123456789abcdef";
    set_admin_token(&mut env, third);
    env.restart_control_plane().await;
    let (s, v) = env.call("GET", "/v1/tokens", Some(third), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let active: Vec<&Value> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["bootstrap"] == true && t["revoked_at"].is_null())
        .collect();
    assert_eq!(active.len(), 1, "{v}");
    assert_eq!(active[0]["id"], token_id(&pg, third).await.to_string());
    for t in [ADMIN, second] {
        let (s, _) = env.call("GET", "/v1/jobs", Some(t), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

/// Item 5: `tokens list|revoke` on the command line and `GET/POST/DELETE /v1/tokens`
/// (super_admin only): secrets are shown once, a revoked token stops working at once, and
/// every change is in the audit log with who made it.
#[tokio::test]
async fn tokens_are_listed_created_and_revoked_by_cli_and_api_with_audit() {
    let env = Env::start().await;
    let pg = env.pg().await;
    let boot_id = token_id(&pg, ADMIN).await;
    let user = env.mint_token("user");
    let admin = env.mint_token("admin");

    // super_admin only
    for t in [&user, &admin] {
        let (s, v) = env.call("GET", "/v1/tokens", Some(t), None).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
        let (s, v) = env
            .call(
                "POST",
                "/v1/tokens",
                Some(t),
                Some(json!({"name": "x", "role": "user"})),
            )
            .await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
        let (s, v) = env
            .call("DELETE", &format!("/v1/tokens/{boot_id}"), Some(t), None)
            .await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    }
    let (s, _) = env.call("GET", "/v1/tokens", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // create: the plaintext once, and it works
    let (s, v) = env
        .call(
            "POST",
            "/v1/tokens",
            Some(ADMIN),
            Some(json!({"name": "speakr", "role": "user"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let plain = v["token"].as_str().unwrap().to_string();
    let api_id: Uuid = v["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (v["name"].as_str(), v["role"].as_str()),
        (Some("speakr"), Some("user"))
    );
    assert_eq!(v["bootstrap"], false);
    let (s, _) = env.call("GET", "/v1/jobs", Some(&plain), None).await;
    assert_eq!(s, StatusCode::OK);
    for bad in [
        json!({"name": "x", "role": "root"}),
        json!({"name": "  ", "role": "user"}),
        json!({"name": "a\u{0}b", "role": "user"}),
        json!({"name": "x".repeat(1000), "role": "user"}),
    ] {
        let (s, v) = env
            .call("POST", "/v1/tokens", Some(ADMIN), Some(bad.clone()))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }

    // list: every token, no secrets
    let (s, v) = env.call("GET", "/v1/tokens", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let text = v.to_string();
    for secret in [ADMIN, &user, &admin, &plain] {
        assert!(!text.contains(secret), "a secret is listed: {v}");
        assert!(!text.contains(&hash_token(secret)), "a hash is listed: {v}");
    }
    let ids: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    for id in [
        boot_id,
        token_id(&pg, &user).await,
        token_id(&pg, &admin).await,
        api_id,
    ] {
        assert!(ids.contains(&id.to_string().as_str()), "{id} missing: {v}");
    }

    // revoke: at once on this replica (the token was just used, so it is cached), idempotent,
    // 404 for unknown ids
    let (s, v) = env
        .call("DELETE", &format!("/v1/tokens/{api_id}"), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["revoked_at"].is_string(), "{v}");
    let (s, v) = env.call("GET", "/v1/jobs", Some(&plain), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{v}"
    );
    let (s, v) = env
        .call("DELETE", &format!("/v1/tokens/{api_id}"), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::OK, "revoking twice: {v}");
    for id in [Uuid::now_v7().to_string(), "not-a-uuid".to_string()] {
        let (s, v) = env
            .call("DELETE", &format!("/v1/tokens/{id}"), Some(ADMIN), None)
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{id}: {v}"
        );
    }
    let created = audits(&pg, "token.create", api_id).await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].0, Some(boot_id), "the creator is recorded");
    let revoked = audits(&pg, "token.revoke", api_id).await;
    assert_eq!(
        revoked.len(),
        1,
        "one revocation, recorded once: {revoked:?}"
    );
    assert_eq!(revoked[0].0, Some(boot_id), "the revoker is recorded");

    // the CLI: list, then revoke a token the running replica has never seen
    let victim = env.mint_token("user");
    let victim_id = token_id(&pg, &victim).await;
    let (ok, out, err) = cli(&env, &["tokens", "list"]);
    assert!(ok, "{err}");
    for secret in [ADMIN, &user, &admin, &plain, &victim] {
        assert!(!out.contains(secret), "a secret is listed: {out}");
    }
    let line = |out: &str, id: Uuid| {
        out.lines()
            .find(|l| l.contains(&id.to_string()))
            .unwrap_or_else(|| panic!("{id} not listed: {out}"))
            .to_string()
    };
    let boot_line = line(&out, boot_id);
    assert!(
        boot_line.contains("super_admin") && boot_line.contains("bootstrap"),
        "{out}"
    );
    let victim_line = line(&out, victim_id);
    assert!(victim_line.contains(" user "), "{out}");
    assert!(line(&out, api_id).contains("revoked"), "{out}");
    assert!(!victim_line.contains("revoked"), "{out}");

    let (ok, _, err) = cli(&env, &["tokens", "revoke", &victim_id.to_string()]);
    assert!(ok, "{err}");
    let (s, _) = env.call("GET", "/v1/jobs", Some(&victim), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (ok, out, _) = cli(&env, &["tokens", "list"]);
    assert!(ok && line(&out, victim_id).contains("revoked"), "{out}");
    let revoked = audits(&pg, "token.revoke", victim_id).await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0].0, None, "no token acted");
    assert_eq!(revoked[0].1["via"], "cli", "{revoked:?}");
    let (ok, _, err) = cli(&env, &["tokens", "revoke", &Uuid::now_v7().to_string()]);
    assert!(!ok && err.contains("no token"), "{err}");
}
