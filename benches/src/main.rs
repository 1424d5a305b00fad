//! voxfleet-bench: the end-to-end benchmark harness. In one run, on this machine, it measures
//!
//! 1. **No-op throughput**: N `diagnostic` jobs with input `{}` (default 3,000) queued straight
//!    into Redis, then run by one real `voxfleet-worker` process at concurrency 1, 8 and 32
//!    (leases on, as always); jobs/s from the first job's start to the last job's finish. The
//!    same workload through apalis-redis 1.0.0 with its default configuration (a worker process
//!    of this binary, `apalis-worker`, with a no-op handler) and the ratio voxfleet/apalis-redis.
//! 2. **Idle pickup latency** (submit → handler started, median and p99) for both, one job at a
//!    time with the worker idle in between.
//! 3. **API submissions/s** through the real `voxfleet-control-plane`: `POST /v1/jobs` from 16
//!    concurrent clients and `POST /v1/jobs/batch` with 100 submissions per call.
//! 4. **Scaling** (only with `--only scaling`): the no-op throughput of section 1 with 1, 2, 4
//!    and 8 worker processes (`--workers`, concurrency `--scale-concurrency` each), on the one
//!    Redis server and on a Redis Cluster of six nodes on loopback (three masters with a
//!    replica each) that the run starts and stops; jobs/s and jobs/s per core.
//!    `benches/python/plot_scaling.py FIGURES.json OUT.png` draws it from `--json`.
//! 5. **End to end against Celery** (only with `--only e2e`): `--e2e-jobs` no-op jobs submitted
//!    through `POST /v1/jobs/batch` and run by one worker at `--e2e-concurrency`, against the
//!    same through Celery 5.7 (Redis broker and result backend, threads pool) with the Python
//!    given by `--celery-python` (`pip install 'celery[redis]==5.7.0'` into it); see [`e2e`].
//!
//! Progress goes to stderr; a plain summary table to stdout at the end, and with `--json PATH`
//! every figure to a file. Everything the run creates (Redis keys under `vf_bench_<id>_*`,
//! databases `vf_bench_<id>_*`, child processes) is removed again, on errors and Ctrl-C too.
//!
//! Run it (Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 with trust auth, as
//! `scripts/services.sh` sets up):
//!
//! ```text
//! cargo build --release --bins && $CARGO_TARGET_DIR/release/voxfleet-bench
//! cargo run --release -p voxfleet-benches --bin voxfleet-bench -- --only latency
//! ```
//!
//! The worker and control-plane binaries are looked up next to this executable (override with
//! `--worker-bin` / `--control-plane-bin`). Modules: [`bench`] (shared context and clean-up),
//! [`procs`] (child processes), [`pubsub`] (started signals), [`voxfleet_runs`],
//! [`apalis_runs`] and [`api`] (the measurements), [`report`] (table and JSON), [`progress`].
mod apalis_runs;
mod api;
mod bench;
mod e2e;
mod procs;
mod progress;
mod pubsub;
mod report;
mod voxfleet_runs;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::bench::Bench;
use crate::report::{
    E2eRow, LatencyPair, Machine, Report, ScalingRow, Settings, Throughput, ThroughputRow,
};

