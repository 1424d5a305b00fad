//! Liveness and readiness (no auth), and Prometheus metrics: `/metrics` names workers and
//! queues, so it needs an admin token or the dedicated metrics token ([`MetricsAuth`]);
//! [`metrics_router`] serves it without auth for a private listener (`--metrics-bind`).
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::MetricsAuth;
use crate::error::ErrorBody;
use voxfleet_jobs::fleet::GpuStats;

use crate::routes::fleet::{WorkerHealth, queue_views, worker_readings};

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

/// Prometheus text: job counters and durations, retries, queue depths (by status, and queued
/// by priority), worker liveness, and GPU gauges named and labelled as DCGM's exporter does.
///
/// Per-worker and per-GPU series are written from the current readings at each scrape (not
/// kept in the recorder), so a worker that is gone or whose readings expired has no series
/// instead of its last numbers.
///
/// Needs an admin (or super_admin) token or the metrics token (`--metrics-token`): 401
/// without a valid one, 403 for a `user` token.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn metrics(State(st): State<AppState>, _: MetricsAuth) -> Response {
    render(&st).await
}

/// `/metrics` alone, without auth, for a listener on a private address (`--metrics-bind`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(st): State<AppState>| async move { render(&st).await }),
        )
        .fallback(crate::routes::not_found)
        .with_state(state)
}

async fn render(st: &AppState) -> Response {
    if let Ok(queues) = queue_views(st).await {
        for q in queues {
            for (status, v) in [
                ("queued", q.queued),
                ("running", q.running),
                ("retrying", q.retrying),
                ("failed", q.failed),
            ] {
                metrics::gauge!("voxfleet_queue_depth", "queue" => q.queue.clone(), "status" => status).set(v as f64);
            }
            for (priority, v) in [
                ("high", q.queued_by_priority.high),
                ("normal", q.queued_by_priority.normal),
                ("low", q.queued_by_priority.low),
            ] {
                metrics::gauge!("voxfleet_queue_depth_by_priority", "queue" => q.queue.clone(), "priority" => priority).set(v as f64);
            }
            metrics::gauge!("voxfleet_queue_oldest_age_seconds", "queue" => q.queue.clone())
                .set(q.oldest_age_seconds);
        }
    }
    let mut extra = String::new();
    if let Ok(ws) = worker_readings(st).await {
        for state in [
            WorkerHealth::Running,
            WorkerHealth::Draining,
            WorkerHealth::Stopped,
            WorkerHealth::Lost,
        ] {
            let n = ws.iter().filter(|(_, h, _)| *h == state).count();
            let label = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            metrics::gauge!("voxfleet_workers", "state" => label).set(n as f64);
        }
        let up: Vec<(String, bool)> = ws
            .iter()
            .map(|(w, h, _)| {
                let live = matches!(h, WorkerHealth::Running | WorkerHealth::Draining);
                (w.name.clone(), live)
            })
            .collect();
        extra.push_str(&render_worker_up(&up));
        let gpus: Vec<(String, GpuStats)> = ws
            .into_iter()
            .filter(|(_, h, _)| matches!(h, WorkerHealth::Running | WorkerHealth::Draining))
            .filter_map(|(w, _, s)| s.map(|s| (w, s)))
            .flat_map(|(w, s)| {
                let host = if s.host.is_empty() { w.name } else { s.host };
                s.gpus.into_iter().map(move |g| (host.clone(), g))
            })
            .collect();
        extra.push_str(&render_dcgm(&gpus));
    }
    let mut body = st.metrics.render();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(&extra);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// A label value as the Prometheus text format quotes it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `voxfleet_worker_up{worker}`: 1 for a worker running or draining, 0 for one lost or
/// stopped (workers are forgotten an hour after their last heartbeat).
pub fn render_worker_up(workers: &[(String, bool)]) -> String {
    if workers.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP voxfleet_worker_up Whether the worker is alive (heartbeat within three intervals).\n\
         # TYPE voxfleet_worker_up gauge\n",
    );
    for (w, up) in workers {
        out.push_str(&format!(
            "voxfleet_worker_up{{worker=\"{}\"}} {}\n",
            label(w),
            u8::from(*up)
        ));
    }
    out
}

