//! voxfleet-bench-openai: what voxfleet adds on top of its engine, end to end through the
//! OpenAI-compatible endpoint: upload, probe, storage, queue, the worker's fetch and decode,
//! the transcription, the segments' write to PostgreSQL, the wait and the answer.
//!
//! - Audio: `--files` recordings of 2–4 espeak-ng sentences each (about 10–20 s), plus one for
//!   the warm-up, cached under `~/.cache/voxfleet/bench-openai/`.
//! - The peer is the engine itself, in this process, on the same files with the worker's
//!   settings (tiny.en, CTranslate2 int8, `--threads` threads, Silero VAD): the median of
//!   `--reps` runs of `WhisperEngine::transcribe` per file, after a warm-up; it runs before the
//!   services start, so nothing else competes for the cores.
//! - End to end: the release `voxfleet-control-plane` and `voxfleet-worker` (next to this
//!   binary) on a fresh database and Redis key prefix, the worker on the `gpu` queue (where
//!   the endpoint's jobs go), preloaded, with `--cpu-threads --threads`; each file is sent once (a repeat would be answered from its
//!   first run) with `model=whisper-1`, one request at a time; the wall time from the request's
//!   first byte to the answer's last.
//! - Overhead per file = end-to-end wall time − the engine's time on that file; printed with
//!   the in-process decode time (part of the overhead: the worker decodes every file).
//!
//! ```text
//! cargo build --release -p voxfleet-benches --bin voxfleet-bench-openai
//! cargo build --release -p voxfleet-control-plane -p voxfleet-worker --bins
//! $CARGO_TARGET_DIR/release/voxfleet-bench-openai [--files 8] [--reps 3] [--threads 2]
//! ```

#[path = "../cli.rs"]
mod cli;
// Shared with the other benches; not every helper is used here.
#[allow(dead_code)]
#[path = "../procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../progress.rs"]
mod progress;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cli::{parse_positive, run};
use procs::Proc;
use voxfleet_asr::{DeviceSpec, EngineSettings, ModelCache, TranscribeOptions};

const SENTENCES: [&str; 12] = [
    "The meeting starts at nine and the agenda has three items.",
    "First we look at the numbers from last month.",
    "Sales went up in the north and stayed flat in the south.",
    "The new office opens in the spring, if the permits arrive on time.",
    "Please send your comments on the draft before Friday.",
    "The support team answered most questions within an hour.",
    "Two customers asked for a longer trial period.",
    "We will try a shorter release cycle for the next quarter.",
    "The server room needs a second cooling unit.",
    "Lunch is provided for everyone who stays for the workshop.",
    "Thank you all for coming, and see you next week.",
    "The recording of this call will be shared with the team.",
];

#[derive(clap::Parser)]
struct Args {
    /// Recordings sent through the endpoint (each once).
    #[arg(long, default_value_t = 8, value_parser = parse_positive)]
    files: usize,
    /// In-process engine runs per file (the median is kept).
    #[arg(long, default_value_t = 3, value_parser = parse_positive)]
    reps: usize,
    /// CPU threads per transcription, on both sides.
    #[arg(long, default_value_t = 2, value_parser = parse_positive)]
    threads: usize,
    /// Where the recordings are kept.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(
        long,
        env = "VOXFLEET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    redis_url: String,
    /// A PostgreSQL server (a fresh database is made on it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache/voxfleet/bench-openai")
}

/// Recording `i` (0 is the warm-up): 2–4 sentences, 16 kHz mono WAV.
fn recording(dir: &Path, i: usize) -> Result<PathBuf> {
    let wav = dir.join(format!("file-{i}.wav"));
    if wav.is_file() {
        return Ok(wav);
    }
    std::fs::create_dir_all(dir)?;
    let n = 2 + i % 3;
    let text: Vec<&str> = (0..n)
        .map(|k| SENTENCES[(i * 5 + k) % SENTENCES.len()])
        .collect();
    let raw = dir.join(format!("file-{i}.raw.wav"));
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(text.join(" ")))?;
    run(Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav))?;
    std::fs::remove_file(&raw)?;
    Ok(wav)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per file: (decode seconds, engine seconds), in this process.
