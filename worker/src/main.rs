//! voxfleet-worker: pulls jobs from Redis queues and runs them.
//!
//! - `fetch`: claims jobs (atomic Lua claim with a lease) only while a slot is free, and
//!   blocks on the queues' wake lists when idle.
//! - `backend`: hands claimed jobs to apalis, which runs them through its tower layers
//!   (concurrency limit, panic catching) into `runtime::execute`, which opens the job's span.
//! - `context`: what every part shares (the `Runtime`) and what a handler sees (`JobContext`).
//! - `runtime`: one attempt's life: the handler (in `handlers/`, one module per kind, named as
//!   the kind; `handlers/mod.rs` is the registry), then the outcome recorded in Redis through
//!   `finisher` (retry decision inside the script, with the global retry setting read from
//!   PostgreSQL).
//! - `steps/`: what handlers share (audio, the blocking runner, voiceprints, follow-up jobs,
//!   maintenance runs, error codes); handlers never import each other.
//! - `maintenance`: lease renewal and cancel requests, the reaper, the PostgreSQL persister.
//! - `heartbeat` and `gpu`: what the worker tells the fleet about itself (NVML stats).
//!
//! SIGTERM drains: no new claims; running jobs finish within `--drain-timeout`, or are
//! released back to the queue (no attempt counted); exit 0.
mod backend;
mod context;
mod fetch;
mod finisher;
mod gpu;
mod handlers;
mod heartbeat;
mod maintenance;
mod models_cmd;
mod runtime;
mod search_ctx;
mod speaker_models;
mod steps;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use clap::Parser;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use voxfleet_jobs::fleet::WorkerState;
use voxfleet_jobs::{Keys, Outage, QueueClient, QueueName, QueueOptions};
use voxfleet_store::settings::RetrySettingsSource;

use crate::backend::RedisBackend;
use crate::context::{Runtime, StopReason};
use crate::heartbeat::Heartbeat;
use voxfleet_errors::{Classified, ErrorClass};

