//! Issue 17, sign-in for the dashboard's people, end to end with the real control plane and
//! PostgreSQL: email and password for an access and a refresh token; refresh rotation, and a
//! rotated refresh token re-used revoking the whole session; logout; the idle timeout;
//! lockout after failed attempts and an admin's unlock; the password policy and one's own
//! password change ending one's other sessions; each step in the audit log.
mod common;

use common::{ADMIN, Env};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn login(env: &Env, email: &str, password: &str) -> (StatusCode, Value) {
    env.call(
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

async fn refresh(env: &Env, token: &Value) -> (StatusCode, Value) {
    env.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": token["refresh_token"]})),
    )
    .await
}

async fn me(env: &Env, session: &Value) -> StatusCode {
    env.call(
        "GET",
        "/v1/me",
        Some(session["access_token"].as_str().unwrap()),
        None,
    )
    .await
    .0
}

async fn events(env: &Env) -> Vec<(String, String)> {
    let (s, v) = env.get("/v1/admin/audit?event=auth.&limit=500").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_refresh_rotate_and_a_reused_refresh_token_ends_the_session() {
    let env = Env::start().await;
    let (s, v) = env
        .post(
            "/v1/users",
            json!({"email": "ivy@example.org", "name": "Ivy", "password": "ivy's password"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Wrong password and unknown email get the same answer.
    for (email, pw) in [
        ("ivy@example.org", "not it at all"),
        ("nobody@example.org", "whatever1"),
    ] {
        let (s, v) = login(&env, email, pw).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            "{v}"
        );
    }
    let (s, a) = login(&env, "IVY@example.org", "ivy's password").await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(me(&env, &a).await, StatusCode::OK);
    // A session's access token is not one of the user's API tokens.
    let (_, toks) = env
        .call(
            "GET",
            "/v1/me/tokens",
            Some(a["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(toks["tokens"].as_array().map(Vec::len), Some(0), "{toks}");

    // Refresh: a new pair; the old access token is replaced.
    let (s, b) = refresh(&env, &a).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_ne!(a["access_token"], b["access_token"]);
    assert_eq!(a["session_id"], b["session_id"]);
    assert_eq!(me(&env, &b).await, StatusCode::OK);
    assert_eq!(me(&env, &a).await, StatusCode::UNAUTHORIZED);

    // The first refresh token again: stolen or replayed, so the whole session ends.
    let (s, v) = refresh(&env, &a).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "refresh_reused"),
        "{v}"
    );
    assert_eq!(
        me(&env, &b).await,
        StatusCode::UNAUTHORIZED,
        "the new access token is revoked too"
    );
    let (s, v) = refresh(&env, &b).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_refresh"),
        "{v}"
    );

    // Logout ends a session; an API token has none to end.
    let (_, c) = login(&env, "ivy@example.org", "ivy's password").await;
    let (s, _) = env
        .call(
            "POST",
            "/v1/auth/logout",
            Some(c["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(me(&env, &c).await, StatusCode::UNAUTHORIZED);
    let (s, v) = refresh(&env, &c).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_refresh"),
        "{v}"
    );
    let (s, v) = env.call("POST", "/v1/auth/logout", Some(ADMIN), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{v}"
    );

    // Idle past the timeout: the refresh is refused and the session ends.
    let (_, d) = login(&env, "ivy@example.org", "ivy's password").await;
    sqlx::query(
        "UPDATE sessions SET last_seen_at = now() - interval '2 hours' WHERE id = $1::uuid",
    )
    .bind(d["session_id"].as_str().unwrap())
    .execute(&env.pg().await)
    .await
    .unwrap();
    let (s, v) = refresh(&env, &d).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "session_expired"),
        "{v}"
    );
    assert_eq!(me(&env, &d).await, StatusCode::UNAUTHORIZED);

    let seen = events(&env).await;
    for (event, outcome) in [
        ("auth.login.failure", "failure"),
        ("auth.login.success", "success"),
        ("auth.refresh", "success"),
        ("auth.refresh.reuse", "failure"),
        ("auth.logout", "success"),
    ] {
        assert!(
            seen.contains(&(event.to_string(), outcome.to_string())),
            "{event} {outcome} not in {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_sign_ins_lock_the_account_and_the_password_policy_holds() {
    let env = Env::start().await;
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/auth",
            Some(ADMIN),
            Some(json!({"lockout_attempts": 3, "lockout_minutes": 10, "password_min_classes": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["password_min_length"], 8, "defaults kept: {v}");

    // The policy: three kinds of characters now.
    let (s, v) = env
        .post(
            "/v1/users",
            json!({"email": "joe@example.org", "name": "Joe", "password": "lowercaseonly"}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"),
        "{v}"
    );
    let (s, joe) = env
        .post(
            "/v1/users",
            json!({"email": "joe@example.org", "name": "Joe", "password": "Joe's Pass 1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{joe}");
    let joe_id = joe["id"].as_str().unwrap().to_string();

    // Three failures lock the account: even the right password is refused then.
    for _ in 0..3 {
        let (s, v) = login(&env, "joe@example.org", "Wrong Pass 1").await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            "{v}"
        );
    }
    let (s, v) = login(&env, "joe@example.org", "Joe's Pass 1").await;
    assert_eq!((s, code(&v)), (StatusCode::LOCKED, "account_locked"), "{v}");

    // An admin unlocks it (a user cannot).
    let (_, ann) = env
        .post(
            "/v1/users",
            json!({"email": "ann@example.org", "name": "Ann", "role": "admin", "password": "Ann's Pass 1"}),
        )
        .await;
    let (_, ann_session) = login(&env, "ann@example.org", "Ann's Pass 1").await;
    let ann_token = ann_session["access_token"].as_str().unwrap().to_string();
    assert_eq!(ann["role"], "admin");
    let (s, v) = env
        .call("GET", "/v1/settings/auth", Some(&ann_token), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "super_admin only: {v}"
    );
    let (s, _) = env
        .call(
            "POST",
            &format!("/v1/users/{joe_id}/unlock"),
            Some(&ann_token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, first) = login(&env, "joe@example.org", "Joe's Pass 1").await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let (_, second) = login(&env, "joe@example.org", "Joe's Pass 1").await;

    // His own password change: the current one must be right, the new one meet the policy;
    // his other session ends, this one stays.
    let token = first["access_token"].as_str().unwrap();
    for (body, want) in [
        (
            json!({"current_password": "nope", "password": "New Pass 22", "confirm": "New Pass 22"}),
            "invalid_input",
        ),
        (
            json!({"current_password": "Joe's Pass 1", "password": "newpassword", "confirm": "newpassword"}),
            "weak_password",
        ),
        (
            json!({"current_password": "Joe's Pass 1", "password": "New Pass 22", "confirm": "New Pass 23"}),
            "password_mismatch",
        ),
    ] {
        let (s, v) = env
            .call("POST", "/v1/me/password", Some(token), Some(body))
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, want),
            "{v}"
        );
    }
    let (s, v) = env
        .call(
            "POST",
            "/v1/me/password",
            Some(token),
            Some(json!({"current_password": "Joe's Pass 1", "password": "New Pass 22", "confirm": "New Pass 22"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(me(&env, &first).await, StatusCode::OK);
    assert_eq!(me(&env, &second).await, StatusCode::UNAUTHORIZED);
    let (s, _) = login(&env, "joe@example.org", "New Pass 22").await;
    assert_eq!(s, StatusCode::OK);

    let seen = events(&env).await;
    for event in ["auth.lockout", "auth.unlock", "auth.password.change"] {
        assert!(
            seen.iter().any(|(e, _)| e == event),
            "{event} not in {seen:?}"
        );
    }
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/auth",
            Some(ADMIN),
            Some(json!({"lockout_attempts": 1})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting"),
        "{v}"
    );
}

async fn post_as(env: &Env, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    env.call("POST", path, Some(token), Some(body)).await
}

async fn login_with(env: &Env, email: &str, password: &str, code: &str) -> (StatusCode, Value) {
    env.call(
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password, "code": code})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_factor_is_enrolled_verified_used_once_and_required_by_role() {
    let env = Env::start().await;
    let (s, _) = env
        .post(
            "/v1/users",
            json!({"email": "kim@example.org", "name": "Kim", "password": "kim's password"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, first) = login(&env, "kim@example.org", "kim's password").await;
    assert_eq!(first["mfa_enrollment_required"], false);
    let token = first["access_token"].as_str().unwrap().to_string();

    // Enrol: a secret, its URI and a QR image; a wrong code does not turn it on.
    let (s, e) = post_as(&env, &token, "/v1/me/mfa/enroll", json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let secret = e["secret"].as_str().unwrap().to_string();
    assert!(
        e["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/voxfleet:kim%40example.org?"),
        "{e}"
    );
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(e["qr_png_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    let (s, v) = post_as(&env, &token, "/v1/me/mfa/verify", json!({"code": "12345x"})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{v}"
    );
    let now = voxfleet_store::mfa::code_at(&secret, 0).unwrap();
    let (s, v) = post_as(&env, &token, "/v1/me/mfa/verify", json!({"code": now})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let backups: Vec<String> = v["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(backups.len(), 10);
    let (s, v) = post_as(&env, &token, "/v1/me/mfa/enroll", json!(null)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "mfa_state"), "{v}");

    // Sign-in now needs the second factor; the code just used is not accepted again.
    let (s, v) = login(&env, "kim@example.org", "kim's password").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "mfa_required"),
        "{v}"
    );
    let (s, v) = login_with(&env, "kim@example.org", "kim's password", &now).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_mfa_code"),
        "replayed: {v}"
    );
    let next = voxfleet_store::mfa::code_at(&secret, 30).unwrap();
    let (s, v) = login_with(&env, "kim@example.org", "kim's password", &next).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the next step's code (one step of skew): {v}"
    );
    let (s, v) = login_with(&env, "kim@example.org", "kim's password", &next).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_mfa_code"),
        "replayed: {v}"
    );
    // A backup code works once.
    let (s, v) = login_with(&env, "kim@example.org", "kim's password", &backups[0]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = login_with(&env, "kim@example.org", "kim's password", &backups[0]).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_mfa_code"),
        "{v}"
    );

    // Off only with a valid code.
    let (s, v) = post_as(&env, &token, "/v1/me/mfa/disable", json!({"code": "nope"})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{v}"
    );
    let (s, v) = post_as(
        &env,
        &token,
        "/v1/me/mfa/disable",
        json!({"code": backups[1]}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = login(&env, "kim@example.org", "kim's password").await;
    assert_eq!(s, StatusCode::OK);

    // Required for admins: an admin without one reaches only enrolment until it is on.
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/auth",
            Some(ADMIN),
            Some(json!({"mfa_required_roles": ["admin", "super_admin"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    env.post(
        "/v1/users",
        json!({"email": "lee@example.org", "name": "Lee", "role": "admin", "password": "lee's password"}),
    )
    .await;
    let (_, lee) = login(&env, "lee@example.org", "lee's password").await;
    assert_eq!(lee["mfa_enrollment_required"], true, "{lee}");
    let lee_token = lee["access_token"].as_str().unwrap().to_string();
    let (s, v) = env.call("GET", "/v1/users", Some(&lee_token), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "mfa_enrollment_required"),
        "{v}"
    );
    assert_eq!(me(&env, &lee).await, StatusCode::OK);
    let (_, e) = post_as(&env, &lee_token, "/v1/me/mfa/enroll", json!(null)).await;
    let c = voxfleet_store::mfa::code_at(e["secret"].as_str().unwrap(), 0).unwrap();
    let (s, _) = post_as(&env, &lee_token, "/v1/me/mfa/verify", json!({"code": c})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = env.call("GET", "/v1/users", Some(&lee_token), None).await;
    assert_eq!(s, StatusCode::OK, "enrolled: {v}");

    let seen = events(&env).await;
    for event in ["auth.mfa.enroll", "auth.mfa.enable", "auth.mfa.disable"] {
        assert!(
            seen.iter().any(|(e, _)| e == event),
            "{event} not in {seen:?}"
        );
    }
}
