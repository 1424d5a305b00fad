//! The figures of one run, the plain summary table printed at the end, and the JSON file.
use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    /// How this harness was built (`debug` or `release`); the worker binaries it runs are
    /// looked up beside it, so they are normally built the same way.
    pub profile: String,
    pub run_id: String,
    pub machine: Machine,
    pub settings: Settings,
    pub throughput: Vec<ThroughputRow>,
    pub latency: Option<LatencyPair>,
    pub api: Option<ApiFigures>,
    pub scaling: Vec<ScalingRow>,
    pub e2e: Option<E2eRow>,
    /// Failures and clean-up warnings; empty on a clean run.
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs (sysinfo).
    pub nproc: usize,
    pub physical_cores: Option<usize>,
    pub cpu: String,
    pub memory_bytes: u64,
    pub os: String,
    pub redis_version: String,
    pub postgres_version: String,
}

impl Machine {
    pub fn detect(redis_version: String, postgres_version: String) -> Self {
        let fallback_nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let (nproc, cpu, memory_bytes) = match sysinfo::System::new() {
            Ok(mut sys) => {
                sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
                sys.refresh_memory();
                let cpu = sys
                    .cpus()
                    .first()
                    .map(|c| c.brand().trim().to_string())
                    .unwrap_or_default();
                (sys.cpus().len(), cpu, sys.total_memory())
            }
            Err(_) => (fallback_nproc, String::new(), 0),
        };
        Self {
            nproc,
            physical_cores: sysinfo::System::physical_core_count().ok(),
            cpu,
            memory_bytes,
            os: sysinfo::System::long_os_version().unwrap_or_default(),
            redis_version,
            postgres_version,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub jobs: usize,
    pub concurrency: Vec<u32>,
    /// Throughput rounds per concurrency.
    pub rounds: u32,
    pub timeout_s: u64,
    pub latency_samples: usize,
    pub apalis_latency_samples: usize,
    pub sample_timeout_s: u64,
    pub sample_gap_ms: u64,
    pub api_requests: usize,
    pub api_clients: usize,
    pub api_batches: usize,
    pub api_batch_size: usize,
    pub apalis: bool,
    pub workers: Vec<usize>,
    pub scale_concurrency: u32,
}

/// One run of section 4.
#[derive(Debug, Serialize)]
pub struct ScalingRow {
    /// `redis` (one server) or `cluster` (six nodes, three masters).
    pub backend: String,
    pub workers: usize,
    pub concurrency: u32,
    pub result: Throughput,
    /// jobs/s divided by the machine's logical CPUs.
    pub per_core: Option<f64>,
}

/// Section 5: submitted through the API and run, against Celery.
#[derive(Debug, Serialize)]
pub struct E2eRow {
    pub jobs: usize,
    pub concurrency: u32,
    pub voxfleet: Throughput,
    pub celery: Option<Throughput>,
    /// voxfleet jobs/s ÷ Celery jobs/s, when both finished.
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ThroughputRow {
    pub concurrency: u32,
    pub voxfleet: Throughput,
    pub apalis_redis: Option<Throughput>,
    /// voxfleet jobs/s ÷ apalis-redis jobs/s, when both finished.
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Throughput {
    Done {
        jobs: usize,
        /// First handler start to last finish.
        seconds: f64,
        jobs_per_s: f64,
        /// What was checked after the run (all succeeded, persisted, acknowledged).
        checks: String,
    },
    TimedOut {
        after_s: f64,
        done: u64,
        total: u64,
    },
    Failed {
        error: String,
    },
}

impl Throughput {
    pub fn rate(&self) -> Option<f64> {
        match self {
            Self::Done { jobs_per_s, .. } => Some(*jobs_per_s),
            _ => None,
        }
    }

    /// This run's jobs/s ÷ `peer`'s, when both finished.
    pub fn ratio_to(&self, peer: &Throughput) -> Option<f64> {
        match (self.rate(), peer.rate()) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        }
    }

    fn cell(&self) -> String {
        match self {
            Self::Done {
                jobs_per_s,
                seconds,
                ..
            } => format!("{jobs_per_s:.1} ({seconds:.2} s)"),
            Self::TimedOut {
                after_s,
                done,
                total,
            } => {
                format!("timed out after {after_s:.0} s with {done}/{total} done")
            }
            Self::Failed { .. } => "failed (see errors)".into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LatencyPair {
    /// Worker concurrency used for both.
    pub concurrency: u32,
    pub voxfleet: Latency,
    pub apalis_redis: Option<Latency>,
    /// apalis-redis median ÷ voxfleet median (how many times sooner voxfleet starts a job).
    pub ratio_median: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Latency {
    Measured {
        samples: usize,
        timeouts: usize,
        median_ms: Option<f64>,
        p99_ms: Option<f64>,
        min_ms: Option<f64>,
        max_ms: Option<f64>,
        samples_ms: Vec<f64>,
    },
    Failed {
        error: String,
    },
}

impl Latency {
    pub fn from_samples(samples: usize, mut ms: Vec<f64>, timeouts: usize) -> Self {
        ms.sort_by(f64::total_cmp);
        Self::Measured {
            samples,
            timeouts,
            median_ms: percentile(&ms, 50.0),
            p99_ms: percentile(&ms, 99.0),
            min_ms: ms.first().copied(),
            max_ms: ms.last().copied(),
            samples_ms: ms,
        }
    }

    pub fn median(&self) -> Option<f64> {
        match self {
            Self::Measured { median_ms, .. } => *median_ms,
            Self::Failed { .. } => None,
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Serialize)]
pub struct ApiFigures {
    pub clients: usize,
    pub single: ApiRate,
    pub batch: ApiRate,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApiRate {
    Measured {
        requests: usize,
        submissions: usize,
        /// Responses other than 202, and transport errors.
        errors: usize,
        seconds: f64,
        requests_per_s: f64,
        submissions_per_s: f64,
    },
    Failed {
        error: String,
    },
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.0}"),
        None => "-".into(),
    }
}

/// The median (the mean of the middle two for an even count) and the lowest of `xs`.
fn median_and_lowest(xs: &[f64]) -> Option<(f64, f64)> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Some((median, v[0]))
}

fn ratio(v: Option<f64>) -> String {
    match v {
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) => format!("{r:.2}x"),
        None => "n/a".into(),
    }
}

/// The plain summary table (stdout).
pub fn summary(r: &Report) -> String {
    let mut o = String::new();
    let m = &r.machine;
    let s = &r.settings;
    let _ = writeln!(
        o,
        "voxfleet-bench  run {}  started {}  ({} build)",
        r.run_id, r.started_at, r.profile
    );
    let _ = writeln!(
        o,
        "machine: nproc {} (physical cores {}), {}, {:.1} GiB RAM, {}; Redis {}, PostgreSQL {}",
        m.nproc,
        m.physical_cores.map_or("?".into(), |c| c.to_string()),
        if m.cpu.is_empty() {
            "unknown CPU"
        } else {
            &m.cpu
        },
        m.memory_bytes as f64 / (1u64 << 30) as f64,
        m.os,
        m.redis_version,
        m.postgres_version
    );
    if !r.throughput.is_empty() {
        let _ = writeln!(
            o,
            "\n1. No-op throughput: `diagnostic` {{}} jobs, N = {} per run, one worker process, leases on",
            s.jobs
        );
        let _ = writeln!(
            o,
            "   {:<12} {:<34} {:<44} voxfleet/apalis",
            "concurrency", "voxfleet jobs/s", "apalis-redis 1.0.0 jobs/s (defaults)"
        );
        for row in &r.throughput {
            let apalis = row
                .apalis_redis
                .as_ref()
                .map_or("not run".into(), Throughput::cell);
            let _ = writeln!(
                o,
                "   {:<12} {:<34} {:<44} {}",
                row.concurrency,
                row.voxfleet.cell(),
                apalis,
                ratio(row.ratio)
            );
        }
        if s.rounds > 1 {
            for &c in &s.concurrency {
                let ratios: Vec<f64> = r
                    .throughput
                    .iter()
                    .filter(|row| row.concurrency == c)
                    .filter_map(|row| row.ratio)
                    .collect();
                if let Some((median, lowest)) = median_and_lowest(&ratios) {
                    let _ = writeln!(
                        o,
                        "   c={c}: voxfleet/apalis over {} rounds: median {median:.2}x, lowest {lowest:.2}x",
                        ratios.len()
                    );
                }
            }
        }
        for row in &r.throughput {
            for (who, t) in [
                ("voxfleet", Some(&row.voxfleet)),
                ("apalis-redis", row.apalis_redis.as_ref()),
            ] {
                if let Some(Throughput::Done { checks, .. }) = t {
                    let _ = writeln!(o, "   c={} {who}: {checks}", row.concurrency);
                }
            }
        }
        let _ = writeln!(
            o,
            "   (time from the first job's start to the last job's finish; goal: voxfleet/apalis >= 2x)"
        );
    }
    if let Some(l) = &r.latency {
        let _ = writeln!(
            o,
            "\n2. Idle pickup latency: submit -> handler started, worker idle, concurrency {}, {} ms between samples",
            l.concurrency, s.sample_gap_ms
        );
        let _ = writeln!(
            o,
            "   {:<14} {:>8} {:>9} {:>11} {:>11} {:>11} {:>11}",
            "", "samples", "timeouts", "median ms", "p99 ms", "min ms", "max ms"
        );
        for (who, lat) in [
            ("voxfleet", Some(&l.voxfleet)),
            ("apalis-redis", l.apalis_redis.as_ref()),
        ] {
            match lat {
                Some(Latency::Measured {
                    samples,
                    timeouts,
                    median_ms,
                    p99_ms,
                    min_ms,
                    max_ms,
                    ..
                }) => {
                    let _ = writeln!(
                        o,
                        "   {who:<14} {samples:>8} {timeouts:>9} {:>11} {:>11} {:>11} {:>11}",
                        ms(*median_ms),
                        ms(*p99_ms),
                        ms(*min_ms),
                        ms(*max_ms)
                    );
                }
                Some(Latency::Failed { .. }) => {
                    let _ = writeln!(o, "   {who:<14} failed (see errors)");
                }
                None => {
                    let _ = writeln!(o, "   {who:<14} not run");
                }
            }
        }
        let _ = writeln!(o, "   apalis/voxfleet (median): {}", ratio(l.ratio_median));
        let _ = writeln!(
            o,
            "   (per-sample timeout {} s; a timed-out sample is counted, not averaged in)",
            s.sample_timeout_s
        );
        if matches!(l.apalis_redis, Some(Latency::Measured { .. })) {
            let _ = writeln!(
                o,
                "   (an idle apalis-redis worker fetches again when its heartbeat timer fires, 30 s by \
                 default; a sample submitted shortly after the previous pickup waits close to a full \
                 interval, so these samples sit near its worst case)"
            );
        }
    }
    if let Some(a) = &r.api {
        let _ = writeln!(
            o,
            "\n3. API submissions: voxfleet-control-plane, {} concurrent clients, no worker running",
            a.clients
        );
        for (what, rate) in [
            ("POST /v1/jobs", &a.single),
            ("POST /v1/jobs/batch", &a.batch),
        ] {
            match rate {
                ApiRate::Measured {
                    requests,
                    submissions,
                    errors,
                    seconds,
                    requests_per_s,
                    submissions_per_s,
                } => {
                    let _ = writeln!(
                        o,
                        "   {what:<20} {submissions_per_s:>9.1} submissions/s  ({submissions} submissions in {requests} requests, {requests_per_s:.1} req/s, {seconds:.2} s, {errors} errors)"
                    );
                }
                ApiRate::Failed { .. } => {
                    let _ = writeln!(o, "   {what:<20} failed (see errors)");
                }
            }
        }
    }
    if !r.scaling.is_empty() {
        let _ = writeln!(
            o,
            "\n4. Scaling: `diagnostic` {{}} jobs, N = {} per run, worker processes of concurrency {} each; \
             {} logical CPUs run workers, Redis and PostgreSQL together",
            s.jobs, s.scale_concurrency, r.machine.nproc
        );
        let _ = writeln!(
            o,
            "   {:<9} {:>8} {:<34} {:>14} {:>12}",
            "backend", "workers", "jobs/s", "jobs/s per CPU", "vs 1 worker"
        );
        for row in &r.scaling {
            let one = r
                .scaling
                .iter()
                .find(|x| x.backend == row.backend && x.workers == 1)
                .and_then(|x| x.result.rate());
            let speedup = match (row.result.rate(), one) {
                (Some(x), Some(y)) if y > 0.0 => Some(x / y),
                _ => None,
            };
            let _ = writeln!(
                o,
                "   {:<9} {:>8} {:<34} {:>14} {:>12}",
                row.backend,
                row.workers,
                row.result.cell(),
                row.per_core.map_or("-".into(), |v| format!("{v:.1}")),
                ratio(speedup)
            );
        }
    }
    if let Some(e) = &r.e2e {
        let _ = writeln!(
            o,
            "\n5. End to end: {} no-op jobs submitted (voxfleet: POST /v1/jobs/batch, 100 per call) and run by one worker at concurrency {}",
            e.jobs, e.concurrency
        );
        let celery = e
            .celery
            .as_ref()
            .map_or("not run (--celery-python)".into(), Throughput::cell);
        let _ = writeln!(
            o,
            "   {:<34} {:<44} voxfleet/Celery",
            "voxfleet jobs/s", "Celery jobs/s (threads pool)"
        );
        let _ = writeln!(
            o,
            "   {:<34} {:<44} {}",
            e.voxfleet.cell(),
            celery,
            ratio(e.ratio)
        );
        for (who, t) in [
            ("voxfleet", Some(&e.voxfleet)),
            ("celery", e.celery.as_ref()),
        ] {
            if let Some(Throughput::Done { checks, .. }) = t {
                let _ = writeln!(o, "   {who}: {checks}");
            }
        }
        let _ = writeln!(
            o,
            "   (time from the first submission to the last job's end; goal: voxfleet/Celery >= 10x)"
        );
    }
    if !r.errors.is_empty() {
        let _ = writeln!(o, "\nerrors:");
        for e in &r.errors {
            let _ = writeln!(o, "   - {e}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[1.0, 2.0], 50.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn median_and_lowest_of_unsorted_ratios() {
        assert_eq!(median_and_lowest(&[2.1, 1.5, 1.9]), Some((1.9, 1.5)));
        assert_eq!(median_and_lowest(&[2.0, 1.0, 3.0, 1.5]), Some((1.75, 1.0)));
        assert_eq!(median_and_lowest(&[]), None);
    }
}
