//! Admin dashboards: system statistics (`GET /v1/stats`) and task health
//! (`GET /v1/tasks/health`). Counts come from PostgreSQL (definitions in
//! `voxfleet_store::stats`); worker readings from their Redis stats keys; the control plane's own
//! host from sysinfo at request time.
//!
//! A live worker whose readings expired is reported `stale`, without numbers, and the reader
//! submits one `collect_stats` job (concurrent readers share it through a `SET NX EX` key) and
//! returns its id as `refresh_job`. A lost or stopped worker is `offline`: nobody can refresh it.
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_jobs::fleet::{
    GpuStats, LoadedModel, NodeStats, StatsSource, SystemSampler, SystemStats, WorkerInfo,
    sample_system,
};
use voxfleet_jobs::{JobId, JobKind, Priority, QueueName};
use voxfleet_store::costs::{UsageCost, UserCost};
use voxfleet_store::stats::{FileStats, RecentJob, SpeakerStats, TaskStats, UserStats};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiQuery;
use crate::routes::fleet::{WorkerHealth, worker_readings};
use crate::services::recovery::{StuckReason, stuck_reason};

/// How long a refresh asked for by one reader covers the others.
const REFRESH_DEDUPE: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// The window of the `recent` counts, in days: 1–365, default 7.
    pub days: Option<i64>,
    /// The month of the `usage` section, `YYYY-MM` in the budgets' timezone; default: this
    /// month.
    pub month: Option<String>,
}

/// A month's usage and estimated cost: in all, by connector and by user.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthUsage {
    /// `YYYY-MM`, in the budgets' timezone (`/v1/settings/budgets`).
    pub month: String,
    #[serde(flatten)]
    pub totals: UsageCost,
    /// Users with any usage in the month, most expensive first.
    pub by_user: Vec<UserCost>,
}

/// `YYYY-MM` as (year, month).
fn parse_month(s: &str) -> Option<(i32, u32)> {
    let (y, m) = s.split_once('-')?;
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(y, 4) || !digits(m, 2) {
        return None;
    }
    let (y, m) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&m).then_some((y, m))
}

