//! `collect_stats`: GPU and system statistics sampled into PostgreSQL.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{DefaultQueue, JobKind, Kind, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectStatsInput {}

impl Kind for CollectStatsInput {
    const KIND: JobKind = JobKind::CollectStats;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 5;
    const SECTION: Option<Section> = None;
}
