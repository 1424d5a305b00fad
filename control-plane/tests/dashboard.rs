//! Issue 18, the admin dashboard, in headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `scripts/tools.sh` installs; a missing one fails the
//! test) against the real control plane, worker, PostgreSQL and Redis. Screenshots of every
//! section are saved under `$CARGO_TARGET_DIR/dashboard-screens/`.
//!
//! The tests' flow is here; what they share is under `dashboard/`: the browser session
//! (`browser`), keyboard-only use (`keyboard`), and the accounts, transcripts and GPU workers
//! they set up behind the page (`fixtures`), and the page as a screen reader is given it
//! (`a11y`: Chromium's accessibility tree). The Statistics section's GPU cards, filled, have
//! their own test in `gpus`; streams that reconnect after the control plane restarts, in `live`; sessions that refresh
//! quietly and end when idle, in `session`.
mod common;

#[path = "dashboard/a11y.rs"]
mod a11y;
#[path = "dashboard/browser.rs"]
mod browser;
#[path = "dashboard/fixtures.rs"]
mod fixtures;
#[path = "dashboard/gpus.rs"]
mod gpus;
#[path = "dashboard/keyboard.rs"]
mod keyboard;
#[path = "dashboard/live.rs"]
mod live;
#[path = "dashboard/session.rs"]
mod session;