/// Whether a worker's readings can be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readings {
    /// Written by a heartbeat or a `collect_stats` job within their TTL.
    Fresh,
    /// The worker is alive but its readings expired: no numbers, a refresh was asked for.
    Stale,
    /// The worker is lost or stopped: no numbers.
    Offline,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerModels {
    pub worker: String,
    pub state: WorkerHealth,
    /// Models loaded in the worker's cache, once per device.
    pub models: Vec<LoadedModel>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerSystem {
    pub worker: String,
    pub host: String,
    pub state: WorkerHealth,
    pub readings: Readings,
    /// Only with fresh readings (and None where the worker could not sample its host).
    pub system: Option<SystemStats>,
    pub collected_at: Option<DateTime<Utc>>,
    pub source: Option<StatsSource>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerGpus {
    pub worker: String,
    pub host: String,
    pub state: WorkerHealth,
    pub readings: Readings,
    /// Only with fresh readings; empty for a worker without an NVIDIA GPU.
    pub gpus: Vec<GpuStats>,
    pub collected_at: Option<DateTime<Utc>>,
    pub source: Option<StatsSource>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemResources {
    /// The host of the control plane answering, sampled now (None where sysinfo cannot).
    pub control_plane: Option<SystemStats>,
    pub workers: Vec<WorkerSystem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemStatsView {
    pub generated_at: DateTime<Utc>,
    /// The window of the `recent` counts.
    pub window_days: i64,
    pub users: UserStats,
    pub files: FileStats,
    pub tasks: TaskStats,
    pub speakers: SpeakerStats,
    /// Per worker seen in the last hour.
    pub models: Vec<WorkerModels>,
    pub system: SystemResources,
    /// Per worker seen in the last hour.
    pub gpus: Vec<WorkerGpus>,
    /// The `collect_stats` job asked for because some live worker's readings were stale
    /// (possibly by another reader in the last 30 s); null when all were fresh.
    pub refresh_job: Option<String>,
    /// The month's usage and estimated cost (`month`, default this month).
    pub usage: MonthUsage,
}

/// The control plane's host sampler, kept so each reading covers the time since the last
/// one; the last reading answers when a concurrent request holds the sampler.
struct HostSampler {
    sampler: Option<Arc<Mutex<SystemSampler>>>,
    last: Mutex<Option<SystemStats>>,
}

async fn control_plane_system() -> Option<SystemStats> {
    static S: OnceLock<HostSampler> = OnceLock::new();
    let host = S.get_or_init(|| HostSampler {
        sampler: SystemSampler::new().map(|s| Arc::new(Mutex::new(s))),
        last: Mutex::new(None),
    });
    let fresh = match &host.sampler {
        Some(s) => sample_system(s, Duration::from_secs(3)).await,
        None => None,
    };
    let mut last = host.last.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = &fresh {
        *last = Some(f.clone());
    }
    fresh.or_else(|| last.clone())
}

/// Submits one `collect_stats` job unless another reader did within [`REFRESH_DEDUPE`];
/// returns the id of the one that runs. A failure is logged: the caller still answers.
async fn request_refresh(st: &AppState) -> Option<String> {
    let kind = JobKind::CollectStats;
    let job = voxfleet_store::jobs::new_snapshot(
        kind,
        kind.default_queue(),
        Priority::High,
        json!({}),
        None,
        None,
        Some(1),
    );
    let id = job.id;
    match st.queue.claim_stats_refresh(&id, REFRESH_DEDUPE).await {
        Ok(Some(existing)) => return Some(existing),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not ask for a stats refresh");
            return None;
        }
    }
    match crate::services::submit::submit_many(st, vec![job]).await {
        Ok(_) => {
            tracing::info!(job.id = %id, job.kind = kind.as_str(), "stale worker stats: refresh asked for");
            Some(id.to_string())
        }
        Err(e) => {
            tracing::warn!(error = ?e, "could not submit the stats refresh");
            let _ = st.queue.release_stats_refresh().await;
            None
        }
    }
}

fn readings_of(h: WorkerHealth, s: &Option<NodeStats>) -> Readings {
    match (h, s) {
        (WorkerHealth::Lost | WorkerHealth::Stopped, _) => Readings::Offline,
        (_, None) => Readings::Stale,
        (_, Some(_)) => Readings::Fresh,
    }
}

/// Users, files, tasks, speakers, loaded models, system resources and GPUs (admins).
///
/// Definitions: `tasks.success_rate` = succeeded / (succeeded + failed), null when none
/// finished; `tasks.avg_processing_seconds` = mean(finished_at − started_at) over succeeded
/// and failed jobs; `tasks.avg_queue_wait_seconds` = mean(started_at − created_at) over
/// started jobs; `speakers.average_per_file` = speakers / files with speakers; `recent` =
/// created within the last `days` (default 7). Files being deleted are not counted.
/// `usage`: minutes transcribed, LLM tokens and estimated cost in `month` (default this
/// month, in the budgets' timezone), by connector and by user; deleted users' usage stays,
/// with no user id.
#[utoipa::path(get, path = "/v1/stats", tag = "stats", params(StatsQuery),
    responses((status = 200, body = SystemStatsView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn system_stats(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<SystemStatsView>> {
    auth.require(Role::Admin)?;
    let days = q.days.unwrap_or(7);
    if !(1..=365).contains(&days) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "days must be between 1 and 365",
        ));
    }
    let now = Utc::now();
    let budgets = voxfleet_store::budgets::get_budget_settings(&st.pool).await?;
    let (year, month) = match q.month.as_deref() {
        None => budgets.month_of(now),
        Some(m) => parse_month(m).ok_or_else(|| {
            ApiError::new(Code::InvalidQuery, "month must be YYYY-MM, e.g. 2026-11")
        })?,
    };
    let (from, to) = budgets
        .month_range(year, month)
        .ok_or_else(|| ApiError::new(Code::InvalidQuery, "month is out of range"))?;
    let since = now - chrono::Duration::days(days);
    let (users, files, tasks, speakers, totals, by_user) = tokio::try_join!(
        voxfleet_store::stats::users(&st.pool, since),
        voxfleet_store::stats::files(&st.pool, since),
        voxfleet_store::stats::tasks(&st.pool),
        voxfleet_store::stats::speakers(&st.pool),
        voxfleet_store::costs::usage_cost(&st.pool, None, from, to),
        voxfleet_store::costs::usage_by_user(&st.pool, from, to),
    )?;
    let (readings, control_plane) = tokio::join!(worker_readings(&st), control_plane_system());
    let readings = readings?;
    let refresh_job = if readings
        .iter()
        .any(|(_, h, s)| readings_of(*h, s) == Readings::Stale)
    {
        request_refresh(&st).await
    } else {
        None
    };
    let mut models = Vec::new();
    let mut systems = Vec::new();
    let mut gpus = Vec::new();
    for (w, h, s) in readings {
        let r = readings_of(h, &s);
        let s = s.filter(|_| r == Readings::Fresh);
        let WorkerInfo {
            name,
            host,
            models: loaded,
            ..
        } = w;
        models.push(WorkerModels {
            worker: name.clone(),
            state: h,
            models: loaded,
        });
        systems.push(WorkerSystem {
            worker: name.clone(),
            host: host.clone(),
            state: h,
            readings: r,
            system: s.as_ref().and_then(|s| s.system.clone()),
            collected_at: s.as_ref().map(|s| s.collected_at),
            source: s.as_ref().map(|s| s.source),
        });
        gpus.push(WorkerGpus {
            worker: name,
            host,
            state: h,
            readings: r,
            collected_at: s.as_ref().map(|s| s.collected_at),
            source: s.as_ref().map(|s| s.source),
            gpus: s.map(|s| s.gpus).unwrap_or_default(),
        });
    }
    Ok(Json(SystemStatsView {
        generated_at: now,
        window_days: days,
        users,
        files,
        tasks,
        speakers,
        models,
        system: SystemResources {
            control_plane,
            workers: systems,
        },
        gpus,
        refresh_job,
        usage: MonthUsage {
            month: format!("{year:04}-{month:02}"),
            totals,
            by_user,
        },
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// How many recent jobs to list: 1–500, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StuckJob {
    pub id: Uuid,
    pub kind: String,
    pub queue: String,
    pub worker: Option<String>,
    pub file_id: Option<Uuid>,
    pub started_at: Option<DateTime<Utc>>,
    /// Seconds since it started (since it was created when no start is recorded).
    pub age_seconds: f64,
    pub reason: StuckReason,
    /// The kind's maximum run time.
    pub max_runtime_seconds: u64,
    /// When its lease runs out, if it holds one.
    pub lease_deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskHealth {
    pub generated_at: DateTime<Utc>,
    /// Counts by status, success rate and averages over the whole history (definitions as in
    /// `GET /v1/stats`).
    pub counts: TaskStats,
    /// The newest jobs, newest first.
    pub jobs: Vec<RecentJob>,
    /// Running jobs without a live lease, or running past their kind's maximum run time.
    pub stuck: Vec<StuckJob>,
}

/// Recent jobs (status, file, duration, timestamps), counts, success rate, average processing
/// time, and stuck jobs with their age (admins).
#[utoipa::path(get, path = "/v1/tasks/health", tag = "stats", params(HealthQuery),
    responses((status = 200, body = TaskHealth), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn task_health(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<HealthQuery>,
) -> ApiResult<Json<TaskHealth>> {
    auth.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "limit must be between 1 and 500",
        ));
    }
    let (counts, jobs, running) = tokio::try_join!(
        voxfleet_store::stats::tasks(&st.pool),
        voxfleet_store::stats::recent_jobs(&st.pool, limit),
        voxfleet_store::stats::running_jobs(&st.pool, 1000),
    )?;
    Ok(Json(TaskHealth {
        generated_at: Utc::now(),
        counts,
        jobs,
        stuck: stuck_jobs(&st, running).await?,
    }))
}

async fn stuck_jobs(
    st: &AppState,
    running: Vec<voxfleet_store::stats::RunningJob>,
) -> ApiResult<Vec<StuckJob>> {
    // rows whose kind or queue no longer parses cannot hold a lease either
    let items: Vec<(QueueName, JobId)> = running
        .iter()
        .map(|j| {
            (
                j.queue.parse().unwrap_or_else(|_| QueueName::cpu()),
                JobId(j.id),
            )
        })
        .collect();
    let (live, deadlines) =
        tokio::try_join!(st.queue.get_many(&items), st.queue.lease_deadlines(&items))?;
    let now = Utc::now();
    let mut out = Vec::new();
    for ((j, live), deadline) in running.into_iter().zip(live).zip(deadlines) {
        let max = j
            .kind
            .parse::<JobKind>()
            .map_or(Duration::ZERO, JobKind::max_runtime);
        let age = (now - j.started_at.unwrap_or(j.created_at)).num_milliseconds() as f64 / 1000.0;
        let Some(reason) = stuck_reason(
            live.map(|l| l.status),
            deadline,
            Duration::from_secs_f64(age.max(0.0)),
            &j.kind,
        ) else {
            continue;
        };
        out.push(StuckJob {
            id: j.id,
            kind: j.kind,
            queue: j.queue,
            worker: j.worker,
            file_id: j.file_id,
            started_at: j.started_at,
            age_seconds: age,
            reason,
            max_runtime_seconds: max.as_secs(),
            lease_deadline: deadline.and_then(DateTime::from_timestamp_millis),
        });
    }
    out.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_month;

    #[test]
    fn months_are_four_digit_years_and_two_digit_months() {
        assert_eq!(parse_month("2026-11"), Some((2026, 11)));
        for bad in [
            "2026-13", "2026-00", "2026-1", "+202-11", "26-11", "2026/11", "",
        ] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }
}
