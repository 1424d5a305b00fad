//! The fleet as operators see it: queues, workers, GPUs.
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use voxfleet_jobs::fleet::{GpuStats, NodeStats, WorkerInfo, WorkerState};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct PriorityCounts {
    pub high: u64,
    pub normal: u64,
    pub low: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    pub queue: String,
    pub queued: u64,
    pub queued_by_priority: PriorityCounts,
    pub running: u64,
    /// Waiting out a retry backoff.
    pub retrying: u64,
    /// Dead-letter: failed jobs kept in PostgreSQL (re-run with POST /v1/jobs/{id}/retry).
    pub failed: u64,
    /// Age of the oldest queued job (0 when none).
    pub oldest_age_seconds: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueView>,
}

pub async fn queue_views(st: &AppState) -> ApiResult<Vec<QueueView>> {
    let failed = voxfleet_store::jobs::failed_counts(&st.pool).await?;
    let now = Utc::now().timestamp_millis();
    let mut out = Vec::new();
    for q in st.queue.known_queues().await? {
        let s = st.queue.stats(&q).await?;
        out.push(QueueView {
            failed: failed
                .iter()
                .find(|(n, _)| n == q.as_str())
                .map_or(0, |(_, c)| *c as u64),
            queue: q.to_string(),
            queued: s.queued,
            queued_by_priority: PriorityCounts {
                high: s.queued_by_priority[0],
                normal: s.queued_by_priority[1],
                low: s.queued_by_priority[2],
            },
            running: s.running,
            retrying: s.retrying,
            oldest_age_seconds: s
                .oldest_queued_at_ms
                .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
        });
    }
    Ok(out)
}

/// Per queue: queued, running, retrying, failed, age of the oldest queued job (admins).
#[utoipa::path(get, path = "/v1/queues", tag = "fleet",
    responses((status = 200, body = QueueList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn queues(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<QueueList>> {
    auth.require(Role::Admin)?;
    Ok(Json(QueueList {
        queues: queue_views(&st).await?,
    }))
}

/// `running`, `draining`, `stopped`, or `lost` (no heartbeat for three intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerHealth {
    Running,
    Draining,
    Stopped,
    Lost,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerView {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub queues: Vec<String>,
    pub concurrency: u32,
    /// Ids of the jobs it is running.
    pub running: Vec<String>,
    pub device: String,
    pub gpu_count: usize,
    /// Models loaded in the worker's cache (once per device) and their memory.
    pub models: Vec<voxfleet_jobs::fleet::LoadedModel>,
    pub state: WorkerHealth,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerView>,
}

/// Workers seen in the last hour; a silent one is `lost`.
pub async fn live_workers(st: &AppState) -> ApiResult<Vec<(WorkerInfo, WorkerHealth)>> {
    let infos = st.queue.workers(Duration::from_secs(3600)).await?;
    let now = Utc::now();
    Ok(infos
        .into_iter()
        .map(|w| {
            let silent = (now - w.last_heartbeat).num_milliseconds() as f64 / 1000.0;
            let limit = (w.heartbeat_interval_s * u64::from(st.limits.lost_after_beats)) as f64;
            let h = match w.state {
                WorkerState::Stopped => WorkerHealth::Stopped,
                _ if silent > limit => WorkerHealth::Lost,
                WorkerState::Draining => WorkerHealth::Draining,
                WorkerState::Running => WorkerHealth::Running,
            };
            (w, h)
        })
        .collect())
}

/// Every worker: queues, concurrency, running jobs, device, last heartbeat, state (admins).
#[utoipa::path(get, path = "/v1/workers", tag = "fleet",
    responses((status = 200, body = WorkerList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn workers(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<WorkerList>> {
    auth.require(Role::Admin)?;
    let workers = live_workers(&st)
        .await?
        .into_iter()
        .map(|(w, state)| WorkerView {
            gpu_count: w.gpus.len(),
            models: w.models,
            running: w.running.iter().map(|i| i.to_string()).collect(),
            name: w.name,
            host: w.host,
            pid: w.pid,
            version: w.version,
            queues: w.queues,
            concurrency: w.concurrency,
            device: w.device,
            state,
            started_at: w.started_at,
            last_heartbeat: w.last_heartbeat,
        })
        .collect();
    Ok(Json(WorkerList { workers }))
}

/// One GPU: its worker, the NVML reading, and when it was taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct GpuView {
    pub worker: String,
    /// `healthy` here also requires the worker to be alive.
    #[serde(flatten)]
    pub stats: GpuStats,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GpuList {
    pub gpus: Vec<GpuView>,
}

/// Every worker seen in the last hour, its state, and its readings (None where they expired:
/// the readings key outlives the last write by three heartbeats, so a reader never gets old
/// numbers).
pub async fn worker_readings(
    st: &AppState,
) -> ApiResult<Vec<(WorkerInfo, WorkerHealth, Option<NodeStats>)>> {
    let ws = live_workers(st).await?;
    let names: Vec<String> = ws.iter().map(|(w, _)| w.name.clone()).collect();
    let mut stats = st.queue.node_stats(&names).await?.into_iter();
    Ok(ws
        .into_iter()
        .map(|(w, h)| (w, h, stats.next().flatten()))
        .collect())
}

/// The GPUs of workers not stopped whose readings have not expired.
pub async fn gpu_views(st: &AppState) -> ApiResult<Vec<GpuView>> {
    Ok(gpus_of(worker_readings(st).await?))
}

pub fn gpus_of(readings: Vec<(WorkerInfo, WorkerHealth, Option<NodeStats>)>) -> Vec<GpuView> {
    readings
        .into_iter()
        .filter(|(_, h, _)| *h != WorkerHealth::Stopped)
        .filter_map(|(w, h, s)| s.map(|s| (w, h, s)))
        .flat_map(|(w, h, s)| {
            let alive = h != WorkerHealth::Lost;
            let at = s.collected_at;
            let name = w.name;
            s.gpus.into_iter().map(move |mut g| {
                g.healthy &= alive;
                GpuView {
                    worker: name.clone(),
                    stats: g,
                    updated_at: at,
                }
            })
        })
        .collect()
}

/// Every GPU of every worker whose NVML readings are fresh (admins).
#[utoipa::path(get, path = "/v1/gpus", tag = "fleet",
    responses((status = 200, body = GpuList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn gpus(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<GpuList>> {
    auth.require(Role::Admin)?;
    Ok(Json(GpuList {
        gpus: gpu_views(&st).await?,
    }))
}