#[derive(Debug, Parser)]
#[command(
    name = "voxfleet-worker",
    version,
    about = "voxfleet worker: pulls jobs from Redis queues and runs them"
)]
struct Cli {
    /// Queues to serve, in order of preference.
    #[arg(
        long,
        env = "VOXFLEET_QUEUES",
        value_delimiter = ',',
        default_value = "gpu,cpu"
    )]
    queues: Vec<String>,
    /// Jobs run at once.
    #[arg(long, env = "VOXFLEET_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// `cpu` or `cuda:N`.
    #[arg(long, env = "VOXFLEET_DEVICE", default_value = "cpu")]
    device: String,
    /// Unique worker name (default: host-pid-random).
    #[arg(long, env = "VOXFLEET_WORKER_NAME")]
    name: Option<String>,
    /// Honour `diagnostic` jobs' `crash` (abort the process). For failure tests only.
    #[arg(long)]
    allow_crash: bool,
    /// Redis: `redis://host:port/db` for one server, or `redis+cluster://host:port,host:port`
    /// for a Redis Cluster (any of its nodes; list several, so events can be heard while one
    /// is down).
    #[arg(
        long,
        env = "VOXFLEET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    redis_url: String,
    #[arg(
        long,
        env = "VOXFLEET_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/voxfleet"
    )]
    database_url: String,
    #[arg(long, env = "VOXFLEET_KEY_PREFIX", default_value = "voxfleet")]
    key_prefix: String,
    /// Seconds a claim is held without renewal; a dead worker's jobs return after this.
    #[arg(long, env = "VOXFLEET_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    #[arg(long, env = "VOXFLEET_HEARTBEAT_SECONDS", default_value_t = 5)]
    heartbeat_seconds: u64,
    /// On SIGTERM, how long running jobs may take to finish before they are released.
    #[arg(long, env = "VOXFLEET_DRAIN_TIMEOUT_SECONDS", default_value_t = 30)]
    drain_timeout_seconds: u64,
    /// Longest single attempt; longer ones fail with the retryable code `timeout`.
    #[arg(long, env = "VOXFLEET_JOB_TIMEOUT_SECONDS")]
    job_timeout_seconds: Option<u64>,
    /// First retry backoff in milliseconds (doubled per attempt, with jitter).
    #[arg(long, env = "VOXFLEET_RETRY_BACKOFF_MS", default_value_t = 1000)]
    retry_backoff_ms: u64,
    /// `text` or `json`.
    #[arg(long, env = "VOXFLEET_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Media storage, as the control plane's: `file://DIR` or `s3://BUCKET/PREFIX`.
    #[arg(
        long,
        env = "VOXFLEET_STORAGE_URL",
        default_value = "file://./data/media"
    )]
    storage_url: String,
    /// Where `models fetch` put the model files (default ~/.cache/voxfleet/models).
    #[arg(long, env = "VOXFLEET_MODELS_DIR")]
    models_dir: Option<std::path::PathBuf>,
    /// What runs Whisper: `ct2` (CTranslate2, the default) or `candle`.
    #[arg(long, env = "VOXFLEET_WHISPER_ENGINE", default_value = "ct2")]
    engine: voxfleet_asr::EngineKind,
    /// CTranslate2's precision: `int8` or `float32`; on CUDA also `float16` and `int8_float16`
    /// (default: int8 on CPU, float16 on CUDA).
    #[arg(long, env = "VOXFLEET_COMPUTE_TYPE")]
    compute_type: Option<voxfleet_asr::ComputeType>,
    /// CPU threads one transcription uses (CTranslate2); 0: all cores.
    #[arg(long, env = "VOXFLEET_CPU_THREADS", default_value_t = 0)]
    cpu_threads: usize,
    /// Batched decoding for transcription jobs that do not say (`"batched"` in the job).
    #[arg(long, env = "VOXFLEET_BATCHED")]
    batched: bool,
    /// Unload a Whisper model no job has asked for in this many seconds (0: keep it).
    #[arg(long, env = "VOXFLEET_UNLOAD_IDLE_AFTER", default_value_t = 0)]
    unload_idle_after: u64,
    /// MiB of Whisper weights this worker may hold on its device (0: no limit). Loading past
    /// it unloads idle models first, then fails the job with `model_over_budget` instead of
    /// running out of memory mid-job.
    #[arg(long, env = "VOXFLEET_MODEL_MEMORY_BUDGET", default_value_t = 0)]
    model_memory_budget: u64,
    /// Whisper model for jobs that name none: `tiny.en` or `base`.
    #[arg(long, env = "VOXFLEET_WHISPER_MODEL", default_value = "tiny.en")]
    whisper_model: String,
    /// Load the default Whisper model and the VAD at start-up instead of at the first job.
    #[arg(long, env = "VOXFLEET_PRELOAD")]
    preload: bool,
    /// Longest audio accepted, in seconds (longer files fail with `too_long`).
    #[arg(long, env = "VOXFLEET_MAX_AUDIO_SECONDS", default_value_t = 4 * 3600)]
    max_audio_seconds: u64,
    /// The embedded search index's folder, shared with the control plane (used when
    /// `--opensearch-url` is not set).
    #[arg(long, env = "VOXFLEET_INDEX_DIR", default_value = "./data/index")]
    index_dir: std::path::PathBuf,
    /// OpenSearch instead of the embedded index.
    #[arg(long, env = "VOXFLEET_OPENSEARCH_URL")]
    opensearch_url: Option<String>,
    /// Where fetched media is kept while it is decoded (default: the system temp folder).
    #[arg(long, env = "VOXFLEET_SPOOL_DIR")]
    spool_dir: Option<std::path::PathBuf>,
    /// Without a subcommand the worker runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Install, verify or list model files (`models fetch`, `models verify`, `models list`).
    Models(models_cmd::ModelsArgs),
}

fn init_tracing(format: &str) {
    // redis=error: redis-rs's cluster client warns on every reconnect attempt (136-169 lines
    // per process in a 3-second failover, seen in the cluster test); voxfleet's own outage log says it once, then every 30 s.
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOXFLEET_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,sqlx=warn,apalis=warn,apalis_core=warn,redis=error",
        )
    });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, never in log files or collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

