//! A headless Chromium session driven through ChromeDriver: finding, clicking and typing by
//! test id, signing in, opening sections, screenshots, and the `until!` poll that screenshots
//! what it timed out on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{self, Env};

/// How long a step waits for the page by default.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// Polls `$body` (an Option) until it is Some, for up to `$within`; a screenshot and a panic
/// naming `$what` when it never is.
macro_rules! until {
    ($b:expr, $what:expr, $within:expr, $body:block) => {{
        let deadline = ::std::time::Instant::now() + $within;
        loop {
            let got: Option<_> = async $body.await;
            if let Some(v) = got {
                break v;
            }
            if ::std::time::Instant::now() >= deadline {
                let what: &str = &$what;
                $b.shot(&format!("failed-{}", what.replace(' ', "-"))).await;
                panic!("[{}] timed out waiting for {what}", $b.label);
            }
            tokio::time::sleep(::std::time::Duration::from_millis(150)).await;
        }
    }};
}
pub(crate) use until;

/// A headless Chromium session and its ChromeDriver.
pub(crate) struct Browser {
    driver: Child,
    pub(crate) c: Client,
    shots: PathBuf,
    pub(crate) downloads: PathBuf,
    pub(crate) label: String,
}

impl Browser {
    pub(crate) async fn start(env: &Env, label: &str) -> Browser {
        voxfleet_testkit::require_tool("chromium", "chromium");
        voxfleet_testkit::require_tool("chromedriver", "chromium-driver");
        let port = common::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let downloads = env.logs.join(format!("downloads-{label}"));
        std::fs::create_dir_all(&downloads).unwrap();
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        let shots = Path::new(&target).join("dashboard-screens");
        std::fs::create_dir_all(&shots).unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false
                }
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let c = loop {
            match ClientBuilder::rustls()
                .expect("rustls connector")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session at {url}: {e}"),
            }
        };
        Browser {
            driver,
            c,
            shots,
            downloads,
            label: label.into(),
        }
    }

    pub(crate) fn css(testid: &str) -> String {
        format!("[data-testid=\"{testid}\"]")
    }

    /// The first visible element with this test id, waited for.
    pub(crate) async fn el(&self, testid: &str) -> Element {
        let sel = Self::css(testid);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(all) = self.c.find_all(Locator::Css(&sel)).await {
                for e in all {
                    if e.is_displayed().await.unwrap_or(false) {
                        return e;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "[{}] no visible {sel} on {}",
                self.label,
                self.c.current_url().await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Visible elements with this test id now (none is fine).
    pub(crate) async fn all(&self, testid: &str) -> Vec<Element> {
        let mut out = Vec::new();
        for e in self
            .c
            .find_all(Locator::Css(&Self::css(testid)))
            .await
            .unwrap_or_default()
        {
            if e.is_displayed().await.unwrap_or(false) {
                out.push(e);
            }
        }
        out
    }

    pub(crate) async fn click(&self, testid: &str) {
        self.el(testid).await.click().await.unwrap();
    }

    pub(crate) async fn type_into(&self, testid: &str, text: &str) {
        let e = self.el(testid).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub(crate) async fn shot(&self, name: &str) {
        if let Ok(png) = self.c.screenshot().await {
            let path = self.shots.join(format!("{}-{name}.png", self.label));
            std::fs::write(&path, png).unwrap();
        }
    }

    pub(crate) async fn goto(&self, base: &str, path: &str) {
        self.c.goto(&format!("{base}{path}")).await.unwrap();
    }

    pub(crate) async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.goto(base, "/admin").await;
        self.type_into("signin-email", email).await;
        self.type_into("signin-password", password).await;
        self.click("signin-submit").await;
    }

    /// Opens a section through its navigation link and waits for its heading.
    pub(crate) async fn section(&self, name: &str) {
        self.click(&format!("nav-{name}")).await;
        let want = format!("/admin/{name}");
        until!(self, &format!("the {name} section"), WAIT, {
            let url = self.c.current_url().await.ok()?;
            (url.path() == want).then_some(())
        });
        // The section's first request answered: no loading placeholder left.
        until!(self, &format!("{name} loaded"), WAIT, {
            let busy = self.c.find_all(Locator::Css("#main .loading")).await.ok()?;
            busy.is_empty().then_some(())
        });
    }

    /// Opens a section by its address (a reload: the session survives it).
    pub(crate) async fn section_by_url(&self, base: &str, name: &str) {
        self.goto(base, &format!("/admin/{name}")).await;
        until!(self, &format!("{name} loaded"), WAIT, {
            let busy = self.c.find_all(Locator::Css("#main .loading")).await.ok()?;
            busy.is_empty().then_some(())
        });
    }

    /// Search & indexing, shown: waits for "Re-index all" to be enabled, clicks it and
    /// confirms.
    pub(crate) async fn start_reindex(&self) {
        until!(self, "re-index enabled", WAIT, {
            self.el("reindex-all")
                .await
                .is_enabled()
                .await
                .ok()?
                .then_some(())
        });
        self.click("reindex-all").await;
        self.click("confirm-ok").await;
    }

    /// Search & indexing, shown, with a re-index started: waits (up to 3 min) until its bar
    /// is full and its state `completed`; the bar's values seen on the way.
    pub(crate) async fn reindex_bar_to_full(&self) -> Vec<f64> {
        let mut seen = Vec::new();
        until!(self, "the re-index at 100 %", Duration::from_secs(180), {
            let v = self
                .c
                .execute(
                    "return document.querySelector('[data-testid=\"reindex-progress\"]').value",
                    vec![],
                )
                .await
                .ok()?
                .as_f64()?;
            let state = text(&self.el("reindex-progress-state").await).await;
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            (v >= 100.0 && state.contains("completed")).then_some(())
        });
        seen
    }

    /// Runs `body`, the body of an async function given the page's own `api.js` (the module
    /// instance the page runs on) as `api`, in the current tab: what it returns, or
    /// `{"failed": code}` when it throws.
    pub(crate) async fn with_api(&self, body: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             import(new URL('/assets/api.js', location.href).href)
               .then(async (api) => {{ {body} }})
               .then(done, (e) => done({{ failed: (e && e.code) || String(e) }}));"
        );
        self.c.execute_async(&script, vec![]).await.unwrap()
    }

    pub(crate) async fn close(mut self) {
        let _ = self.c.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element's text, or empty when it cannot be read.
pub(crate) async fn text(e: &Element) -> String {
    e.text().await.unwrap_or_default()
}