/// DCGM exporter's GPU gauges from (host, reading) pairs: utilisation (%), framebuffer used
/// and free (MiB), temperature (°C) and power (W), labelled `gpu`, `UUID`, `modelName`,
/// `Hostname`. Two workers on one host see the same GPUs: each GPU is written once.
pub fn render_dcgm(gpus: &[(String, GpuStats)]) -> String {
    let mut seen = std::collections::HashSet::new();
    let gpus: Vec<&(String, GpuStats)> = gpus
        .iter()
        .filter(|(host, g)| {
            let id = if g.uuid.is_empty() {
                g.index.to_string()
            } else {
                g.uuid.clone()
            };
            seen.insert((host.clone(), id))
        })
        .collect();
    if gpus.is_empty() {
        return String::new();
    }
    const MIB: u64 = 1 << 20;
    type Value = fn(&GpuStats) -> Option<String>;
    let families: [(&str, &str, Value); 5] = [
        ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", |g| {
            g.utilization_percent.map(|v| v.to_string())
        }),
        (
            "DCGM_FI_DEV_FB_USED",
            "Framebuffer memory used (in MiB).",
            |g| Some((g.memory_used_bytes / MIB).to_string()),
        ),
        (
            "DCGM_FI_DEV_FB_FREE",
            "Framebuffer memory free (in MiB).",
            |g| Some((g.memory_free_bytes / MIB).to_string()),
        ),
        ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", |g| {
            g.temperature_celsius.map(|v| v.to_string())
        }),
        ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", |g| {
            g.power_watts.map(|v| v.to_string())
        }),
    ];
    let mut out = String::new();
    for (name, help, value) in families {
        let lines: Vec<String> = gpus
            .iter()
            .filter_map(|(host, g)| {
                value(g).map(|v| {
                    format!(
                        "{name}{{gpu=\"{}\",UUID=\"{}\",modelName=\"{}\",Hostname=\"{}\"}} {v}\n",
                        g.index,
                        label(&g.uuid),
                        label(&g.name),
                        label(host)
                    )
                })
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for l in lines {
            out.push_str(&l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, uuid: &str) -> GpuStats {
        GpuStats {
            index,
            uuid: uuid.into(),
            name: "NVIDIA \"A\" 10".into(),
            memory_total_bytes: 24 << 30,
            memory_used_bytes: (3 << 30) + 5,
            memory_free_bytes: 21 << 30,
            utilization_percent: Some(40),
            temperature_celsius: None,
            power_watts: Some(70.25),
            healthy: true,
        }
    }

    #[test]
    fn dcgm_gauges_carry_the_four_labels_in_dcgm_units_once_per_gpu() {
        let text = render_dcgm(&[
            ("h1".into(), gpu(0, "GPU-a")),
            ("h1".into(), gpu(0, "GPU-a")),
            ("h2".into(), gpu(1, "GPU-b")),
        ]);
        let labels = r#"{gpu="0",UUID="GPU-a",modelName="NVIDIA \"A\" 10",Hostname="h1"}"#;
        assert!(
            text.contains(&format!("DCGM_FI_DEV_FB_USED{labels} 3072\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("DCGM_FI_DEV_FB_FREE{labels} 21504\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("DCGM_FI_DEV_GPU_UTIL{labels} 40\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("DCGM_FI_DEV_POWER_USAGE{labels} 70.25\n")),
            "{text}"
        );
        // no temperature reading: no series (rather than a made-up 0)
        assert!(!text.contains("DCGM_FI_DEV_GPU_TEMP"), "{text}");
        assert_eq!(text.matches("DCGM_FI_DEV_FB_USED{").count(), 2, "{text}");
        assert_eq!(text.matches("# TYPE DCGM_FI_DEV_FB_USED gauge").count(), 1);
        assert_eq!(render_dcgm(&[]), "");
    }

    #[test]
    fn worker_up_is_one_for_live_workers() {
        let text = render_worker_up(&[("a".into(), true), ("b".into(), false)]);
        assert!(
            text.contains("voxfleet_worker_up{worker=\"a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("voxfleet_worker_up{worker=\"b\"} 0\n"),
            "{text}"
        );
    }
}