/// mimalloc rather than the system's malloc: a job's life is many small, short-lived
/// allocations on several threads (Redis replies, snapshots, JSON), where glibc's malloc cost
/// the worker about a fifth of its instructions per no-op job (callgrind, README's Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    init_tracing(&cli.log_format);
    if let Some(Command::Models(args)) = cli.command.take() {
        return models_cmd::run(args).unwrap_or_else(|e| {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        });
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "worker failed");
            ExitCode::FAILURE
        }
    }
}

fn default_name() -> String {
    let host = sysinfo::System::host_name().unwrap_or_else(|_| "worker".into());
    let r: u16 = rand::random();
    format!("{host}-{}-{r:04x}", std::process::id())
}

fn check_device(d: &str) -> anyhow::Result<()> {
    if d == "cpu" {
        return Ok(());
    }
    match d.strip_prefix("cuda:").map(str::parse::<u32>) {
        Some(Ok(_)) => Ok(()),
        _ => bail!("--device must be `cpu` or `cuda:N`, got `{d}`"),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// Connects to PostgreSQL, waiting (with backoff) while it is unreachable. `None` when a
/// shutdown signal arrives first.
async fn connect_pg(
    url: &str,
    stop: &CancellationToken,
) -> anyhow::Result<Option<voxfleet_store::PgPool>> {
    let mut outage = Outage::new("postgres");
    loop {
        match voxfleet_store::connect(url, 4).await {
            Ok(p) => {
                outage.ok();
                return Ok(Some(p));
            }
            Err(e) if e.class() == ErrorClass::Unavailable => {
                let wait = outage.failed(&e);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = stop.cancelled() => return Ok(None),
                }
            }
            Err(e) => return Err(e).context("connecting to PostgreSQL"),
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    check_device(&cli.device)?;
    let queues: Vec<QueueName> = cli
        .queues
        .iter()
        .map(|q| q.trim().parse::<QueueName>().map_err(anyhow::Error::msg))
        .collect::<Result<_, _>>()?;
    if queues.is_empty() {
        bail!("--queues needs at least one queue");
    }
    let name = cli.name.clone().unwrap_or_else(default_name);
    let opts = QueueOptions {
        lease: Duration::from_secs(cli.lease_seconds.max(2)),
        backoff_base: Duration::from_millis(cli.retry_backoff_ms.max(1)),
        ..Default::default()
    };
    let queue =
        QueueClient::new(&cli.redis_url, Keys::new(&cli.key_prefix), opts).context("Redis URL")?;

    let early_stop = CancellationToken::new();
    let s = early_stop.clone();
    let signal_task = tokio::spawn(async move {
        shutdown_signal().await;
        s.cancel();
    });
    let Some(pool) = connect_pg(&cli.database_url, &early_stop).await? else {
        tracing::info!("stopped before PostgreSQL became reachable; nothing was claimed");
        return Ok(());
    };
    let gpus = Arc::new(gpu::Gpus::init());
    let host = sysinfo::System::host_name().unwrap_or_default();
    let mut device = cli.device.clone();
    if device != "cpu" && !gpus.available() {
        tracing::info!(requested = %device, "no NVIDIA GPU available; device is cpu");
        device = "cpu".into();
    }
    let speech = Arc::new(speech(&cli, &device)?);
    let index = voxfleet_search::Index::from_config(cli.opensearch_url.as_deref(), &cli.index_dir)
        .context("search index (--index-dir / --opensearch-url)")?;
    let search = Arc::new(search_ctx::SearchContext::new(
        index,
        voxfleet_models::ModelsDir::new(models_dir(&cli)),
    ));
    let slots = Arc::new(Semaphore::new(cli.concurrency as usize));
    let (tx, rx) = mpsc::channel(cli.concurrency as usize);
    let (finish_tx, finish_rx) = mpsc::channel(cli.concurrency as usize * 2);
    // batches of successes from the finisher to the persister; when full, the rest wait in
    // Redis for the persister's sweep
    let (known_tx, known_rx) = mpsc::channel(256);

    let rt = Arc::new(Runtime {
        queue,
        settings: RetrySettingsSource::new(pool.clone()),
        pool,
        name: name.clone(),
        queues,
        allow_crash: cli.allow_crash,
        job_timeout: cli.job_timeout_seconds.map(Duration::from_secs),
        running: Mutex::new(HashMap::new()),
        persist_wake: Notify::new(),
        persist_known: known_tx,
        idle: Notify::new(),
        draining: CancellationToken::new(),
        tasks: tx.clone(),
        finisher: finish_tx,
        speech,
        search,
        gpus: gpus.clone(),
        host: host.clone(),
    });
    let finisher_task = tokio::spawn(finisher::run(
        rt.clone(),
        finish_rx,
        cli.concurrency as usize,
    ));
    if cli.preload {
        preload(&rt.speech).await;
    }
    tracing::info!(
        worker = %name,
        queues = ?cli.queues,
        concurrency = cli.concurrency,
        device = %device,
        cpu_gemm = voxfleet_asr::cpu_backend(),
        "worker starting"
    );

    let (state_tx, state_rx) = watch::channel(WorkerState::Running);
    let hb = Heartbeat {
        rt: rt.clone(),
        gpus,
        sampler: voxfleet_jobs::fleet::SystemSampler::new()
            .map(|s| Arc::new(std::sync::Mutex::new(s))),
        device,
        host,
        concurrency: cli.concurrency,
        interval: Duration::from_secs(cli.heartbeat_seconds.max(1)),
        started_at: chrono::Utc::now(),
    };
    hb.beat(WorkerState::Running, &mut Outage::new("redis"))
        .await;
    let hb_task = tokio::spawn(hb.run(state_rx));

    let stop_fetch = CancellationToken::new();
    let stop_bg = CancellationToken::new();
    let bg = [
        tokio::spawn(maintenance::renew_leases(rt.clone(), stop_bg.clone())),
        tokio::spawn(maintenance::reap(rt.clone(), stop_bg.clone())),
        tokio::spawn(maintenance::persist(rt.clone(), known_rx, stop_bg.clone())),
    ];
    let fetch_task = tokio::spawn(fetch::run(rt.clone(), slots, tx, stop_fetch.clone()));

    let worker = WorkerBuilder::new(name.as_str())
        .backend(RedisBackend::new(rx))
        // no apalis tracing layer: `runtime::execute` opens each attempt's span itself, with
        // the job's id, kind, queue and attempt (a second span per job cost as much again)
        .catch_panic()
        .concurrency(cli.concurrency as usize)
        .data(rt.clone())
        .build(runtime::execute);

    let drain_rt = rt.clone();
    let drain_timeout = Duration::from_secs(cli.drain_timeout_seconds);
    let drained = async move {
        early_stop.cancelled().await;
        tracing::info!(
            running = drain_rt.running_count(),
            "SIGTERM: draining (no new claims)"
        );
        let _ = state_tx.send(WorkerState::Draining);
        drain_rt.draining.cancel();
        stop_fetch.cancel();
        let _ = fetch_task.await;
        if !wait_idle(&drain_rt, drain_timeout).await {
            tracing::warn!(
                running = drain_rt.running_count(),
                "drain timeout: releasing running jobs to the queue"
            );
            drain_rt.stop_all(StopReason::Release);
            wait_idle(&drain_rt, Duration::from_secs(10)).await;
        }
        let _ = state_tx.send(WorkerState::Stopped);
        Ok::<(), std::io::Error>(())
    };
    worker.run_until(drained).await.context("worker runtime")?;

    // Final flush of job states to PostgreSQL (a few tries), then stop.
    let mut outage = Outage::new("postgres");
    for _ in 0..5 {
        match maintenance::persist_once(&rt, &mut outage).await {
            Ok(()) => break,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
    stop_bg.cancel();
    for t in bg {
        let _ = t.await;
    }
    let _ = hb_task.await;
    finisher_task.abort();
    signal_task.abort();
    tracing::info!("worker stopped");
    Ok(())
}

fn models_dir(cli: &Cli) -> std::path::PathBuf {
    cli.models_dir
        .clone()
        .unwrap_or_else(voxfleet_models::default_models_dir)
}

/// Media storage and the model cache (models load on first use, or at start with --preload).
fn speech(cli: &Cli, device: &str) -> anyhow::Result<steps::speech::Speech> {
    let media = voxfleet_store::media::MediaStore::from_url(&cli.storage_url)
        .context("media storage (--storage-url)")?;
    let models_dir = models_dir(cli);
    let device: voxfleet_asr::DeviceSpec = device.parse().context("--device")?;
    let speaker_models = Arc::new(speaker_models::SpeakerModels::new(
        voxfleet_models::ModelsDir::new(&models_dir),
    ));
    let mut compute_type = cli.compute_type;
    if let Some(ct) = compute_type
        && cli.engine == voxfleet_asr::EngineKind::Ct2
        && let Err(e) = ct.check_on(device)
    {
        if cli.device == "cpu" || !ct.cuda_only() {
            anyhow::bail!("--compute-type {ct}: {e}");
        }
        // Asked for a GPU, fell back to the CPU (none visible): the CPU's default instead.
        let instead = voxfleet_asr::ComputeType::default_for(device);
        tracing::warn!(compute_type = %ct, %instead, "no GPU: the CPU's compute type instead");
        compute_type = None;
    }
    if cli.engine == voxfleet_asr::EngineKind::Ct2 && compute_type.is_none() {
        let chosen = voxfleet_asr::ComputeType::default_for(device);
        if device == voxfleet_asr::DeviceSpec::Cpu
            && let Some(why) = voxfleet_asr::ComputeType::cpu_default_note()
        {
            tracing::info!(compute_type = %chosen, reason = %why, "int8 is not the default on this CPU");
        }
    }
    let settings = voxfleet_asr::EngineSettings {
        engine: cli.engine,
        compute_type,
        cpu_threads: cli.cpu_threads,
        replicas: cli.concurrency as usize,
    };
    let models = voxfleet_asr::ModelCache::with_settings(
        voxfleet_models::ModelsDir::new(models_dir),
        device,
        settings,
    )
    .context("model cache")?
    .with_limits(voxfleet_asr::CacheLimits {
        unload_idle_after: (cli.unload_idle_after > 0)
            .then(|| Duration::from_secs(cli.unload_idle_after)),
        memory_budget: (cli.model_memory_budget > 0).then_some(cli.model_memory_budget << 20),
    });
    Ok(steps::speech::Speech {
        speaker_models,
        media,
        models: Arc::new(models),
        default_model: cli.whisper_model.clone(),
        batched: cli.batched,
        max_audio: Duration::from_secs(cli.max_audio_seconds),
        spool_dir: cli.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
    })
}

/// Loads the default model and the VAD now; a failure is logged (jobs will report it).
async fn preload(speech: &steps::speech::Speech) {
    let models = speech.models.clone();
    let name = speech.default_model.clone();
    let t0 = std::time::Instant::now();
    let res = tokio::task::spawn_blocking(move || {
        models.whisper(&name)?;
        models.vad().map(|_| ())
    })
    .await;
    match res {
        Ok(Ok(())) => {
            tracing::info!(model = %speech.default_model, seconds = t0.elapsed().as_secs_f64(), "models preloaded")
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, code = e.code(), "preloading models failed; transcription jobs will fail until this is fixed")
        }
        Err(e) => tracing::warn!(error = %e, "preloading models failed"),
    }
    let speakers = speech.speaker_models.clone();
    let res = tokio::task::spawn_blocking(move || {
        speakers.segmenter()?;
        speakers.profile("v4").map(|_| ())
    })
    .await;
    match res {
        Ok(Ok(())) => tracing::info!("preloaded the speaker models"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, code = e.code(), "preloading speaker models failed; diarization jobs will fail until this is fixed")
        }
        Err(e) => tracing::warn!(error = %e, "preloading speaker models failed"),
    }
}

/// Waits until no job is running, up to `timeout`. Returns whether it became idle.
async fn wait_idle(rt: &Runtime, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = rt.idle.notified();
        if rt.running_count() == 0 {
            return true;
        }
        tokio::select! {
            _ = notified => {},
            _ = tokio::time::sleep(Duration::from_millis(200)) => {},
            _ = tokio::time::sleep_until(deadline) => return rt.running_count() == 0,
        }
    }
}
