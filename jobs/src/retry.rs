//! The retry policy. The global setting lives in PostgreSQL (read by whoever decides a retry,
//! at the moment it decides); a job may carry its own lower cap. The decision itself is made
//! inside the Lua scripts from the numbers computed here, so it is atomic with the state change.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"limit_retries":true,"max_retries":3}` — the admin setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetrySettings {
    /// When false, retryable failures retry indefinitely (with backoff), as admins of the
    /// platforms we serve expect from this switch.
    pub limit_retries: bool,
    /// 1–10.
    pub max_retries: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            limit_retries: true,
            max_retries: 3,
        }
    }
}

impl RetrySettings {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 10;

    pub fn validate(&self) -> Result<(), String> {
        if (Self::MIN..=Self::MAX).contains(&self.max_retries) {
            Ok(())
        } else {
            Err(format!(
                "max_retries must be between {} and {}, got {}",
                Self::MIN,
                Self::MAX,
                self.max_retries
            ))
        }
    }

    /// The number of retries a job may have: `None` is unlimited.
    pub fn effective_cap(&self, job_cap: Option<u32>) -> Option<u32> {
        match (self.limit_retries, job_cap) {
            (true, Some(c)) => Some(c.min(self.max_retries)),
            (true, None) => Some(self.max_retries),
            (false, c) => c,
        }
    }

    /// The cap as the Lua scripts take it: -1 for unlimited.
    pub(crate) fn lua_cap_args(&self) -> (i64, i64) {
        (i64::from(self.limit_retries), i64::from(self.max_retries))
    }
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryDecision {
    Retry,
    Fail,
}

/// Exponential backoff with "equal jitter": half fixed, half random, so retries of many jobs
/// that failed together spread out. `attempt` is the attempt that just failed (1-based).
pub fn backoff(attempt: u32, base: Duration, max: Duration, random01: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    half + half.mul_f64(random01.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_combine_global_and_job() {
        let on = RetrySettings {
            limit_retries: true,
            max_retries: 3,
        };
        assert_eq!(on.effective_cap(None), Some(3));
        assert_eq!(on.effective_cap(Some(1)), Some(1));
        assert_eq!(on.effective_cap(Some(9)), Some(3));
        let off = RetrySettings {
            limit_retries: false,
            max_retries: 3,
        };
        assert_eq!(off.effective_cap(None), None);
        assert_eq!(off.effective_cap(Some(5)), Some(5));
    }

    #[test]
    fn settings_range_is_enforced() {
        assert!(
            RetrySettings {
                limit_retries: true,
                max_retries: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            RetrySettings {
                limit_retries: true,
                max_retries: 11
            }
            .validate()
            .is_err()
        );
        assert!(
            RetrySettings {
                limit_retries: false,
                max_retries: 10
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, base, max, 1.0), Duration::from_millis(2000));
        assert_eq!(backoff(30, base, max, 1.0), max);
        assert!(backoff(4, base, max, 0.5) > backoff(3, base, max, 0.5));
    }
}
