//! voxfleet-bench-audio: decode speed of voxfleet-audio against the ffmpeg CLI.
//!
//! Generates (once, cached under `~/.cache/voxfleet/bench-audio/`) at least two minutes of
//! speech — espeak-ng reading a text, repeated with sox — as 44.1 kHz stereo PCM16 WAV, and the
//! same as MP3 (LAME 128k), FLAC and M4A (AAC 128k) via ffmpeg. Then, per format, times
//! decode + downmix + resample to 16 kHz mono f32 in voxfleet-audio (`decode_file`) and in
//! `ffmpeg -v error -threads 1 -i IN -ac 1 -ar 16000 -f f32le -` (read from a pipe), `--reps`
//! times each (default 5), and prints the medians and their ratio. Both run on one thread;
//! ffmpeg's figure includes its process start-up (tens of milliseconds).
//!
//! ```text
//! cargo build --release -p voxfleet-benches --bin voxfleet-bench-audio
//! $CARGO_TARGET_DIR/release/voxfleet-bench-audio [--reps 5] [--dir PATH]
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use voxfleet_audio::{DecodeOptions, decode_file, probe_file};

const TEXT: &str = "Speech recognition turns spoken language into text. A worker fleet takes \
    recordings from a queue, decodes them, resamples them to sixteen kilohertz, and hands the \
    samples to a model that writes down what was said. Each job has a payload, a status, and a \
    number of attempts. When a worker crashes, its lease runs out, and another worker picks the \
    job up again. Meetings, interviews, lectures and phone calls all end up as audio files in \
    many formats, from plain wave files to compressed music formats.";
const MIN_SECONDS: f64 = 120.0;

/// Decode + downmix + resample speed of voxfleet-audio against the ffmpeg CLI.
#[derive(Debug, clap::Parser)]
struct Cli {
    /// Timed runs per format (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,
    /// Where the generated recordings are kept (default ~/.cache/voxfleet/bench-audio).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let reps = cli.reps as usize;
    let dir = match cli.dir {
        Some(d) => d,
        None => PathBuf::from(std::env::var("HOME").context("HOME")?)
            .join(".cache/voxfleet/bench-audio"),
    };
    std::fs::create_dir_all(&dir)?;
    let files = generate(&dir)?;

    println!("decode + downmix + resample to 16 kHz mono f32, median of {reps} runs, one thread");
    println!(
        "{:<6} {:>8} {:>12} {:>12} {:>8} {:>12}",
        "format", "audio s", "voxfleet ms", "ffmpeg ms", "ratio", "voxfleet ×rt"
    );
    for (name, path) in &files {
        let audio_s = probe_file(path)?.duration_s.unwrap_or(0.0);
        let mut ours = Vec::with_capacity(reps);
        let mut theirs = Vec::with_capacity(reps);
        let (mut n_ours, mut n_theirs) = (0, 0);
        for _ in 0..reps {
            let t = Instant::now();
            let audio = decode_file(path, &DecodeOptions { max_duration: None })?;
            ours.push(t.elapsed());
            n_ours = audio.samples.len();
            let t = Instant::now();
            n_theirs = ffmpeg_decode(path)?;
            theirs.push(t.elapsed());
        }
        let (ours, theirs) = (median(ours), median(theirs));
        let diff = n_ours.abs_diff(n_theirs);
        ensure!(
            diff < 16_000,
            "{name}: {n_ours} samples vs ffmpeg's {n_theirs}"
        );
        println!(
            "{:<6} {:>8.1} {:>12.1} {:>12.1} {:>8.2} {:>12.0}",
            name,
            audio_s,
            ours.as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            ours.as_secs_f64() / theirs.as_secs_f64(),
            audio_s / ours.as_secs_f64(),
        );
    }
    // ffmpeg's share that is process start-up: the same command on a 0.1 s file.
    let tiny = dir.join("tiny.wav");
    if !tiny.exists() {
        tool(
            "sox",
            &[
                "-n",
                "-r",
                "44100",
                "-c",
                "2",
                "-b",
                "16",
                path_str(&tiny)?,
                "trim",
                "0",
                "0.1",
            ],
        )?;
    }
    let mut startup = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        ffmpeg_decode(&tiny)?;
        startup.push(t.elapsed());
    }
    println!("ratio = voxfleet time / ffmpeg time (below 1: voxfleet is faster)");
    println!(
        "ffmpeg process start-up (same command on a 0.1 s file): {:.1} ms, included above",
        median(startup).as_secs_f64() * 1e3
    );
    Ok(())
}

/// Creates the test files if missing; returns (format, path) pairs.
fn generate(dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let wav = dir.join("speech.wav");
    if !wav.exists() {
        let part = dir.join("part.wav");
        tool("espeak-ng", &["-w", path_str(&part)?, TEXT])?;
        let part_s = probe_file(&part)?.duration_s.context("part duration")?;
        let copies = (MIN_SECONDS / part_s).ceil() as usize;
        let mut args: Vec<&str> = vec![path_str(&part)?; copies];
        let tmp = dir.join("speech.tmp.wav");
        args.extend(["-r", "44100", "-c", "2", "-b", "16", path_str(&tmp)?]);
        tool("sox", &args)?;
        std::fs::rename(&tmp, &wav)?;
    }
    let mut files = vec![("wav", wav.clone())];
    for (name, ext, codec) in [
        ("mp3", "mp3", "libmp3lame"),
        ("flac", "flac", "flac"),
        ("m4a", "m4a", "aac"),
    ] {
        let out = dir.join(format!("speech.{ext}"));
        if !out.exists() {
            let tmp = dir.join(format!("speech.tmp.{ext}"));
            let mut args = vec!["-v", "error", "-y", "-i", path_str(&wav)?, "-c:a", codec];
            if codec != "flac" {
                args.extend(["-b:a", "128k"]);
            }
            args.push(path_str(&tmp)?);
            tool("ffmpeg", &args)?;
            std::fs::rename(&tmp, &out)?;
        }
        files.push((name, out));
    }
    let seconds = probe_file(&wav)?.duration_s.unwrap_or(0.0);
    ensure!(
        seconds >= MIN_SECONDS,
        "generated speech is only {seconds:.1} s"
    );
    Ok(files)
}

/// Decodes with the ffmpeg CLI to a pipe; returns the number of f32 samples.
fn ffmpeg_decode(path: &Path) -> Result<usize> {
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-threads", "1", "-i", path_str(path)?])
        .args(["-ac", "1", "-ar", "16000", "-f", "f32le", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .context("running ffmpeg (apt-get install ffmpeg)")?;
    let mut bytes = Vec::new();
    child
        .stdout
        .take()
        .context("ffmpeg stdout")?
        .read_to_end(&mut bytes)?;
    ensure!(
        child.wait()?.success(),
        "ffmpeg failed on {}",
        path.display()
    );
    Ok(bytes.len() / 4)
}

fn tool(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (install the {program} package)"))?;
    ensure!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("non-UTF-8 path")
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
