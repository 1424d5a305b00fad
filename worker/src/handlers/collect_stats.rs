//! `collect_stats`: a fresh reading of this worker's GPUs (NVML) and host (sysinfo: CPU per
//! core and together, memory, disks). It replaces the worker's readings in Redis (kept for
//! `COLLECTED_STATS_TTL`, until the next heartbeat rewrites them) and is the job's result.
//! The control plane submits one when a reader finds a live worker's readings expired.
use chrono::Utc;
use serde_json::Value;
use voxfleet_jobs::CollectStatsInput;
use voxfleet_jobs::HandlerError;
use voxfleet_jobs::fleet::{COLLECTED_STATS_TTL, NodeStats, StatsSource, SystemSampler};

use crate::context::JobContext;

pub async fn run(ctx: &JobContext, _input: CollectStatsInput) -> Result<Value, HandlerError> {
    let rt = &ctx.rt;
    let gpus = rt.gpus.clone();
    // NVML and /proc reads block, and a CPU reading needs two samples apart: off the runtime
    let (gpus, system) = tokio::task::spawn_blocking(move || {
        (gpus.stats(), SystemSampler::new().map(|mut s| s.sample()))
    })
    .await
    .map_err(|e| HandlerError::retryable("stats_unavailable", e.to_string()))?;
    ctx.checkpoint()?;
    let stats = NodeStats {
        worker: rt.name.clone(),
        host: rt.host.clone(),
        gpus,
        system,
        collected_at: Utc::now(),
        source: StatsSource::CollectStats,
    };
    rt.queue
        .put_node_stats(&stats, COLLECTED_STATS_TTL)
        .await
        .map_err(|e| HandlerError::retryable("redis_unavailable", e.to_string()))?;
    serde_json::to_value(&stats).map_err(|e| HandlerError::permanent("internal", e.to_string()))
}
