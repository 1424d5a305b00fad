//! What a worker publishes about itself in its heartbeat (stored in Redis with a TTL), and how
//! the control plane reads it back.
//!
//! Two keys per worker: the heartbeat ([`WorkerInfo`], kept an hour so a dead worker is listed
//! `lost`) and its readings ([`NodeStats`]: GPUs through NVML, CPU/memory/disks through
//! sysinfo), which expire a few heartbeats after the last write. The heartbeat rewrites the
//! readings every beat; a `collect_stats` job rewrites them on demand. A reader that finds a
//! live worker without readings reports it stale rather than showing old numbers.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::QueueError;
use crate::model::{JobId, QueueName};
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

impl GpuStats {
    /// The device at `index` that NVML could not read this time: no figures, not healthy.
    pub fn unreadable(index: u32) -> Self {
        Self {
            index,
            uuid: String::new(),
            name: String::new(),
            memory_total_bytes: 0,
            memory_used_bytes: 0,
            memory_free_bytes: 0,
            utilization_percent: None,
            temperature_celsius: None,
            power_watts: None,
            healthy: false,
        }
    }
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadedModel {
    pub name: String,
    pub device: String,
    /// Bytes of weights held (host or device memory).
    pub bytes: u64,
    /// Whisper's engine (`ct2`, `candle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// CTranslate2's compute type (`int8`, `float32`, `float16`, `int8_float16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_type: Option<String>,
    /// Seconds since a job last asked for it (Whisper models; unloaded past the worker's
    /// `--unload-idle-after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_s: Option<u64>,
    /// Jobs using it now.
    #[serde(default)]
    pub in_use: u32,
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiskStats {
    pub mount_point: String,
    pub file_system: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// `total_bytes - available_bytes`.
    pub used_bytes: u64,
}

/// A host's CPU, memory and disks as sysinfo reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemStats {
    pub host: String,
    /// Usage of all logical CPUs together, 0–100, over the interval since the previous
    /// reading (at least `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`).
    pub cpu_percent: f32,
    /// Usage of each logical CPU, 0–100, over the same interval.
    pub cpu_per_core: Vec<f32>,
    pub memory_total_bytes: u64,
    /// What the OS reports in use (total minus free, buffers and caches).
    pub memory_used_bytes: u64,
    pub memory_available_bytes: u64,
    pub disks: Vec<DiskStats>,
    pub sampled_at: DateTime<Utc>,
}

/// Who wrote a worker's readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    Heartbeat,
    CollectStats,
}

/// A worker's latest readings, stored under `Keys::stats(worker)` with a TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeStats {
    pub worker: String,
    pub host: String,
    pub gpus: Vec<GpuStats>,
    /// None when the worker could not sample its host this time.
    pub system: Option<SystemStats>,
    pub collected_at: DateTime<Utc>,
    pub source: StatsSource,
}

/// How long the readings written with a heartbeat stay: three intervals, the same silence
/// after which the control plane reports the worker `lost`.
pub fn heartbeat_stats_ttl(heartbeat_interval_s: u64) -> Duration {
    Duration::from_secs(heartbeat_interval_s.max(1) * 3)
}

/// How long the readings of a `collect_stats` job stay (the next heartbeat replaces them).
pub const COLLECTED_STATS_TTL: Duration = Duration::from_secs(120);

/// Samples the host with sysinfo. Keep one and sample it repeatedly: CPU usage is the
/// difference between two readings, so the first sample waits
/// `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` between two refreshes, later ones need not.
pub struct SystemSampler {
    sys: sysinfo::System,
    disks: sysinfo::Disks,
    host: String,
    last_cpu: Option<Instant>,
}

impl SystemSampler {
    /// None where sysinfo does not support the platform.
    pub fn new() -> Option<Self> {
        let sys = sysinfo::System::new().ok()?;
        let disks = sysinfo::Disks::new().ok()?;
        Some(Self {
            sys,
            disks,
            host: sysinfo::System::host_name().unwrap_or_default(),
            last_cpu: None,
        })
    }

    /// A reading of the host (blocking: it may sleep up to the minimum CPU interval).
    pub fn sample(&mut self) -> SystemStats {
        let min = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;
        match self.last_cpu {
            None => {
                self.sys.refresh_cpu_usage();
                std::thread::sleep(min);
            }
            Some(t) if t.elapsed() < min => std::thread::sleep(min - t.elapsed()),
            Some(_) => {}
        }
        self.sys.refresh_cpu_usage();
        self.last_cpu = Some(Instant::now());
        self.sys.refresh_memory();
        self.disks.refresh(true);
        let mut disks: Vec<DiskStats> = Vec::new();
        for d in &self.disks {
            let mount_point = d.mount_point().to_string_lossy().into_owned();
            if disks.iter().any(|x| x.mount_point == mount_point) {
                continue;
            }
            let (total, avail) = (d.total_space(), d.available_space());
            disks.push(DiskStats {
                mount_point,
                file_system: d.file_system().to_string_lossy().into_owned(),
                total_bytes: total,
                available_bytes: avail,
                used_bytes: total.saturating_sub(avail),
            });
        }
        SystemStats {
            host: self.host.clone(),
            cpu_percent: self.sys.global_cpu_usage(),
            cpu_per_core: self.sys.cpus().iter().map(|c| c.usage()).collect(),
            memory_total_bytes: self.sys.total_memory(),
            memory_used_bytes: self.sys.used_memory(),
            memory_available_bytes: self.sys.available_memory(),
            disks,
            sampled_at: Utc::now(),
        }
    }
}

