//! voxfleet-control-plane: `serve` (the default) runs the HTTP API; `tokens create` mints a
//! bearer token, `tokens list` shows them (never their secrets), `tokens revoke` revokes one.
//! Migrations run at start-up, and the database is created if missing.
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use voxfleet_control_plane::{AppState, Limits, metrics_handle, serve};
use voxfleet_jobs::{Keys, QueueClient, QueueOptions};
use voxfleet_store::tokens::{
    Revoked, Role, create_token, ensure_bootstrap, list_tokens, revoke_token,
};

#[derive(Debug, Parser)]
#[command(
    name = "voxfleet-control-plane",
    version,
    about = "voxfleet control plane: the HTTP API over the job queues"
)]
struct Cli {
    /// Redis: `redis://host:port/db` for one server, or `redis+cluster://host:port,host:port`
    /// for a Redis Cluster (any of its nodes; list several, so events can be heard while one
    /// is down).
    #[arg(
        long,
        env = "VOXFLEET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0",
        global = true
    )]
    redis_url: String,
    #[arg(
        long,
        env = "VOXFLEET_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/voxfleet",
        global = true
    )]
    database_url: String,
    #[arg(
        long,
        env = "VOXFLEET_KEY_PREFIX",
        default_value = "voxfleet",
        global = true
    )]
    key_prefix: String,
    /// `text` or `json`.
    #[arg(
        long,
        env = "VOXFLEET_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (`:0` picks a free port; the chosen address is logged and, with
    /// --port-file, written to a file).
    #[arg(long, env = "VOXFLEET_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Write the bound address here once listening (for scripts and tests).
    #[arg(long)]
    port_file: Option<std::path::PathBuf>,
    /// A bootstrap token with role super_admin.
    #[arg(long, env = "VOXFLEET_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, env = "VOXFLEET_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Media storage: `file://DIR` (relative to the working directory) or `s3://BUCKET/PREFIX`
    /// (credentials and endpoint from AWS_* variables).
    #[arg(
        long,
        env = "VOXFLEET_STORAGE_URL",
        default_value = "file://./data/media"
    )]
    storage_url: String,
    /// Largest media upload in bytes (413 beyond it).
    #[arg(long, env = "VOXFLEET_MAX_UPLOAD_BYTES", default_value_t = 2 << 30)]
    max_upload_bytes: u64,
    /// Where uploads are spooled while hashed and probed (default: the system temp folder).
    #[arg(long, env = "VOXFLEET_SPOOL_DIR")]
    spool_dir: Option<std::path::PathBuf>,
    /// The embedded search index's folder, shared with the workers on this host (used when
    /// `--opensearch-url` is not set).
    #[arg(long, env = "VOXFLEET_INDEX_DIR", default_value = "./data/index")]
    index_dir: std::path::PathBuf,
    /// OpenSearch instead of the embedded index.
    #[arg(long, env = "VOXFLEET_OPENSEARCH_URL")]
    opensearch_url: Option<String>,
    /// Where `voxfleet-worker models fetch` put the models (the query-embedding model is read
    /// from here; default ~/.cache/voxfleet/models).
    #[arg(long, env = "VOXFLEET_MODELS_DIR")]
    models_dir: Option<std::path::PathBuf>,
    /// How long `POST /v1/audio/transcriptions` waits for its transcription.
    #[arg(long, env = "VOXFLEET_OPENAI_WAIT_SECONDS", default_value_t = 600)]
    openai_wait_seconds: u64,
    /// Run no scheduler on this replica (recurring jobs are fired by the other replicas).
    #[arg(long, env = "VOXFLEET_NO_SCHEDULER", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    no_scheduler: bool,
    /// How often the scheduler looks at the recurring jobs, in milliseconds.
    #[arg(long, env = "VOXFLEET_SCHEDULER_TICK_MS", default_value_t = 1000)]
    scheduler_tick_ms: u64,
    /// A request head must arrive within this many seconds, or the connection is closed.
    #[arg(long, env = "VOXFLEET_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_seconds: u64,
    /// A request body that sends nothing for this many seconds is answered 408.
    #[arg(long, env = "VOXFLEET_BODY_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_seconds: u64,
    /// Queue again a job PostgreSQL has held as waiting for this many seconds that Redis has
    /// no record of (lost in a failover or a restart without persistence).
    #[arg(long, env = "VOXFLEET_REQUEUE_LOST_AFTER_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    requeue_lost_after_seconds: u64,
    /// A bearer token that may read /metrics (and nothing else), for a Prometheus scraper;
    /// admin API tokens may too (16+ characters).
    #[arg(long, env = "VOXFLEET_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Also serve /metrics WITHOUT auth on this address (a private network or loopback only).
    #[arg(long, env = "VOXFLEET_METRICS_BIND")]
    metrics_bind: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Manage bearer tokens.
    Tokens {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Mint a token and print it (it is shown once; only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// user, admin or super_admin.
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// List every token: id, name, role, created, last used, revoked, bootstrap (no secrets).
    List,
    /// Revoke a token for good (audited). Running control planes stop accepting it within
    /// 10 seconds.
    Revoke { id: uuid::Uuid },
}

/// mimalloc, as in the worker (see its main.rs for the measurement): a request is many small,
/// short-lived allocations on several threads (JSON, Redis replies, snapshots).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // redis=error: see the worker's `init_tracing` (redis-rs's cluster client is noisy).
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOXFLEET_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn,redis=error")
    });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, never in log files or collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        b.json().init();
    } else {
        b.init();
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "control plane failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let pool = voxfleet_store::connect(&cli.database_url, 16)
        .await
        .context("connecting to PostgreSQL")?;
    match cli.command {
        Some(Command::Tokens {
            action: TokenAction::Create { name, role },
        }) => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let (info, plain) = create_token(&pool, &name, role).await?;
            eprintln!(
                "created token {} ({}) with role {}",
                info.id, info.name, info.role
            );
            println!("{plain}");
            Ok(())
        }
        Some(Command::Tokens {
            action: TokenAction::List,
        }) => {
            let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_string(), |t| {
                    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                })
            };
            println!(
                "{:<36}  {:<20}  {:<11}  {:<20}  {:<20}  {:<28}  BOOTSTRAP",
                "ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"
            );
            for t in list_tokens(&pool).await? {
                println!(
                    "{:<36}  {:<20}  {:<11}  {:<20}  {:<20}  {:<28}  {}",
                    t.id,
                    t.name.escape_debug().to_string(),
                    t.role.as_str(),
                    fmt(Some(t.created_at)),
                    fmt(t.last_used_at),
                    match t.revoked_at {
                        Some(_) => format!("revoked {}", fmt(t.revoked_at)),
                        None => "-".into(),
                    },
                    if t.bootstrap { "bootstrap" } else { "-" },
                );
            }
            Ok(())
        }
        Some(Command::Tokens {
            action: TokenAction::Revoke { id },
        }) => match revoke_token(&pool, id, None, "cli").await? {
            Revoked::Now(t) => {
                eprintln!("revoked token {} ({}, {})", t.id, t.name, t.role);
                Ok(())
            }
            Revoked::Already(t) => {
                eprintln!(
                    "token {} ({}) was already revoked{}",
                    t.id,
                    t.name,
                    t.revoked_at.map(|a| format!(" at {a}")).unwrap_or_default()
                );
                Ok(())
            }
            Revoked::NotFound => anyhow::bail!("no token with id {id}"),
        },
        None | Some(Command::Serve) => {
            let args = cli.serve;
            if let Some(t) = &args.admin_token {
                ensure_bootstrap(&pool, t)
                    .await
                    .context("bootstrap admin token")?;
            }
            let queue = QueueClient::new(
                &cli.redis_url,
                Keys::new(&cli.key_prefix),
                QueueOptions::default(),
            )
            .context("Redis URL")?;
            let defaults = Limits::default();
            let limits = Limits {
                max_body_bytes: args.max_body_bytes,
                max_upload_bytes: args.max_upload_bytes,
                spool_dir: args.spool_dir.unwrap_or(defaults.spool_dir.clone()),
                openai_wait: std::time::Duration::from_secs(args.openai_wait_seconds),
                scheduler_tick: (!args.no_scheduler)
                    .then(|| std::time::Duration::from_millis(args.scheduler_tick_ms.max(10))),
                header_read_timeout: std::time::Duration::from_secs(args.header_timeout_seconds),
                body_idle_timeout: std::time::Duration::from_secs(args.body_timeout_seconds),
                requeue_lost_after: std::time::Duration::from_secs(args.requeue_lost_after_seconds),
                ..defaults
            };
            let media = voxfleet_store::media::MediaStore::from_url(&args.storage_url)
                .context("media storage (--storage-url)")?;
            let index = voxfleet_search::Index::from_config(
                args.opensearch_url.as_deref(),
                &args.index_dir,
            )
            .context("search index (--index-dir / --opensearch-url)")?;
            let models = voxfleet_models::ModelsDir::new(
                args.models_dir
                    .clone()
                    .unwrap_or_else(voxfleet_models::default_models_dir),
            );
            let mut state = AppState::new(queue, pool, metrics_handle(), limits, media)
                .with_search(voxfleet_control_plane::search::SearchState::new(
                    index, models,
                ));
            if let Some(t) = &args.metrics_token {
                anyhow::ensure!(
                    t.len() >= 16,
                    "VOXFLEET_METRICS_TOKEN must be at least 16 characters"
                );
                state.metrics_token = Some(voxfleet_control_plane::auth::MetricsToken::new(t));
            }
            if let Some(bind) = &args.metrics_bind {
                let l = tokio::net::TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("binding --metrics-bind {bind}"))?;
                tracing::info!(addr = %l.local_addr()?, "unauthenticated /metrics listening");
                let app = voxfleet_control_plane::routes::health::metrics_router(state.clone());
                let stop = state.shutdown.clone();
                tokio::spawn(async move {
                    let res = axum::serve(l, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await;
                    if let Err(e) = res {
                        tracing::error!(error = %e, "the /metrics listener failed");
                    }
                });
            }
            let listener = tokio::net::TcpListener::bind(&args.bind)
                .await
                .with_context(|| format!("binding {}", args.bind))?;
            let addr = listener.local_addr()?;
            if let Some(p) = &args.port_file {
                std::fs::write(p, addr.to_string()).context("writing --port-file")?;
            }
            tracing::info!(%addr, "control plane listening");
            serve(listener, state, shutdown_signal()).await?;
            tracing::info!("control plane stopped");
            Ok(())
        }
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
