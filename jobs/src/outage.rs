//! Logging a dependency outage the way an operator wants it: one warning when it starts, a
//! reminder every 30 s while it lasts, one info line when it ends; and a growing backoff for
//! the retry loop in between.
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Outage {
    what: &'static str,
    since: Option<Instant>,
    last_log: Option<Instant>,
    failures: u32,
}

impl Outage {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            since: None,
            last_log: None,
            failures: 0,
        }
    }

    /// Records a failure and returns how long to wait before trying again (100 ms doubling
    /// up to 5 s).
    pub fn failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        let now = Instant::now();
        self.failures = self.failures.saturating_add(1);
        let since = *self.since.get_or_insert(now);
        let due = self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30));
        if due {
            self.last_log = Some(now);
            tracing::warn!(
                dependency = self.what,
                error = %error,
                down_for_s = now.duration_since(since).as_secs(),
                "{} failing; retrying with backoff",
                self.what
            );
        }
        Duration::from_millis(100u64 << self.failures.min(6)).min(Duration::from_secs(5))
    }

    /// Records a success; logs the recovery if there was an outage.
    pub fn ok(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                dependency = self.what,
                down_for_ms = since.elapsed().as_millis() as u64,
                "{} recovered",
                self.what
            );
        }
        self.last_log = None;
        self.failures = 0;
    }

    pub fn is_down(&self) -> bool {
        self.since.is_some()
    }
}
