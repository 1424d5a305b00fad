//! Sessions in the page as the authentication settings make them: access tokens of 60 s (the
//! shortest the setting takes). Two tabs, each signed in on its own session, are left alone
//! past their tokens' life; one of the sessions has meanwhile gone unrefreshed past the idle
//! timeout. Used again, the first tab goes on without a word (refreshed quietly), the second
//! shows the sign-in form saying the session has ended.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::browser::{Browser, WAIT, text, until};
use crate::common::{ADMIN, Env};
use crate::fixtures::person;

/// The current tab's session id, from the page's stored session.
const SESSION_ID: &str =
    "return JSON.parse(sessionStorage.getItem('voxfleet.session') || '{}').session_id || null";

#[tokio::test(flavor = "multi_thread")]
async fn sessions_refresh_quietly_and_end_as_the_settings_say() {
    let env = Env::start().await;
    let base = env.base.clone();
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/auth",
            Some(ADMIN),
            Some(json!({"access_token_seconds": 60})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    person(
        &env,
        "sam@example.org",
        "Sam Session",
        "user",
        "sam's long password",
    )
    .await;
    let b = Browser::start(&env, "session").await;
    let mut tabs = Vec::new();
    for i in 0..2 {
        if i > 0 {
            let tab = b.c.new_window(true).await.unwrap().handle;
            b.c.switch_to_window(tab).await.unwrap();
        }
        b.sign_in(&base, "sam@example.org", "sam's long password")
            .await;
        b.el("nav-profile").await;
        let sid = b.c.execute(SESSION_ID, vec![]).await.unwrap();
        let sid = Uuid::parse_str(sid.as_str().expect("a stored session")).unwrap();
        tabs.push((b.c.window().await.unwrap(), sid));
    }
    assert_ne!(tabs[0].1, tabs[1].1, "two sign-ins, two sessions");
    let signed_in = Instant::now();

    // The second session was last refreshed two hours ago: past the idle timeout (1 h).
    let pg = env.pg().await;
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '2 hours' WHERE id = $1")
        .bind(tabs[1].1)
        .execute(&pg)
        .await
        .unwrap();
    let refreshes = || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM audit_log WHERE action = 'auth.refresh' AND outcome = 'success'",
        )
        .fetch_one(&pg)
        .await
        .unwrap();
        n
    };
    let before = refreshes().await;
    // Both tabs left alone until their access tokens have expired.
    tokio::time::sleep(Duration::from_secs(65).saturating_sub(signed_in.elapsed())).await;

    // The first tab, used again: the section opens, no sign-in, one refresh more.
    b.c.switch_to_window(tabs[0].0.clone()).await.unwrap();
    b.section("files").await;
    b.el("files-refresh").await;
    assert!(
        b.all("signin-email").await.is_empty(),
        "the live session asked to sign in again"
    );
    assert!(refreshes().await > before, "no refresh was recorded");
    b.shot("refreshed-quietly").await;

    // The second tab, used again: the session has ended, and the page says why.
    b.c.switch_to_window(tabs[1].0.clone()).await.unwrap();
    b.click("nav-files").await;
    let err = b.el("signin-error").await;
    let msg = until!(b, "the ended session's message", WAIT, {
        let t = text(&err).await;
        t.contains("session_expired").then_some(t)
    });
    println!("the idle tab says: {msg}");
    b.el("signin-email").await;
    b.shot("ended-idle").await;
    let (revoked, reason): (bool, Option<String>) =
        sqlx::query_as("SELECT revoked_at IS NOT NULL, revoke_reason FROM sessions WHERE id = $1")
            .bind(tabs[1].1)
            .fetch_one(&pg)
            .await
            .unwrap();
    assert!(revoked, "the idle session was not ended");
    assert_eq!(reason.as_deref(), Some("idle"));
    b.close().await;
}
