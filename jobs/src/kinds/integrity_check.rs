//! `integrity_check`: index documents whose PostgreSQL rows are gone, found and deleted.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{DefaultQueue, JobKind, Kind, Section};

/// Scans every index for documents whose PostgreSQL rows are gone and deletes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrityCheckInput {
    /// Report orphans without deleting them.
    #[serde(default)]
    pub dry_run: bool,
}

impl Kind for IntegrityCheckInput {
    const KIND: JobKind = JobKind::IntegrityCheck;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 720;
    const SECTION: Option<Section> = Some(Section::Integrity);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{JobInput, JobKind};
    use serde_json::json;

    #[test]
    fn integrity_payloads_are_checked() {
        let k = JobKind::IntegrityCheck;
        assert_eq!(
            k.parse_input(&json!({})).unwrap(),
            JobInput::IntegrityCheck(IntegrityCheckInput { dry_run: false })
        );
        assert_eq!(
            k.parse_input(&json!({"dry_run": true})).unwrap(),
            JobInput::IntegrityCheck(IntegrityCheckInput { dry_run: true })
        );
        assert!(k.parse_input(&json!({"dry_run": 1})).is_err());
        assert!(k.parse_input(&json!({"bogus": true})).is_err());
    }
}
