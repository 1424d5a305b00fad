//! What a worker publishes about itself in its heartbeat (stored in Redis with a TTL), and how
//! the control plane reads it back.
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::QueueError;
use crate::queue::QueueClient;

/// One GPU as NVML reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GpuStats {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_free_bytes: u64,
    pub utilization_percent: Option<u32>,
    pub temperature_celsius: Option<u32>,
    pub power_watts: Option<f64>,
    /// False when NVML could not read the device this time.
    pub healthy: bool,
}

/// `running` while claiming, `draining` after SIGTERM, `stopped` once it has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Running,
    Draining,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub queues: Vec<String>,
    pub concurrency: u32,
    #[schema(value_type = Vec<String>)]
    pub running: Vec<crate::model::JobId>,
    /// The device the worker runs model work on: `cpu` or `cuda:N`.
    pub device: String,
    pub gpus: Vec<GpuStats>,
    pub state: WorkerState,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Seconds between heartbeats; a worker silent for 3 of them is reported `lost`.
    pub heartbeat_interval_s: u64,
    /// Models loaded in this worker's cache (each once per device) and their memory.
    #[serde(default)]
    pub models: Vec<LoadedModel>,
}

/// A model held in a worker's cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadedModel {
    pub name: String,
    pub device: String,
    /// Bytes of weights held (host or device memory).
    pub bytes: u64,
}

impl QueueClient {
    /// Publishes a heartbeat; it expires after `ttl`, so a dead worker disappears.
    pub async fn heartbeat(
        &self,
        info: &WorkerInfo,
        ttl: std::time::Duration,
    ) -> Result<(), QueueError> {
        let mut c = self.connection();
        let body = serde_json::to_string(info).unwrap_or_default();
        redis::pipe()
            .set_ex(self.keys().worker(&info.name), body, ttl.as_secs().max(1))
            .ignore()
            .zadd(
                self.keys().workers(),
                &info.name,
                info.last_heartbeat.timestamp_millis(),
            )
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// All workers seen within `forget_after`, newest heartbeat first. Entries older than that
    /// are dropped from the registry.
    pub async fn workers(
        &self,
        forget_after: std::time::Duration,
    ) -> Result<Vec<WorkerInfo>, QueueError> {
        let mut c = self.connection();
        let cutoff = crate::model::now_ms() - forget_after.as_millis() as i64;
        let _: () = c.zrembyscore(self.keys().workers(), "-inf", cutoff).await?;
        let names: Vec<String> = c.zrevrange(self.keys().workers(), 0, -1).await?;
        if names.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<String> = names.iter().map(|n| self.keys().worker(n)).collect();
        let bodies: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query_async(&mut c).await?;
        Ok(bodies
            .into_iter()
            .flatten()
            .filter_map(|b| serde_json::from_str(&b).ok())
            .collect())
    }
}