/// Samples on a blocking thread, so a hung mount cannot stall the caller. None when the
/// sampler is busy (a previous sample still hangs) or the sample takes longer than `timeout`.
pub async fn sample_system(
    sampler: &Arc<Mutex<SystemSampler>>,
    timeout: Duration,
) -> Option<SystemStats> {
    let s = sampler.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut g = s.try_lock().ok()?;
        Some(g.sample())
    });
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(r)) => r,
        _ => None,
    }
}

impl QueueClient {
    /// Publishes a heartbeat; it expires after `ttl`, so a dead worker disappears. The GPU
    /// readings in `info` are also written as the worker's [`NodeStats`] (without host
    /// readings; see [`QueueClient::heartbeat_with`]).
    pub async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<(), QueueError> {
        self.heartbeat_with(info, ttl, None).await
    }

    /// Publishes a heartbeat and, in the same round trip, the worker's readings (its GPUs
    /// from `info`, and `system`), which expire after [`heartbeat_stats_ttl`]. A stopped
    /// worker's readings are deleted.
    pub async fn heartbeat_with(
        &self,
        info: &WorkerInfo,
        ttl: Duration,
        system: Option<SystemStats>,
    ) -> Result<(), QueueError> {
        let mut c = self.connection();
        let body = serde_json::to_string(info).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.set_ex(self.keys().worker(&info.name), body, ttl.as_secs().max(1))
            .ignore()
            .zadd(
                self.keys().workers(),
                &info.name,
                info.last_heartbeat.timestamp_millis(),
            )
            .ignore();
        let stats_key = self.keys().stats(&info.name);
        if info.state == WorkerState::Stopped {
            pipe.del(stats_key).ignore();
        } else {
            let stats = NodeStats {
                worker: info.name.clone(),
                host: info.host.clone(),
                gpus: info.gpus.clone(),
                system,
                collected_at: info.last_heartbeat,
                source: StatsSource::Heartbeat,
            };
            let ttl = heartbeat_stats_ttl(info.heartbeat_interval_s);
            pipe.set_ex(
                stats_key,
                serde_json::to_string(&stats).unwrap_or_default(),
                ttl.as_secs(),
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Writes a worker's readings; they expire after `ttl`.
    pub async fn put_node_stats(&self, stats: &NodeStats, ttl: Duration) -> Result<(), QueueError> {
        let mut c = self.connection();
        let body = serde_json::to_string(stats).unwrap_or_default();
        let _: () = c
            .set_ex(self.keys().stats(&stats.worker), body, ttl.as_secs().max(1))
            .await?;
        Ok(())
    }

    /// The readings of each worker in `workers`, in order; None where they expired (or were
    /// never written, or do not parse).
    pub async fn node_stats(
        &self,
        workers: &[String],
    ) -> Result<Vec<Option<NodeStats>>, QueueError> {
        if workers.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<String> = workers.iter().map(|w| self.keys().stats(w)).collect();
        let mut c = self.connection();
        let bodies: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query_async(&mut c).await?;
        Ok(bodies
            .into_iter()
            .map(|b| b.and_then(|b| serde_json::from_str(&b).ok()))
            .collect())
    }

    /// Asks for one stats refresh between concurrent readers: records `job` as the refresh
    /// for `ttl` unless another reader did. Returns None when `job` is now the refresh (the
    /// caller submits it), or the id of the refresh already asked for.
    pub async fn claim_stats_refresh(
        &self,
        job: &JobId,
        ttl: Duration,
    ) -> Result<Option<String>, QueueError> {
        let mut c = self.connection();
        let key = self.keys().stats_refresh();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(job.to_string())
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut c)
            .await?;
        if set.is_some() {
            return Ok(None);
        }
        let existing: Option<String> = c.get(&key).await?;
        Ok(Some(existing.unwrap_or_default()))
    }

    /// Forgets a refresh whose job could not be submitted.
    pub async fn release_stats_refresh(&self) -> Result<(), QueueError> {
        let mut c = self.connection();
        let _: () = c.del(self.keys().stats_refresh()).await?;
        Ok(())
    }

    /// The lease deadline (ms) of each job, in order; None where the job holds no lease.
    pub async fn lease_deadlines(
        &self,
        items: &[(QueueName, JobId)],
    ) -> Result<Vec<Option<i64>>, QueueError> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let mut pipe = redis::pipe();
        for (q, id) in items {
            pipe.zscore(self.keys().queue(q).leases(), id.to_string());
        }
        let mut c = self.connection();
        let scores: Vec<Option<f64>> = pipe.query_async(&mut c).await?;
        Ok(scores.into_iter().map(|s| s.map(|v| v as i64)).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_outlive_a_heartbeat_by_the_lost_margin() {
        assert_eq!(heartbeat_stats_ttl(5), Duration::from_secs(15));
        assert_eq!(heartbeat_stats_ttl(0), Duration::from_secs(3));
    }

    #[test]
    fn the_sampler_reads_cpus_memory_and_disks() {
        let Some(mut s) = SystemSampler::new() else {
            return;
        };
        let a = s.sample();
        assert!(!a.cpu_per_core.is_empty());
        assert!(a.memory_total_bytes > 0);
        assert!(a.memory_used_bytes <= a.memory_total_bytes);
        assert!((0.0..=100.0).contains(&a.cpu_percent), "{}", a.cpu_percent);
        assert!(a.cpu_per_core.iter().all(|c| (0.0..=100.0).contains(c)));
        let b = s.sample();
        assert_eq!(a.cpu_per_core.len(), b.cpu_per_core.len());
        let json = serde_json::to_string(&NodeStats {
            worker: "w".into(),
            host: "h".into(),
            gpus: vec![],
            system: Some(b),
            collected_at: Utc::now(),
            source: StatsSource::CollectStats,
        })
        .unwrap();
        let back: NodeStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back.source, StatsSource::CollectStats);
        assert!(json.contains("\"source\":\"collect_stats\""), "{json}");
    }
}
