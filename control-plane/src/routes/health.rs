//! Liveness, readiness and Prometheus metrics (no auth).
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::routes::fleet::{WorkerHealth, gpu_views, live_workers, queue_views};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub redis: String,
    pub postgres: String,
}

/// Readiness: Redis and PostgreSQL both answer (503 otherwise, saying which does not).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(st): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let t = Duration::from_secs(2);
    let redis = match tokio::time::timeout(t, st.queue.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "timeout".into(),
    };
    let pg = match tokio::time::timeout(t, sqlx_ping(&st)).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "timeout".into(),
    };
    let ok = redis == "ok" && pg == "ok";
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Readiness {
            status: if ok { "ready" } else { "not_ready" }.into(),
            redis,
            postgres: pg,
        }),
    )
}

async fn sqlx_ping(st: &AppState) -> Result<(), voxfleet_store::StoreError> {
    voxfleet_store::settings::get_retry(&st.pool)
        .await
        .map(|_| ())
}

/// Prometheus text: job counters and durations, queue depths, workers, GPU gauges named as
/// DCGM's exporter names them.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Ok(queues) = queue_views(&st).await {
        for q in queues {
            for (status, v) in [
                ("queued", q.queued),
                ("running", q.running),
                ("retrying", q.retrying),
                ("failed", q.failed),
            ] {
                metrics::gauge!("voxfleet_queue_depth", "queue" => q.queue.clone(), "status" => status).set(v as f64);
            }
            metrics::gauge!("voxfleet_queue_oldest_age_seconds", "queue" => q.queue.clone())
                .set(q.oldest_age_seconds);
        }
    }
    if let Ok(ws) = live_workers(&st).await {
        for state in [
            WorkerHealth::Running,
            WorkerHealth::Draining,
            WorkerHealth::Stopped,
            WorkerHealth::Lost,
        ] {
            let n = ws.iter().filter(|(_, h)| *h == state).count();
            let label = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            metrics::gauge!("voxfleet_workers", "state" => label).set(n as f64);
        }
    }
    if let Ok(gpus) = gpu_views(&st).await {
        for g in gpus {
            let labels = [
                ("gpu", g.stats.index.to_string()),
                ("UUID", g.stats.uuid.clone()),
                ("Hostname", g.worker.clone()),
                ("modelName", g.stats.name.clone()),
            ];
            let g = g.stats;
            metrics::gauge!("DCGM_FI_DEV_FB_USED", &labels)
                .set((g.memory_used_bytes / (1 << 20)) as f64);
            metrics::gauge!("DCGM_FI_DEV_FB_FREE", &labels)
                .set((g.memory_free_bytes / (1 << 20)) as f64);
            if let Some(u) = g.utilization_percent {
                metrics::gauge!("DCGM_FI_DEV_GPU_UTIL", &labels).set(f64::from(u));
            }
            if let Some(t) = g.temperature_celsius {
                metrics::gauge!("DCGM_FI_DEV_GPU_TEMP", &labels).set(f64::from(t));
            }
            if let Some(p) = g.power_watts {
                metrics::gauge!("DCGM_FI_DEV_POWER_USAGE", &labels).set(p);
            }
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        st.metrics.render(),
    )
}
