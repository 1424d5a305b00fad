//! What every section shares: the services' URLs, the binaries, a run id that names every Redis
//! prefix and database this run creates, a scratch folder for child logs, and the clean-up that
//! removes all of them again.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use redis::AsyncCommands;
use sqlx::Connection;
use url::Url;

/// apalis-redis registers every queue here (see its `register_worker.lua`).
const APALIS_QUEUES_LIST: &str = "core:apalis:queues:list";

pub struct Bench {
    pub redis_url: String,
    /// The PostgreSQL server; each run gets its own database on it.
    pub pg_url: Url,
    /// `vf_bench_<8 hex>`: the start of every key prefix, namespace and database name.
    pub run_id: String,
    pub worker_bin: PathBuf,
    pub control_plane_bin: PathBuf,
    /// This executable (the apalis-redis worker runs as its hidden subcommand).
    pub self_bin: PathBuf,
    /// Child logs and the control plane's port file.
    pub scratch: PathBuf,
    databases: Mutex<Vec<String>>,
}

impl Bench {
    pub fn new(
        redis_url: String,
        database_url: &str,
        worker_bin: Option<PathBuf>,
        control_plane_bin: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let pg_url = Url::parse(database_url)
            .with_context(|| format!("bad database URL `{database_url}`"))?;
        let self_bin = std::env::current_exe().context("locating this executable")?;
        let dir = self_bin.parent().map(Path::to_path_buf).unwrap_or_default();
        let worker_bin = worker_bin.unwrap_or_else(|| dir.join("voxfleet-worker"));
        let control_plane_bin =
            control_plane_bin.unwrap_or_else(|| dir.join("voxfleet-control-plane"));
        let run_id = format!("vf_bench_{:08x}", rand::random::<u32>());
        let scratch = std::env::temp_dir().join(&run_id);
        Ok(Self {
            redis_url,
            pg_url,
            run_id,
            worker_bin,
            control_plane_bin,
            self_bin,
            scratch,
            databases: Mutex::new(Vec::new()),
        })
    }

    /// Fails with a clear message when a binary a chosen section needs is missing.
    pub fn require_binaries(&self, worker: bool, control_plane: bool) -> anyhow::Result<()> {
        if worker {
            require(&self.worker_bin, "voxfleet-worker", "--worker-bin")?;
        }
        if control_plane {
            require(
                &self.control_plane_bin,
                "voxfleet-control-plane",
                "--control-plane-bin",
            )?;
        }
        Ok(())
    }

    /// A Redis key prefix (or apalis-redis namespace) for one part of this run.
    pub fn prefix(&self, tag: &str) -> String {
        format!("{}_{tag}", self.run_id)
    }

    /// A fresh database name for one part of this run, and its URL. The name is remembered
    /// for clean-up before anything can create it.
    pub fn database(&self, tag: &str) -> (String, String) {
        let name = format!("{}_{tag}", self.run_id);
        self.databases
            .lock()
            .expect("database list")
            .push(name.clone());
        (name.clone(), self.db_url(&name))
    }

    pub fn db_url(&self, name: &str) -> String {
        let mut u = self.pg_url.clone();
        u.set_path(&format!("/{name}"));
        u.to_string()
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.scratch.join(format!("{name}.log"))
    }

    pub fn redis_client(&self) -> anyhow::Result<redis::Client> {
        redis::Client::open(self.redis_url.as_str())
            .with_context(|| format!("bad Redis URL `{}`", self.redis_url))
    }

    /// Fails early, with the service named, when Redis or PostgreSQL is not reachable.
    /// Returns their versions.
    pub async fn check_services(&self) -> anyhow::Result<(String, String)> {
        let mut c = self
            .redis_client()?
            .get_multiplexed_async_connection()
            .await
            .with_context(|| {
                format!(
                    "Redis is not reachable at {} (scripts/services.sh starts it)",
                    self.redis_url
                )
            })?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut c).await?;
        let redis_version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_string();
        let mut pg = sqlx::PgConnection::connect(&self.db_url("postgres"))
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL is not reachable at {} (scripts/services.sh starts it)",
                    self.pg_url
                )
            })?;
        let pg_version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut pg)
            .await?;
        pg.close().await.ok();
        Ok((redis_version, pg_version))
    }

    /// Deletes every Redis key of this run and drops every database it created. Returns what
    /// it could not clean, as warnings (clean-up goes on past a failure).
    pub async fn cleanup(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        match self.cleanup_redis().await {
            Ok(_) => {}
            Err(e) => warnings.push(format!("Redis clean-up failed: {e:#}")),
        }
        let dbs = self.databases.lock().expect("database list").clone();
        if !dbs.is_empty()
            && let Err(e) = self.drop_databases(&dbs).await
        {
            warnings.push(format!("dropping databases {dbs:?} failed: {e:#}"));
        }
        warnings
    }

    async fn cleanup_redis(&self) -> anyhow::Result<usize> {
        let mut c = self
            .redis_client()?
            .get_multiplexed_async_connection()
            .await?;
        let mut keys: Vec<String> = Vec::new();
        // voxfleet's per-queue keys start with the hash tag `{prefix:queue}`, the others with
        // the bare prefix; apalis-redis keys start with the namespace.
        for pattern in [format!("{}*", self.run_id), format!("{{{}*", self.run_id)] {
            let mut it = c.scan_match::<_, String>(&pattern).await?;
            while let Some(k) = futures::StreamExt::next(&mut it).await {
                keys.push(k?);
            }
        }
        for chunk in keys.chunks(500) {
            let _: () = c.del(chunk).await?;
        }
        let queues: Vec<String> = c.zrange(APALIS_QUEUES_LIST, 0, -1).await?;
        let ours: Vec<&String> = queues
            .iter()
            .filter(|q| q.starts_with(&self.run_id))
            .collect();
        if !ours.is_empty() {
            let _: () = c.zrem(APALIS_QUEUES_LIST, ours).await?;
        }
        Ok(keys.len())
    }

    async fn drop_databases(&self, names: &[String]) -> anyhow::Result<()> {
        let mut pg = sqlx::PgConnection::connect(&self.db_url("postgres")).await?;
        for name in names {
            // Names are ours (`vf_bench_<hex>_<tag>`), never user input.
            let q = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(q)).execute(&mut pg).await?;
        }
        pg.close().await.ok();
        Ok(())
    }

    pub fn create_scratch(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.scratch)
            .with_context(|| format!("creating {}", self.scratch.display()))
    }

    /// Removes the scratch folder (logs), unless asked to keep it.
    pub fn remove_scratch(&self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn require(path: &Path, name: &str, flag: &str) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "{name} not found at {} (pass {flag} PATH, or build them first: cargo build --release --bins)",
            path.display()
        );
    }
    Ok(())
}