use browser::{Browser, WAIT, text, until};
use common::Env;
use fantoccini::Locator;
use fantoccini::key::Key;
use fixtures::{ROOT, person, plant_transcripts, root};
use keyboard::UNREACHABLE_OR_UNNAMED;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn a_super_admin_works_every_section_in_the_browser() {
    let mut env = Env::start().await;
    let base = env.base.clone();
    let me = root(&env).await;
    plant_transcripts(&env, 200).await;
    // A file a year old for the retention preview.
    let pg = env.pg().await;
    sqlx::query(
        "INSERT INTO files (id, owner, filename, size_bytes, sha256, storage_key, created_at) \
         VALUES ($1, $2, 'old-board-meeting.wav', 2048, 'y', 'old/1', now() - interval '400 days')",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::parse_str(&me).unwrap())
    .execute(&pg)
    .await
    .unwrap();
    // The migration section offers start while voiceprints are on v3.
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/embeddings",
            Some(common::ADMIN),
            Some(json!({"active_profile": "v3"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let b = Browser::start(&env, "super-admin").await;
    // A wrong password is a message on the sign-in form, not a blank page.
    b.sign_in(&base, ROOT.0, "not the password").await;
    let err = b.el("signin-error").await;
    until!(b, "the sign-in error", WAIT, {
        let t = text(&err).await;
        (!t.is_empty()).then_some(())
    });
    b.shot("signin-refused").await;
    b.type_into("signin-password", ROOT.1).await;
    b.click("signin-submit").await;
    for nav in [
        "stats",
        "tasks",
        "users",
        "search",
        "maintenance",
        "retention",
        "settings",
        "auth",
        "audit",
        "profile",
    ] {
        b.el(&format!("nav-{nav}")).await;
    }

    b.section("stats").await;
    b.el("usage-totals").await;
    b.shot("stats").await;
    b.section("tasks").await;
    b.shot("tasks").await;

    // Users: a budget under the minimum is refused by the form and nothing is created; then
    // the user is added and appears in the table; typing filters it.
    b.section("users").await;
    until!(b, "the own row", WAIT, {
        (!b.all("current-user").await.is_empty()).then_some(())
    });
    b.shot("users").await;
    b.click("user-add").await;
    b.type_into("user-name", "Dana Budget").await;
    b.type_into("user-email", "dana@example.org").await;
    b.type_into("user-password", "a long enough password").await;
    b.type_into("user-budget-minutes", "5").await;
    b.click("user-submit").await;
    let err = b.el("form-error").await;
    let message = until!(b, "the budget refusal", WAIT, {
        let t = text(&err).await;
        (!t.is_empty()).then_some(t)
    });
    assert!(message.contains("at least 10"), "{message}");
    b.shot("users-budget-refused").await;
    let (_, list) = env.get("/v1/users?q=dana").await;
    assert_eq!(
        list["users"].as_array().unwrap().len(),
        0,
        "the form sent it: {list}"
    );
    b.type_into("user-budget-minutes", "20").await;
    b.click("user-submit").await;
    until!(b, "Dana's row", WAIT, {
        let rows =
            b.c.find_all(Locator::Css(
                "[data-testid=\"user-row\"][data-email=\"dana@example.org\"]",
            ))
            .await
            .ok()?;
        (!rows.is_empty()).then_some(())
    });
    let (_, list) = env.get("/v1/users?q=dana").await;
    assert_eq!(
        list["users"][0]["transcription_budget_minutes"], 20,
        "{list}"
    );
    b.type_into("users-filter", "dana").await;
    until!(b, "the filtered table", WAIT, {
        let rows = b.all("user-row").await;
        let mut emails = Vec::new();
        for r in &rows {
            emails.push(r.attr("data-email").await.ok()??);
        }
        (emails == ["dana@example.org"]).then_some(())
    });
    b.shot("users-filtered").await;

    // Migration: start queues the run (no worker yet), stop ends it.
    b.section("maintenance").await;
    until!(b, "start enabled", WAIT, {
        let e = b.el("migration-start").await;
        e.is_enabled().await.ok()?.then_some(())
    });
    b.click("migration-start").await;
    until!(b, "stop enabled", WAIT, {
        let e = b.el("migration-stop").await;
        e.is_enabled().await.ok()?.then_some(())
    });
    b.shot("maintenance-migrating").await;
    b.click("migration-stop").await;
    let m = until!(b, "the migration to stop", WAIT, {
        let (_, m) = env.get("/v1/admin/embeddings/migration").await;
        (m["migrating"] == false).then_some(m)
    });
    assert!(m["run"].is_object(), "{m}");
    b.shot("maintenance").await;

    // Search: re-index all with a worker; the bar reaches 100 % from the event stream.
    env.worker("w1", &["--concurrency", "2"]);
    b.section("search").await;
    b.start_reindex().await;
    let seen = b.reindex_bar_to_full().await;
    println!("re-index bar values seen: {seen:?}");
    b.shot("search-reindexed").await;
    let (_, s) = env.get("/v1/admin/search").await;
    assert_eq!(s["reindex"]["state"], "completed", "{s}");

    // Retention: the preview lists the year-old file.
    b.section("retention").await;
    b.click("retention-preview").await;
    until!(b, "the preview row", WAIT, {
        let rows = b.all("retention-preview-row").await;
        for r in rows {
            if text(&r).await.contains("old-board-meeting.wav") {
                return Some(());
            }
        }
        None
    });
    b.shot("retention-preview").await;

    b.section("settings").await;
    b.shot("settings").await;
    b.section("auth").await;
    b.shot("auth").await;

    // Audit: the table lists the user creation; the CSV export downloads under the seed's name.
    b.section("audit").await;
    until!(b, "audit rows", WAIT, {
        (!b.all("audit-row").await.is_empty()).then_some(())
    });
    b.shot("audit").await;
    b.click("audit-export-csv").await;
    let name = format!("audit-logs-{}.csv", chrono::Utc::now().format("%Y-%m-%d"));
    let file = b.downloads.join(&name);
    let csv = until!(b, "the CSV download", WAIT, {
        let body = std::fs::read_to_string(&file).ok()?;
        body.contains("admin.user.create").then_some(body)
    });
    assert!(csv.lines().count() > 1, "{csv}");
    // The event filter: user creations only (two here: Rae through the API, Dana in the page).
    b.el("audit-event")
        .await
        .select_by_value("admin.user.create")
        .await
        .unwrap();
    b.click("audit-apply").await;
    let created = until!(b, "only user creations listed", WAIT, {
        let mut events = Vec::new();
        for r in b.all("audit-row").await {
            events.push(r.attr("data-event").await.ok()??);
        }
        (!events.is_empty() && events.iter().all(|e| e == "admin.user.create"))
            .then_some(events.len())
    });
    assert!(created >= 2, "{created} user creations listed");
    b.shot("audit-filtered").await;

    b.section("profile").await;
    b.shot("profile").await;
    // A phone-width screen: the navigation collapses behind its toggle.
    b.c.set_window_size(390, 844).await.unwrap();
    b.section_by_url(&base, "users").await;
    b.el("nav-toggle").await;
    b.shot("users-phone").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_signs_in_with_a_second_factor_and_sees_only_their_own_sections() {
    let env = Env::start().await;
    let base = env.base.clone();
    person(
        &env,
        "mia@example.org",
        "Mia",
        "user",
        "mia's long password",
    )
    .await;
    // Mia enrols a second factor through the API.
    let (s, login) = env
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": "mia@example.org", "password": "mia's long password"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{login}");
    let access = login["access_token"].as_str().unwrap().to_string();
    let (s, e) = env
        .call(
            "POST",
            "/v1/me/mfa/enroll",
            Some(&access),
            Some(json!(null)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let secret = e["secret"].as_str().unwrap().to_string();
    let code = voxfleet_store::mfa::code_at(&secret, 0).unwrap();
    let (s, v) = env
        .call(
            "POST",
            "/v1/me/mfa/verify",
            Some(&access),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let b = Browser::start(&env, "user-mfa").await;
    b.sign_in(&base, "mia@example.org", "mia's long password")
        .await;
    // The password alone is not enough: the code field appears.
    b.el("mfa-code").await;
    b.shot("signin-code").await;
    // The next step's code (the one just used for enrolment is spent).
    let next = voxfleet_store::mfa::code_at(&secret, 30).unwrap();
    b.type_into("mfa-code", &next).await;
    b.click("signin-submit").await;
    b.el("nav-profile").await;
    assert!(
        b.all("nav-users").await.is_empty() && b.all("nav-audit").await.is_empty(),
        "a user sees no admin sections"
    );
    b.section("profile").await;
    b.shot("profile").await;
    // An admin address typed in is refused in the page, and the API was never asked.
    b.section_by_url(&base, "users").await;
    b.el("forbidden").await;
    b.shot("forbidden").await;
    let pg = env.pg().await;
    let signed_in: Value = sqlx::query_scalar(
        "SELECT to_jsonb(array_agg(action ORDER BY id)) FROM audit_log \
         WHERE action LIKE 'auth.login%'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert!(
        signed_in
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| *a == "auth.login.success")
            .count()
            >= 2,
        "{signed_in}"
    );
    b.close().await;
}

/// The page and its files are served from the binary with their types and a strict policy;
/// anything else under `/assets/` is the API's coded 404.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let env = Env::start().await;
    for path in ["/", "/admin", "/admin/users", "/admin/audit/anything"] {
        let res = env
            .http
            .get(format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers();
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = res.text().await.unwrap();
        assert!(body.contains("/assets/app.js"), "{path}: {body}");
    }
    for (file, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let res = env
            .http
            .get(format!("{}/assets/{file}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        assert_eq!(res.headers()["content-type"], ty, "{file}");
    }
    for path in ["/assets/../Cargo.toml", "/assets/nope.js", "/adminx"] {
        let (s, v) = env.call("GET", path, None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
}

/// "Duplicate tab" copies sessionStorage, so two tabs hold the same refresh token, and the
/// server ends the session when a used one comes back (`refresh_reused`). Both tabs refresh,
/// one after the other in either order and at once, and both stay signed in; signing out in
/// one signs the other out.
#[tokio::test(flavor = "multi_thread")]
async fn duplicated_tabs_refresh_one_session_without_ending_it() {
    let env = Env::start().await;
    let base = env.base.clone();
    let me = person(
        &env,
        "tia@example.org",
        "Tia Tabs",
        "user",
        "tia's long password",
    )
    .await;
    let b = Browser::start(&env, "tabs").await;
    b.sign_in(&base, "tia@example.org", "tia's long password")
        .await;
    b.el("nav-profile").await;
    let first = b.c.window().await.unwrap();
    let stored =
        b.c.execute("return sessionStorage.getItem('voxfleet.session')", vec![])
            .await
            .unwrap();
    assert!(stored.is_string(), "no session stored: {stored}");
    // The duplicate: a second tab of the page whose sessionStorage is the first one's.
    let second = b.c.new_window(true).await.unwrap().handle;
    b.c.switch_to_window(second.clone()).await.unwrap();
    b.goto(&base, "/admin").await;
    b.c.execute(
        "sessionStorage.setItem('voxfleet.session', arguments[0])",
        vec![stored],
    )
    .await
    .unwrap();
    b.c.refresh().await.unwrap();
    b.el("nav-profile").await;
    b.shot("duplicate").await;

    let tabs = [("first", first), ("second", second)];
    let mut refreshed: i64 = 0;
    for order in [[0, 1], [1, 0]] {
        for i in order {
            let (name, tab) = &tabs[i];
            b.c.switch_to_window(tab.clone()).await.unwrap();
            let got = b
                .with_api("await api.refreshSession(); return (await api.api('/v1/me')).id;")
                .await;
            assert_eq!(
                got,
                json!(me),
                "the {name} tab refreshing in order {order:?}"
            );
            refreshed += 1;
        }
    }
    // Both at once, as when the two tabs' refresh timers fire together.
    for (_, tab) in &tabs {
        b.c.switch_to_window(tab.clone()).await.unwrap();
        b.c.execute(
            "window.vfRefreshed = import(new URL('/assets/api.js', location.href).href) \
               .then((api) => api.refreshSession()) \
               .then(() => 'ok', (e) => (e && e.code) || String(e));",
            vec![],
        )
        .await
        .unwrap();
    }
    for (name, tab) in &tabs {
        b.c.switch_to_window(tab.clone()).await.unwrap();
        let got =
            b.c.execute_async(
                "const done = arguments[arguments.length - 1]; window.vfRefreshed.then(done);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(got, json!("ok"), "the {name} tab refreshing with the other");
        let got = b.with_api("return (await api.api('/v1/me')).id;").await;
        assert_eq!(got, json!(me), "the {name} tab after both refreshed");
        assert!(
            b.all("signin-error").await.is_empty() && b.all("signin-email").await.is_empty(),
            "the {name} tab shows the sign-in form"
        );
        b.el("nav-profile").await;
    }
    let pg = env.pg().await;
    let (rotations, reuses): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE action = 'auth.refresh'), \
                count(*) FILTER (WHERE action = 'auth.refresh.reuse') FROM audit_log",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert!(rotations >= refreshed, "{rotations} refreshes audited");
    assert_eq!(reuses, 0, "a refresh token was used twice");

    // Signing out in one tab signs the other out too.
    b.c.switch_to_window(tabs[0].1.clone()).await.unwrap();
    b.click("logout").await;
    b.el("signin-email").await;
    b.c.switch_to_window(tabs[1].1.clone()).await.unwrap();
    let err = b.el("signin-error").await;
    until!(b, "the other tab signed out", WAIT, {
        text(&err).await.contains("another tab").then_some(())
    });
    b.shot("signed-out-elsewhere").await;
    b.close().await;
}

/// Without the mouse: sign in by tabbing through the form, reach the navigation, open a
/// section with Enter, open and close its dialog; every control shown in the page's shell and
/// that section can take focus (or is disabled) and has a name.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_from_the_keyboard_alone() {
    let env = Env::start().await;
    let base = env.base.clone();
    person(
        &env,
        "kim@example.org",
        "Kim Keys",
        "admin",
        "kim's long password",
    )
    .await;
    let b = Browser::start(&env, "keyboard").await;
    b.goto(&base, "/admin").await;
    b.el("signin-email").await;
    // The skip link is there only where there is a main column to skip to.
    let skip_hidden = "return document.getElementById('skip-link').hidden";
    let hidden = b.c.execute(skip_hidden, vec![]).await.unwrap();
    assert_eq!(hidden, json!(true), "a skip link on the sign-in screen");
    b.keys_until(&[Key::Tab], &Browser::css("signin-email"), 10)
        .await;
    b.type_keys("kim@example.org").await;
    b.press(&[Key::Tab]).await;
    assert_eq!(b.focused().await, "signin-password");
    b.type_keys("kim's long password").await;
    b.press(&[Key::Tab]).await;
    assert_eq!(b.focused().await, "signin-submit");
    b.press(&[Key::Enter]).await;
    // Signed in, focus is on the first section's heading, in the main column after the
    // navigation: Shift+Tab walks back into the navigation.
    until!(b, "the heading focused after sign-in", WAIT, {
        (b.focused().await == "page-title").then_some(())
    });
    let hidden = b.c.execute(skip_hidden, vec![]).await.unwrap();
    assert_eq!(hidden, json!(false), "no skip link once signed in");
    b.keys_until(&[Key::Shift, Key::Tab], "#nav-list a", 40)
        .await;
    b.keys_until(&[Key::Shift, Key::Tab], &Browser::css("nav-users"), 20)
        .await;
    b.press(&[Key::Enter]).await;
    until!(b, "the users section by keyboard", WAIT, {
        let url = b.c.current_url().await.ok()?;
        let title = b.c.find(Locator::Id("page-title")).await.ok()?;
        let shown = url.path() == "/admin/users" && text(&title).await == "Users";
        (shown && b.focused().await == "page-title").then_some(())
    });
    until!(b, "user rows", WAIT, {
        (!b.all("user-row").await.is_empty()).then_some(())
    });
    b.shot("keyboard-users").await;
    // The heading's action comes next; its dialog opens on the first field, and Escape closes
    // it with focus back on the button.
    b.press(&[Key::Tab]).await;
    assert_eq!(b.focused().await, "user-add");
    b.press(&[Key::Enter]).await;
    until!(b, "the dialog's first field", WAIT, {
        (b.focused().await == "user-name").then_some(())
    });
    b.press(&[Key::Escape]).await;
    until!(b, "focus back on the button", WAIT, {
        (b.focused().await == "user-add").then_some(())
    });
    let sweep =
        b.c.execute(UNREACHABLE_OR_UNNAMED, vec![json!("#app-view")])
            .await
            .unwrap();
    assert!(sweep["checked"].as_u64().unwrap() >= 10, "{sweep}");
    assert_eq!(
        sweep["bad"],
        json!([]),
        "controls a keyboard or screen reader cannot use"
    );
    b.close().await;
}

/// Every section as assistive technology gets it, from Chromium's accessibility tree: each
/// control, progress bar, table and dialog has a name, the page has its landmarks, one level-1
/// heading names the section, and headings go down one level at a time.
#[tokio::test(flavor = "multi_thread")]
async fn every_section_reads_well_to_a_screen_reader() {
    let env = Env::start().await;
    let base = env.base.clone();
    person(
        &env,
        "ada@example.org",
        "Ada Reader",
        "super_admin",
        "correct horse battery",
    )
    .await;
    // Tables that show only with rows: a job (queued, no worker), a file and an API token.
    env.submit(json!({})).await;
    plant_transcripts(&env, 1).await;
    let (s, t) = env
        .post(
            "/v1/tokens",
            json!({"name": "reader's token", "role": "user"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let b = Browser::start(&env, "a11y").await;
    b.goto(&base, "/admin").await;
    b.el("signin-email").await;
    check_tree(&b, "sign-in", "voxfleet admin").await;
    b.sign_in(&base, "ada@example.org", "correct horse battery")
        .await;
    b.el("nav-stats").await;
    let sections = [
        ("stats", "Statistics"),
        ("tasks", "Task health"),
        ("users", "Users"),
        ("files", "Files"),
        ("search", "Search & indexing"),
        ("maintenance", "Maintenance"),
        ("retention", "Retention"),
        ("settings", "Settings"),
        ("auth", "Authentication"),
        ("audit", "Audit logs"),
        ("profile", "Profile"),
    ];
    for (path, title) in sections {
        b.section(path).await;
        check_tree(&b, path, title).await;
    }
    // a dialog, open: named, and its fields too
    b.section("users").await;
    b.click("user-add").await;
    b.el("user-name").await;
    let (_, unnamed) = b.unnamed_controls().await;
    assert_eq!(
        unnamed,
        Vec::<String>::new(),
        "[user dialog] nodes without a name"
    );
    let dialogs: Vec<String> = b
        .ax_tree()
        .await
        .into_iter()
        .filter(|n| n.role == "dialog")
        .map(|n| n.name)
        .collect();
    assert_eq!(dialogs.len(), 1, "one dialog: {dialogs:?}");
    b.close().await;
}

/// The checks of [`every_section_reads_well_to_a_screen_reader`] on the page as it is now.
async fn check_tree(b: &Browser, label: &str, title: &str) {
    let (checked, unnamed) = b.unnamed_controls().await;
    assert!(
        checked >= 3,
        "[{label}] only {checked} named-role nodes: the tree was not read"
    );
    if !unnamed.is_empty() {
        b.shot(&format!("failed-a11y-{label}")).await;
    }
    assert_eq!(
        unnamed,
        Vec::<String>::new(),
        "[{label}] nodes without a name"
    );
    let tree = b.ax_tree().await;
    let roles = |role: &str| tree.iter().filter(|n| n.role == role).count();
    assert_eq!(roles("main"), 1, "[{label}] one main landmark");
    if label != "sign-in" {
        let nav: Vec<&str> = tree
            .iter()
            .filter(|n| n.role == "navigation")
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(
            nav,
            ["Sections"],
            "[{label}] the sections' navigation, named"
        );
    }
    let headings: Vec<(u64, &str)> = tree
        .iter()
        .filter(|n| n.role == "heading")
        .map(|n| (n.level, n.name.as_str()))
        .collect();
    let h1: Vec<&str> = headings.iter().filter(|h| h.0 == 1).map(|h| h.1).collect();
    assert_eq!(h1, [title], "[{label}] one level-1 heading: {headings:?}");
    let mut level = 0;
    for &(l, name) in &headings {
        assert!(
            l <= level + 1,
            "[{label}] heading `{name}` (level {l}) skips a level after {level}: {headings:?}"
        );
        level = l;
    }
}