fn engine_times(files: &[PathBuf], args: &Args) -> Result<Vec<(f64, f64)>> {
    let models = voxfleet_models::ModelsDir::new(
        std::env::var_os("VOXFLEET_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(voxfleet_models::default_models_dir),
    );
    let cache = ModelCache::with_settings(
        models,
        DeviceSpec::Cpu,
        EngineSettings {
            cpu_threads: args.threads,
            ..EngineSettings::default()
        },
    )?;
    let engine = cache
        .whisper("tiny.en")
        .context("tiny.en (run `voxfleet-worker models fetch` first)")?;
    let vad = cache.vad()?;
    let opts = TranscribeOptions::default();
    let mut go = |_: &voxfleet_asr::Progress| ControlFlow::Continue(());
    let pb = progress::bar((files.len() * args.reps) as u64, "engine in process");
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let t = Instant::now();
        let audio = voxfleet_audio::decode_file(f, &voxfleet_audio::DecodeOptions::default())?;
        let decode_s = t.elapsed().as_secs_f64();
        if i == 0 {
            engine.transcribe(&audio.samples, &opts, Some(&vad), &mut go)?;
        }
        let mut runs = Vec::new();
        for _ in 0..args.reps {
            let t = Instant::now();
            engine.transcribe(&audio.samples, &opts, Some(&vad), &mut go)?;
            runs.push(t.elapsed().as_secs_f64());
            pb.inc(1);
        }
        out.push((decode_s, median(runs)));
    }
    pb.finish_and_clear();
    Ok(out)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn send(http: &reqwest::Client, base: &str, token: &str, f: &Path) -> Result<String> {
    let form = reqwest::multipart::Form::new()
        .text("model", "whisper-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(f)?).file_name(
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            ),
        );
    let res = http
        .post(format!("{base}/v1/audio/transcriptions"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = res.status();
    let body = res.text().await?;
    ensure!(status.is_success(), "{status}: {body}");
    Ok(body)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let dir = args.dir.clone().unwrap_or_else(cache_dir);
    let all: Vec<PathBuf> = (0..=args.files)
        .map(|i| recording(&dir, i))
        .collect::<Result<_>>()?;
    let (warm, files) = (&all[0], &all[1..]);

    // The peer first, alone on the machine.
    let engine = tokio::task::block_in_place(|| engine_times(files, &args))?;

    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the binary's folder")?
        .to_path_buf();
    let tag = format!("openai{}", std::process::id());
    let db_url = format!(
        "{}/voxfleet_bench_{tag}",
        args.postgres.trim_end_matches('/')
    );
    let port = free_port()?;
    let bind = format!("127.0.0.1:{port}");
    let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let work = tempfile::tempdir()?;
    let storage = format!("file://{}", work.path().join("media").display());
    let index = work.path().join("index");
    let index = index.to_string_lossy();
    let threads = args.threads.to_string();
    let envs = [
        ("VOXFLEET_REDIS_URL", args.redis_url.as_str()),
        ("VOXFLEET_DATABASE_URL", db_url.as_str()),
        ("VOXFLEET_KEY_PREFIX", tag.as_str()),
        ("VOXFLEET_STORAGE_URL", storage.as_str()),
        ("VOXFLEET_INDEX_DIR", &index),
        ("VOXFLEET_BIND", bind.as_str()),
        ("VOXFLEET_ADMIN_TOKEN", token.as_str()),
        ("VOXFLEET_LOG", "warn"),
    ];
    let mut cp = Proc::spawn(
        "control plane",
        &bin_dir.join("voxfleet-control-plane"),
        &[],
        &envs,
        work.path().join("control-plane.log"),
    )?;
    let base = format!("http://{bind}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let up = Instant::now();
    loop {
        cp.check_alive()?;
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if up.elapsed() > Duration::from_secs(120) {
            bail!("the control plane did not answer within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The `gpu` queue only: each transcription queues a search-index update on `cpu`, which a
    // worker of that queue would run between the measured requests (the first one loads the
    // text model) and count as overhead that is not the request's.
    let worker_args: Vec<String> = ["--queues", "gpu", "--preload", "--cpu-threads", &threads]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut worker = Proc::spawn(
        "worker",
        &bin_dir.join("voxfleet-worker"),
        &worker_args,
        &envs,
        work.path().join("worker.log"),
    )?;

    send(&http, &base, &token, warm)
        .await
        .context("warm-up request")?;
    let pb = progress::bar(files.len() as u64, "through /v1/audio/transcriptions");
    let mut walls = Vec::new();
    for f in files {
        worker.check_alive()?;
        let t = Instant::now();
        send(&http, &base, &token, f).await?;
        walls.push(t.elapsed().as_secs_f64());
        pb.inc(1);
    }
    pb.finish_and_clear();
    worker.stop(Duration::from_secs(40)).await?;
    cp.stop(Duration::from_secs(10)).await?;

    println!(
        "voxfleet-bench-openai: {} files, tiny.en CTranslate2 int8, {} threads, VAD on",
        files.len(),
        args.threads
    );
    println!(
        "{:<14} {:>9} {:>11} {:>11} {:>13} {:>7}",
        "file", "audio s", "engine ms", "e2e ms", "overhead ms", "ratio"
    );
    let mut overheads = Vec::new();
    for ((f, &(_, eng)), wall) in files.iter().zip(&engine).zip(&walls) {
        let secs = voxfleet_audio::probe_file(f)?.duration_s.unwrap_or(0.0);
        let over = (wall - eng) * 1000.0;
        overheads.push(over);
        println!(
            "{:<14} {:>9.1} {:>11.0} {:>11.0} {:>13.0} {:>7.2}",
            f.file_name().unwrap_or_default().to_string_lossy(),
            secs,
            eng * 1000.0,
            wall * 1000.0,
            over,
            wall / eng
        );
    }
    let decode_ms = median(engine.iter().map(|e| e.0 * 1000.0).collect());
    println!(
        "median overhead {:.0} ms per file (mean {:.0} ms); of it, decoding in process takes a median {decode_ms:.0} ms",
        median(overheads.clone()),
        overheads.iter().sum::<f64>() / overheads.len() as f64
    );
    println!(
        "ratio = end to end / engine alone (the engine in this process, median of {} runs)",
        args.reps
    );
    // The bench's database stays small; drop it.
    let admin = format!("{}/postgres", args.postgres.trim_end_matches('/'));
    if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
        // `tag` is "openai" and this process's id: nothing a user typed.
        let q = format!("DROP DATABASE IF EXISTS voxfleet_bench_{tag} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(q)).execute(&mut c).await;
    }
    Ok(())
}
