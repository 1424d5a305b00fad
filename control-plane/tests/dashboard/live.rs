//! Live updates survive a lost connection: the control plane is killed and started again on
//! the same address while the page follows a queued re-index, and the page's streams find it
//! again on their own (no reload, no polling): the header's live status goes through
//! "Reconnecting…" back to "Live", and the re-index, run only after the restart, moves the bar
//! to 100 % from the reconnected job stream.

use std::time::Duration;

use crate::browser::{Browser, WAIT, text, until};
use crate::common::Env;
use crate::fixtures::{ROOT, plant_transcripts, root};

/// Records every state the header's live indicator takes, from now on, in `window.vfLive`.
const WATCH_LIVE: &str = r#"
const el = document.getElementById('live-status');
window.vfLive = [el.dataset.state];
new MutationObserver(() => window.vfLive.push(el.dataset.state))
  .observe(el, { attributes: true, attributeFilter: ['data-state'] });
"#;

#[tokio::test(flavor = "multi_thread")]
async fn lost_event_streams_reconnect_and_the_page_stays_live() {
    let mut env = Env::start().await;
    let base = env.base.clone();
    root(&env).await;
    plant_transcripts(&env, 200).await;
    let b = Browser::start(&env, "reconnect").await;
    b.sign_in(&base, ROOT.0, ROOT.1).await;
    b.el("nav-search").await;
    b.section("search").await;
    until!(b, "the live indicator open", WAIT, {
        let state =
            b.c.execute(
                "return document.getElementById('live-status').dataset.state",
                vec![],
            )
            .await
            .ok()?;
        (state == "open").then_some(())
    });

    // A re-index with no worker yet: queued, and the page follows its job's stream.
    b.start_reindex().await;
    until!(b, "the re-index queued", WAIT, {
        let state = text(&b.el("reindex-progress-state").await).await;
        state.to_lowercase().contains("queued").then_some(())
    });
    b.c.execute(WATCH_LIVE, vec![]).await.unwrap();

    env.restart_control_plane_in_place().await;
    assert_eq!(env.base, base);
    let states = until!(
        b,
        "the live indicator back to open",
        Duration::from_secs(60),
        {
            let v = b.c.execute("return window.vfLive", vec![]).await.ok()?;
            let states: Vec<String> = serde_json::from_value(v).ok()?;
            (states.iter().any(|s| s == "reconnecting") && states.last()? == "open")
                .then_some(states)
        }
    );
    println!("live indicator states across the restart: {states:?}");
    b.shot("reconnected").await;
    // The page never went back to sign-in and shows no error in place of the section.
    assert!(
        b.all("signin-email").await.is_empty(),
        "signed out by the restart"
    );

    // Only now can the job run; its progress reaches the page through the reconnected stream.
    env.worker("w1", &["--concurrency", "2"]);
    let seen = b.reindex_bar_to_full().await;
    println!("re-index bar values after the restart: {seen:?}");
    b.shot("reconnected-reindexed").await;
    let (_, s) = env.get("/v1/admin/search").await;
    assert_eq!(s["reindex"]["state"], "completed", "{s}");
    b.close().await;
}
