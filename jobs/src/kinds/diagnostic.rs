//! `diagnostic`: sleeps, fails or crashes on request (a smoke test and a no-op for benchmarks).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{DefaultQueue, InputError, JobKind, Kind, Section};

/// How a `diagnostic` job fails, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticFail {
    #[default]
    Never,
    /// Every attempt fails with a retryable error.
    Always,
    /// The first attempt fails with a retryable error; later ones succeed.
    FirstAttempt,
    /// Fails at once with a permanent (bad input) error: no retry.
    Permanent,
    /// The handler panics (a drill for handler bugs): the job fails with `handler_panic`.
    Panic,
}

/// The `diagnostic` kind: operators' smoke test and benchmarkers' no-op job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticInput {
    /// Total time to sleep, spread over the steps (0–3,600,000 ms).
    #[serde(default)]
    pub sleep_ms: u64,
    #[serde(default)]
    pub fail: DiagnosticFail,
    /// Abort the worker process mid-job. Honoured only by a worker started with `--allow-crash`.
    #[serde(default)]
    pub crash: bool,
    /// Progress steps (1–10,000).
    #[serde(default = "one")]
    pub steps: u32,
}

fn one() -> u32 {
    1
}

impl DiagnosticInput {
    pub const MAX_SLEEP_MS: u64 = 3_600_000;
    pub const MAX_STEPS: u32 = 10_000;
}

impl Kind for DiagnosticInput {
    const KIND: JobKind = JobKind::Diagnostic;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 60;
    const SECTION: Option<Section> = None;
    fn check(&self) -> Result<(), InputError> {
        if self.sleep_ms > Self::MAX_SLEEP_MS {
            return Err(InputError(format!(
                "sleep_ms must be at most {}",
                Self::MAX_SLEEP_MS
            )));
        }
        if self.steps == 0 || self.steps > Self::MAX_STEPS {
            return Err(InputError(format!(
                "steps must be between 1 and {}",
                Self::MAX_STEPS
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{JobInput, JobKind};
    use serde_json::json;

    #[test]
    fn diagnostic_payloads_are_checked() {
        let k = JobKind::Diagnostic;
        let JobInput::Diagnostic(d) = k.parse_input(&json!({})).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(
            (d.sleep_ms, d.fail, d.crash, d.steps),
            (0, DiagnosticFail::Never, false, 1)
        );
        assert!(k.parse_input(&json!({"sleep_ms": "ten"})).is_err());
        assert!(k.parse_input(&json!({"steps": 0})).is_err());
        assert!(k.parse_input(&json!({"fail": "sometimes"})).is_err());
        assert!(k.parse_input(&json!({"bogus": 1})).is_err());
        assert!(k.parse_input(&json!([1, 2])).is_err());
    }
}
