//! voxfleet-control-plane: the HTTP API over the job queues and the fleet.
//!
//! - [`app`] builds the axum `Router` from an [`AppState`] (tests drive it without a socket);
//!   [`serve`] runs it on a listener until a shutdown future resolves.
//! - `services/`: what routes, the scheduler and uploads do, without HTTP (submission,
//!   job reads, maintenance sections); `views`: the job as the API shows it.
//! - `routes/`: one module per resource (jobs, events, fleet: queues/workers/GPUs, settings,
//!   health and metrics); `error` maps every error code to its HTTP status in one table;
//!   `auth` turns bearer tokens into roles; `extract` makes body/query rejections speak the
//!   API's error format; `background` runs the reaper, the persist sweeper and the Redis
//!   pub/sub listener that feeds server-sent events and metrics; `openapi` the spec.
pub mod auth;
pub mod background;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod form;
pub mod openapi;
pub mod routes;
pub mod scheduler;
pub mod search;
pub mod server;
pub mod services;
pub mod transcript;
pub mod upload;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::broadcast;
use voxfleet_jobs::{JobEvent, QueueClient};
use voxfleet_store::PgPool;
use voxfleet_store::media::MediaStore;
use voxfleet_store::settings::RetrySettingsSource;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub queue: QueueClient,
    pub pool: PgPool,
    pub settings: RetrySettingsSource,
    pub events: broadcast::Sender<JobEvent>,
    pub tokens: Arc<auth::TokenCache>,
    pub metrics: PrometheusHandle,
    pub limits: Limits,
    /// Where media objects live.
    pub media: MediaStore,
    /// Cancelled at shutdown: ends open event streams so the server can stop.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The search index and the query model; `None` until [`AppState::with_search`] (the
    /// search and maintenance routes answer 503 without it).
    pub search: Option<Arc<search::SearchState>>,
    /// The dedicated `/metrics` token (`--metrics-token`); admin tokens scrape too.
    pub metrics_token: Option<auth::MetricsToken>,
}

impl AppState {
    /// The search index, or 503 `unavailable` on a control plane without one.
    pub fn search_index(&self) -> error::ApiResult<Arc<search::SearchState>> {
        self.search.clone().ok_or_else(|| {
            error::ApiError::new(
                error::Code::Unavailable,
                "this control plane has no search index configured",
            )
        })
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (default 1 MiB).
    pub max_body_bytes: usize,
    /// Most submissions per batch call (1,000).
    pub max_batch: usize,
    /// Heartbeats older than this many intervals mark a worker `lost` (3).
    pub lost_after_beats: u32,
    /// Largest media file accepted by upload (2 GiB).
    pub max_upload_bytes: u64,
    /// Where uploads are spooled while they are hashed and probed (the system temp folder).
    pub spool_dir: std::path::PathBuf,
    /// How long `POST /v1/audio/transcriptions` waits for its job (10 minutes).
    pub openai_wait: Duration,
    /// How often this replica's scheduler looks at the recurring jobs (1 s); `None`: this
    /// replica runs no scheduler.
    pub scheduler_tick: Option<Duration>,
    /// A request head must arrive within this (10 s), or the connection is closed; an idle
    /// keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long (30 s) is answered 408.
    pub body_idle_timeout: Duration,
    /// A job PostgreSQL has held as waiting this long (60 s) that Redis has no record of is
    /// queued again (see `voxfleet_store::reaper::requeue_lost`).
    pub requeue_lost_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_batch: 1000,
            lost_after_beats: 3,
            max_upload_bytes: 2 << 30,
            spool_dir: std::env::temp_dir(),
            openai_wait: Duration::from_secs(600),
            scheduler_tick: Some(Duration::from_secs(1)),
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            requeue_lost_after: Duration::from_secs(60),
        }
    }
}

impl AppState {
    pub fn new(
        queue: QueueClient,
        pool: PgPool,
        metrics: PrometheusHandle,
        limits: Limits,
        media: MediaStore,
    ) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            queue,
            settings: RetrySettingsSource::new(pool.clone()),
            pool,
            events,
            tokens: Arc::new(auth::TokenCache::default()),
            metrics,
            limits,
            media,
            shutdown: tokio_util::sync::CancellationToken::new(),
            search: None,
            metrics_token: None,
        }
    }

    pub fn with_search(mut self, search: search::SearchState) -> Self {
        self.search = Some(Arc::new(search));
        self
    }
}

/// The whole API as a router.
pub fn app(state: AppState) -> Router {
    // Multipart framing on top of the file itself.
    let max_upload = usize::try_from(state.limits.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 << 10);
    let body_limits = extract::BodyLimits {
        body: state.limits.max_body_bytes as u64,
        media: max_upload as u64,
    };
    let (router, api) = openapi::router(max_upload).split_for_parts();
    let api = Arc::new(api);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let api = api.clone();
                async move { axum::Json((*api).clone()) }
            }),
        )
        .route("/", axum::routing::get(dashboard::index))
        .route("/admin", axum::routing::get(dashboard::index))
        .route("/admin/{*page}", axum::routing::get(dashboard::index))
        .route("/assets/{name}", axum::routing::get(dashboard::asset))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        // Outermost last: the body idle timeout wraps every body; rejections the framework
        // answers in plain text get the API's format; a Content-Length over the route's
        // limit is 413 before anything else runs.
        .layer(axum::middleware::from_fn_with_state(
            body_limits,
            extract::early_limit,
        ))
        .layer(axum::middleware::from_fn(extract::error_format))
        .layer(axum::middleware::from_fn(extract::close_unread))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.limits.body_idle_timeout,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, with the background tasks.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let tasks = background::spawn_all(state.clone(), stop.clone());
    let streams = state.shutdown.clone();
    let header_read_timeout = state.limits.header_read_timeout;
    let res = server::run(listener, app(state), header_read_timeout, async move {
        shutdown.await;
        streams.cancel();
    })
    .await;
    stop.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    res
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "voxfleet_job_duration_seconds".into(),
                    ),
                    &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0],
                )
                .and_then(|b| b.install_recorder())
                .unwrap_or_else(|_| {
                    metrics_exporter_prometheus::PrometheusBuilder::new()
                        .build_recorder()
                        .handle()
                })
        })
        .clone()
}
