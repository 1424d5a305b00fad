//! `retention`: files past the age limit deleted (the worker's `handlers/retention.rs`).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{DefaultQueue, JobKind, Kind, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionInput {
    /// Count what would be deleted, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Evaluate the age limit as of this instant instead of now (previews of a future day,
    /// and tests of a day with a DST change). Only the past of this instant is considered.
    #[serde(default)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// A drill for crash safety: after this many files, the worker stops in the middle of the
    /// next file (its object deleted, its rows not yet) and waits to be killed. Honoured only
    /// by a worker started with `--allow-crash`.
    #[serde(default)]
    pub stall_after: Option<u32>,
}

impl Kind for RetentionInput {
    const KIND: JobKind = JobKind::Retention;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 720;
    const SECTION: Option<Section> = Some(Section::Retention);
}