#[derive(Debug, Parser)]
#[command(
    name = "voxfleet-bench",
    version,
    about = "End-to-end benchmarks of voxfleet (throughput, pickup latency, API) against apalis-redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Internal: the apalis-redis worker process the harness starts.
    #[command(hide = true)]
    ApalisWorker(apalis_runs::WorkerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Throughput,
    Latency,
    Api,
    Scaling,
    E2e,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Sections to run (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Jobs per throughput run (N).
    #[arg(long, default_value_t = 3000)]
    jobs: usize,
    /// Worker concurrencies for the throughput runs.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<u32>,
    /// Throughput rounds per concurrency, each voxfleet then apalis-redis; with more than one
    /// the summary gives the median and lowest ratio (a run of a few thousand no-op jobs lasts
    /// under a second, so one stall moves a single ratio a lot).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Seconds a throughput run may take before it is reported as timed out.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Pickup-latency samples for voxfleet.
    #[arg(long, default_value_t = 50)]
    latency_samples: usize,
    /// Pickup-latency samples for apalis-redis (its idle pickup is slow).
    #[arg(long, default_value_t = 5)]
    apalis_latency_samples: usize,
    /// Seconds to wait for one latency sample.
    #[arg(long, default_value_t = 60)]
    sample_timeout: u64,
    /// Milliseconds between latency samples (the worker is idle again by then).
    #[arg(long, default_value_t = 200)]
    sample_gap_ms: u64,
    /// `POST /v1/jobs` requests.
    #[arg(long, default_value_t = 2000)]
    api_requests: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    api_clients: usize,
    /// `POST /v1/jobs/batch` requests.
    #[arg(long, default_value_t = 20)]
    api_batches: usize,
    /// Submissions per batch request.
    #[arg(long, default_value_t = 100)]
    api_batch_size: usize,
    /// Scaling: worker processes per run.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    workers: Vec<usize>,
    /// Scaling: concurrency of each worker process.
    #[arg(long, default_value_t = 8)]
    scale_concurrency: u32,
    /// Scaling: leave the Redis Cluster out (one Redis server only).
    #[arg(long)]
    skip_cluster: bool,
    /// Measure voxfleet only.
    #[arg(long)]
    skip_apalis: bool,
    /// End to end: jobs submitted and run.
    #[arg(long, default_value_t = 20000)]
    e2e_jobs: usize,
    /// End to end: the worker's concurrency (and Celery's threads).
    #[arg(long, default_value_t = 8)]
    e2e_concurrency: u32,
    /// End to end: the Python with Celery 5.7 installed that runs
    /// `benches/python/celery_peer.py`; without it Celery is not run.
    #[arg(long)]
    celery_python: Option<PathBuf>,
    /// Also write every figure to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(
        long,
        env = "VOXFLEET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    redis_url: String,
    /// The PostgreSQL server (its database part is ignored: each run creates its own).
    #[arg(
        long,
        env = "VOXFLEET_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Default: `voxfleet-worker` next to this executable.
    #[arg(long)]
    worker_bin: Option<PathBuf>,
    /// Default: `voxfleet-control-plane` next to this executable.
    #[arg(long)]
    control_plane_bin: Option<PathBuf>,
    /// Keep the child processes' logs (otherwise kept only when something failed).
    #[arg(long)]
    keep_logs: bool,
}

impl RunArgs {
    /// Whether to run `s`: the ones named with `--only`, else all but scaling (it starts a
    /// Redis Cluster and runs 8 measurements per backend) and e2e (it needs Celery).
    fn wants(&self, s: Section) -> bool {
        if self.only.is_empty() {
            !matches!(s, Section::Scaling | Section::E2e)
        } else {
            self.only.contains(&s)
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            jobs: self.jobs,
            concurrency: self.concurrency.clone(),
            rounds: self.rounds,
            timeout_s: self.timeout,
            latency_samples: self.latency_samples,
            apalis_latency_samples: self.apalis_latency_samples,
            sample_timeout_s: self.sample_timeout,
            sample_gap_ms: self.sample_gap_ms,
            api_requests: self.api_requests,
            api_clients: self.api_clients,
            api_batches: self.api_batches,
            api_batch_size: self.api_batch_size,
            apalis: !self.skip_apalis,
            workers: self.workers.clone(),
            scale_concurrency: self.scale_concurrency,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.jobs == 0 || self.concurrency.is_empty() || self.concurrency.contains(&0) {
            bail!("--jobs and every --concurrency must be at least 1");
        }
        if self.workers.is_empty() || self.workers.contains(&0) || self.scale_concurrency == 0 {
            bail!("every --workers and --scale-concurrency must be at least 1");
        }
        if self.api_clients == 0 || self.api_batch_size == 0 || self.api_batch_size > 1000 {
            bail!("--api-clients must be at least 1 and --api-batch-size 1 to 1000");
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Some(Command::ApalisWorker(args)) => apalis_runs::run_worker(args).await.map(|()| true),
        None => run(cli.run).await,
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("voxfleet-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen sections, cleans up, prints the summary. Returns whether all went well.
async fn run(args: RunArgs) -> anyhow::Result<bool> {
    args.validate()?;
    let bench = Bench::new(
        args.redis_url.clone(),
        &args.database_url,
        args.worker_bin.clone(),
        args.control_plane_bin.clone(),
    )?;
    let needs_worker = args.wants(Section::Throughput)
        || args.wants(Section::Latency)
        || args.wants(Section::Scaling)
        || args.wants(Section::E2e);
    bench.require_binaries(
        needs_worker,
        args.wants(Section::Api) || args.wants(Section::E2e),
    )?;
    let (redis_version, pg_version) = bench.check_services().await?;
    bench.create_scratch()?;
    let mut report = Report {
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        run_id: bench.run_id.clone(),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        machine: Machine::detect(redis_version, pg_version),
        settings: args.settings(),
        throughput: Vec::new(),
        latency: None,
        api: None,
        scaling: Vec::new(),
        e2e: None,
        errors: Vec::new(),
    };
    progress::note(format!(
        "voxfleet-bench run {} (logs in {})",
        bench.run_id,
        bench.scratch.display()
    ));

    let interrupted = tokio::select! {
        () = run_sections(&bench, &args, &mut report) => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    if interrupted {
        report
            .errors
            .push("interrupted (Ctrl-C); figures so far are shown".into());
    }
    let sp = progress::spinner("cleaning up Redis keys and databases");
    let warnings = bench.cleanup().await;
    sp.finish_and_clear();
    report.errors.extend(warnings);

    print!("{}", report::summary(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    let ok = report.errors.is_empty();
    if ok && !args.keep_logs {
        bench.remove_scratch();
    } else {
        println!("child logs kept in {}", bench.scratch.display());
    }
    Ok(ok)
}

async fn run_sections(b: &Bench, args: &RunArgs, report: &mut Report) {
    let timeout = Duration::from_secs(args.timeout);
    if args.wants(Section::Scaling) {
        scaling(b, args, report, timeout).await;
    }
    if args.wants(Section::Throughput) {
        for &c in &args.concurrency {
            for round in 1..=args.rounds {
                throughput_round(b, args, report, c, round, timeout).await;
            }
        }
    }
    if args.wants(Section::Latency) {
        let gap = Duration::from_millis(args.sample_gap_ms);
        let per = Duration::from_secs(args.sample_timeout);
        let c = 1;
        progress::note(format!(
            "idle pickup latency: voxfleet ({} samples)",
            args.latency_samples
        ));
        let v = voxfleet_runs::latency(b, c, args.latency_samples, gap, per).await;
        let v = latency_outcome(v, "voxfleet latency", &mut report.errors);
        report.latency = Some(LatencyPair {
            concurrency: c,
            voxfleet: v,
            apalis_redis: None,
            ratio_median: None,
        });
        if !args.skip_apalis && args.apalis_latency_samples > 0 {
            progress::note(format!(
                "idle pickup latency: apalis-redis ({} samples, up to {} s each)",
                args.apalis_latency_samples, args.sample_timeout
            ));
            let a = apalis_runs::latency(b, c, args.apalis_latency_samples, gap, per).await;
            let a = latency_outcome(a, "apalis-redis latency", &mut report.errors);
            let pair = report.latency.as_mut().expect("set above");
            pair.ratio_median = match (pair.voxfleet.median(), a.median()) {
                (Some(x), Some(y)) if x > 0.0 => Some(y / x),
                _ => None,
            };
            pair.apalis_redis = Some(a);
        }
    }
    if args.wants(Section::E2e) {
        end_to_end(b, args, report, timeout).await;
    }
    if args.wants(Section::Api) {
        progress::note(format!(
            "API: {} single and {} batch submissions ({} clients)",
            args.api_requests, args.api_batches, args.api_clients
        ));
        let plan = api::ApiPlan {
            clients: args.api_clients,
            requests: args.api_requests,
            batches: args.api_batches,
            batch_size: args.api_batch_size,
        };
        match api::run(b, &plan).await {
            Ok((figures, warnings)) => {
                report.errors.extend(warnings);
                report.api = Some(figures);
            }
            Err(e) => {
                let error = format!("{e:#}");
                report.errors.push(format!("API: {error}"));
                let failed = report::ApiRate::Failed { error };
                report.api = Some(report::ApiFigures {
                    clients: args.api_clients,
                    single: failed.clone(),
                    batch: failed,
                });
            }
        }
    }
}

/// Section 5: voxfleet end to end, then Celery when its Python is given.
async fn end_to_end(b: &Bench, args: &RunArgs, report: &mut Report, timeout: Duration) {
    let (n, c) = (args.e2e_jobs, args.e2e_concurrency);
    progress::note(format!("end to end, concurrency {c}: voxfleet ({n} jobs)"));
    let v = e2e::voxfleet(b, n, c, timeout).await;
    let v = outcome(v, "voxfleet end to end", &mut report.errors);
    note_throughput("voxfleet", &v);
    report.e2e = Some(E2eRow {
        jobs: n,
        concurrency: c,
        voxfleet: v,
        celery: None,
        ratio: None,
    });
    let Some(python) = &args.celery_python else {
        return;
    };
    progress::note(format!("end to end, concurrency {c}: Celery ({n} tasks)"));
    let p = e2e::celery(b, python, n, c).await;
    let p = outcome(p, "Celery end to end", &mut report.errors);
    note_throughput("celery", &p);
    let row = report.e2e.as_mut().expect("set above");
    row.ratio = row.voxfleet.ratio_to(&p);
    row.celery = Some(p);
}

/// One round of section 1 at concurrency `c`: voxfleet, then (unless skipped) apalis-redis.
async fn throughput_round(
    b: &Bench,
    args: &RunArgs,
    report: &mut Report,
    c: u32,
    round: u32,
    timeout: Duration,
) {
    let of = if args.rounds > 1 {
        format!(", round {round} of {}", args.rounds)
    } else {
        String::new()
    };
    progress::note(format!(
        "throughput, concurrency {c}{of}: voxfleet ({} jobs)",
        args.jobs
    ));
    let v = voxfleet_runs::throughput(b, c, round, args.jobs, timeout).await;
    let v = outcome(v, &format!("voxfleet throughput c={c}"), &mut report.errors);
    note_throughput("voxfleet", &v);
    // Recorded before the peer runs, so an interrupted run still shows it.
    report.throughput.push(ThroughputRow {
        concurrency: c,
        voxfleet: v,
        apalis_redis: None,
        ratio: None,
    });
    if !args.skip_apalis {
        progress::note(format!(
            "throughput, concurrency {c}{of}: apalis-redis ({} jobs)",
            args.jobs
        ));
        let a = apalis_runs::throughput(b, c, round, args.jobs, timeout).await;
        let a = outcome(
            a,
            &format!("apalis-redis throughput c={c}"),
            &mut report.errors,
        );
        note_throughput("apalis-redis", &a);
        let row = report.throughput.last_mut().expect("row pushed above");
        row.ratio = row.voxfleet.ratio_to(&a);
        row.apalis_redis = Some(a);
    }
}

fn outcome(r: anyhow::Result<Throughput>, what: &str, errors: &mut Vec<String>) -> Throughput {
    r.unwrap_or_else(|e| {
        let error = format!("{e:#}");
        errors.push(format!("{what}: {error}"));
        Throughput::Failed { error }
    })
}

fn latency_outcome(
    r: anyhow::Result<report::Latency>,
    what: &str,
    errors: &mut Vec<String>,
) -> report::Latency {
    r.unwrap_or_else(|e| {
        let error = format!("{e:#}");
        errors.push(format!("{what}: {error}"));
        report::Latency::Failed { error }
    })
}

fn note_throughput(who: &str, t: &Throughput) {
    match t {
        Throughput::Done {
            jobs_per_s,
            seconds,
            ..
        } => {
            progress::note(format!("  {who}: {jobs_per_s:.1} jobs/s ({seconds:.2} s)"));
        }
        Throughput::TimedOut {
            after_s,
            done,
            total,
        } => {
            progress::note(format!(
                "  {who}: timed out after {after_s:.0} s with {done}/{total} done"
            ));
        }
        Throughput::Failed { error } => progress::note(format!("  {who}: failed: {error}")),
    }
}

/// Section 4: the no-op throughput with more and more worker processes, on the one Redis
/// server and on a Redis Cluster started for the run.
async fn scaling(b: &Bench, args: &RunArgs, report: &mut Report, timeout: Duration) {
    let cores = report.machine.nproc.max(1);
    let cluster = if args.skip_cluster {
        None
    } else {
        let sp = progress::spinner("starting a Redis Cluster (6 nodes, 3 masters)");
        let c = tokio::task::spawn_blocking(voxfleet_testkit::cluster::RedisCluster::start).await;
        sp.finish_and_clear();
        match c {
            Ok(c) => Some(c),
            Err(e) => {
                report
                    .errors
                    .push(format!("starting the Redis Cluster: {e}"));
                None
            }
        }
    };
    let mut backends = vec![("redis", b.redis_url.clone())];
    if let Some(c) = &cluster {
        backends.push(("cluster", c.url()));
    }
    let c = args.scale_concurrency;
    for (backend, url) in &backends {
        for &w in &args.workers {
            progress::note(format!(
                "scaling on {backend}: {w} worker(s) x concurrency {c} ({} jobs)",
                args.jobs
            ));
            let label = format!("{backend}-");
            let t = voxfleet_runs::throughput_on(b, url, &label, w, c, args.jobs, timeout).await;
            let t = outcome(
                t,
                &format!("scaling {backend} {w} workers"),
                &mut report.errors,
            );
            note_throughput("voxfleet", &t);
            report.scaling.push(ScalingRow {
                backend: (*backend).to_string(),
                workers: w,
                concurrency: c,
                per_core: t.rate().map(|r| r / cores as f64),
                result: t,
            });
        }
    }
}
