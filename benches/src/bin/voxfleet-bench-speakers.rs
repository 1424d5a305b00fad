//! voxfleet-bench-speakers: speaker-embedding throughput of voxfleet-speakers (Kaldi fbank in
//! Rust + CAM++ on ONNX Runtime through `ort`, batched) against the same ONNX file run from
//! Python (onnxruntime + kaldi-native-fbank + numpy) in the same run on the same clips, and the
//! real-time factor of the whole diarization pipeline on CPU.
//!
//! - Audio: espeak-ng reads 24 sentences in four voices (`en-us`, `en-us+f3`, `en-gb+m3`,
//!   `en-us+f4`), sox converts each to 16 kHz mono PCM16, `voxfleet_audio::decode_file` decodes
//!   them; cached under `~/.cache/voxfleet/bench-speakers/`. Leading and trailing silence is cut.
//! - Embeddings: `--clips` clips of `--clip-seconds` (1.5 s: CAM++'s usual sub-segment) spread
//!   evenly over the ~5 minutes of speech. voxfleet: `Embedder::embed_clips` on all of them
//!   (batches of 32 equal-length clips). Python: `python/speaker_embed.py` in the venv
//!   `~/.cache/voxfleet/venv-speakers` (created on first use: `python3 -m venv` then
//!   `pip install onnxruntime==1.23.2 kaldi-native-fbank==1.23.0 numpy==2.4.6`), the same fbank
//!   settings (×32768, 80 bins, 25/10 ms, dither 0, snip_edges, Povey window, 20 Hz–Nyquist),
//!   mean subtraction, batches of 32, timed inside Python (interpreter start, imports and model
//!   load excluded). Both sides: one warm-up batch, then `--reps` passes, median reported. The
//!   embeddings of the two sides are compared (cosine similarity per clip, minimum must be
//!   ≥ 0.99).
//! - Threads: voxfleet's `Embedder` keeps one single-threaded ONNX session per core and runs
//!   batches on them in parallel; Python is run as a typical user would, one session with
//!   ONNX Runtime's default intra-op pool (`intra_op_num_threads = 0`). Both use every CPU.
//!   `--threads N` below the CPU count re-runs the bench under `taskset -c 0-(N-1)`: both
//!   processes then see the same N CPUs (ONNX Runtime 1.23 still sizes its default pool from
//!   the physical cores; taskset does not shrink it). The threads each process holds after
//!   warm-up are printed.
//! - Diarization: a three-voice espeak conversation (`en-us`, `en-us+f3`, `en-gb+m3`, ≥ 2 min,
//!   0.3 s between turns) through `Diarizer::run` with `DiarizeOptions::default()`; wall time,
//!   RTF, the split segmentation / embeddings / clustering+aggregation (from the progress
//!   callback: segmentation is its first half) and the DER against the known turns (collar
//!   0.25 s). No Python peer for this (pyannote.audio needs torch).
//!
//! Models: `--model` / `--segmentation`, else the models directory (`VOXFLEET_MODELS_DIR` or
//! `~/.cache/voxfleet/models`, `models fetch` first), else `~/.cache/voxfleet/staging-onnx/`.
//! ONNX Runtime: `ORT_DYLIB_PATH`, else the models directory's, else the staging copy.
//!
//! ```text
//! cargo build --release -p voxfleet-benches --bin voxfleet-bench-speakers
//! $CARGO_TARGET_DIR/release/voxfleet-bench-speakers [--clips 256] [--clip-seconds 1.5] [--reps 5] [--threads N]
//! ```

#[path = "../cli.rs"]
mod cli;
#[path = "../progress.rs"]
#[allow(dead_code)]
mod progress;
#[path = "../speaker_models.rs"]
mod speaker_models;
#[path = "voxfleet-bench-speakers/speech.rs"]
mod speech;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use cli::{parse_positive, run};
use progress::{bar, spinner};
use speech::{SAMPLE_RATE, SENTENCES, VOICES, conversation, speech};
use voxfleet_speakers::{
    DiarizeOptions, Diarizer, Embedder, Fbank, FbankOptions, Segmenter, WindowType,
    cosine_similarity, diarization_error_rate,
};

const BATCH: usize = 32;
const VENV_PACKAGES: [&str; 3] = [
    "onnxruntime==1.23.2",
    "kaldi-native-fbank==1.23.0",
    "numpy==2.4.6",
];
const PY_SCRIPT: &str = include_str!("../../python/speaker_embed.py");
const PINNED_ENV: &str = "VOXFLEET_BENCH_SPEAKERS_CPUS";

/// Speaker-embedding throughput of voxfleet against Python onnxruntime + kaldi-native-fbank on
/// the same CAM++ ONNX file and clips, and the diarization real-time factor.
///
/// The Python peer runs in ~/.cache/voxfleet/venv-speakers, created on first use with
/// `python3 -m venv` and `pip install onnxruntime==1.23.2 kaldi-native-fbank==1.23.0
/// numpy==2.4.6` (network needed once).
#[derive(Debug, clap::Parser)]
struct Args {
    /// Clips to embed per pass.
    #[arg(long, default_value_t = 256, value_parser = parse_positive)]
    clips: usize,
    /// Length of each clip in seconds.
    #[arg(long, default_value_t = 1.5)]
    clip_seconds: f64,
    /// Timed passes per side and diarization runs (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = parse_positive)]
    reps: usize,
    /// CPUs for both sides (ONNX Runtime's default pool on both; below the CPU count the bench
    /// re-runs itself under `taskset -c 0-(N-1)`). Default: every CPU.
    #[arg(long, value_parser = parse_positive)]
    threads: Option<usize>,
    /// Speaker-embedding ONNX file (an fbank80 model such as CAM++).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Use the Hamming window (WeSpeaker's own models) instead of Povey (CAM++).
    #[arg(long)]
    hamming: bool,
    /// pyannote segmentation-3.0 ONNX file.
    #[arg(long)]
    segmentation: Option<PathBuf>,
    /// Skip the Python peer.
    #[arg(long)]
    no_python: bool,
    /// Skip the diarization run.
    #[arg(long)]
    no_diarization: bool,
    /// Where the generated speech and the clip files are kept.
    #[arg(long, default_value_os_t = default_dir())]
    dir: PathBuf,
}

fn home() -> Result<PathBuf> {
    Ok(PathBuf::from(std::env::var("HOME").context("HOME")?))
}

fn default_dir() -> PathBuf {
    home()
        .unwrap_or_default()
        .join(".cache/voxfleet/bench-speakers")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Threads this process holds now (`/proc/self/status`).
fn threads_in_process() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    // Under the taskset re-run, PINNED_ENV holds the machine's CPU count.
    let cpus = match std::env::var(PINNED_ENV).ok().and_then(|v| v.parse().ok()) {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let threads = args.threads.unwrap_or(cpus);
    ensure!(
        threads <= cpus,
        "--threads {threads}: only {cpus} CPUs here"
    );
    // ONNX Runtime sizes its pool itself (speakers sets no thread count): restrict the CPUs of
    // the whole process tree instead, once.
    if threads < cpus && std::env::var_os(PINNED_ENV).is_none() {
        let status = Command::new("taskset")
            .args(["-c", &format!("0-{}", threads - 1)])
            .arg(std::env::current_exe()?)
            .args(std::env::args().skip(1))
            .env(PINNED_ENV, cpus.to_string())
            .status()
            .context("taskset (util-linux)")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let clip_len = (args.clip_seconds * SAMPLE_RATE as f64).round() as usize;
    ensure!(
        clip_len >= 400,
        "--clip-seconds {} is under one fbank frame",
        args.clip_seconds
    );
    let window = if args.hamming {
        WindowType::Hamming
    } else {
        WindowType::Povey
    };

    let parts = speech(&args.dir)?;
    let all: Vec<f32> = parts.iter().flatten().flatten().copied().collect();
    ensure!(all.len() > clip_len, "not enough speech");
    let span = all.len() - clip_len;
    let clips: Vec<&[f32]> = (0..args.clips)
        .map(|k| {
            let s = if args.clips == 1 {
                0
            } else {
                span * k / (args.clips - 1)
            };
            &all[s..s + clip_len]
        })
        .collect();
    let clips_audio_s = (args.clips * clip_len) as f64 / SAMPLE_RATE as f64;

    let models = speaker_models::models_dir();
    let ort = speaker_models::start_onnxruntime(&models)?;
    let (model, window) = match &args.model {
        Some(p) => (p.clone(), window),
        None => match models.speaker_model("v4") {
            Ok(m) if m.path.is_file() => (
                m.path,
                if m.povey_window && !args.hamming {
                    WindowType::Povey
                } else {
                    WindowType::Hamming
                },
            ),
            _ => (speaker_models::staging()?.join("campplus.onnx"), window),
        },
    };
    let window_name = match window {
        WindowType::Hamming => "hamming",
        _ => "povey",
    };
    let embedder = Arc::new(
        Embedder::load(&model, window).with_context(|| format!("loading {}", model.display()))?,
    );
    println!(
        "speech: {:.1} s of espeak-ng ({} voices × {} sentences, {}); clips: {} × {} s = {:.1} s",
        all.len() as f64 / SAMPLE_RATE as f64,
        VOICES.len(),
        SENTENCES.len(),
        args.dir.display(),
        args.clips,
        args.clip_seconds,
        clips_audio_s
    );
    println!(
        "model: {} ({:?}, dim {}, fbank window {window_name}); ONNX Runtime: {ort}",
        model.display(),
        embedder.front_end(),
        embedder.dim()
    );
    println!(
        "CPUs: {threads} of {cpus}{} (voxfleet: one single-threaded session per core; python: one session, ONNX Runtime's default intra-op pool)",
        if threads < cpus {
            format!(", taskset -c 0-{}", threads - 1)
        } else {
            String::new()
        }
    );

    // voxfleet: warm-up, then reps passes over all clips; the fbank alone timed separately.
    embedder.embed_clips(&clips[..clips.len().min(BATCH)])?;
    let rust_threads = threads_in_process();
    let fbank = Fbank::new(FbankOptions {
        window_type: window,
        ..FbankOptions::campplus()
    });
    let pb = bar(args.reps as u64, "voxfleet embed_clips");
    let (mut walls, mut fbanks) = (Vec::new(), Vec::new());
    let mut ours = Vec::new();
    for _ in 0..args.reps {
        let t = Instant::now();
        ours = embedder.embed_clips(&clips)?;
        walls.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for c in &clips {
            let mut f = fbank.compute(c);
            f.mean_normalize();
            std::hint::black_box(&f);
        }
        fbanks.push(t.elapsed().as_secs_f64());
        pb.inc(1);
    }
    pb.finish_and_clear();
    let rust_wall = median(walls.clone());
    let rust_fbank = median(fbanks);
    println!(
        "voxfleet passes (s): {}",
        walls
            .iter()
            .map(|w| format!("{w:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Python peer.
    let mut py_row = None;
    if !args.no_python {
        let py = venv_python()?;
        let script = args.dir.join("speaker_embed.py");
        std::fs::write(&script, PY_SCRIPT)?;
        let clips_file = args.dir.join("clips.f32");
        let mut bytes = Vec::with_capacity(args.clips * clip_len * 4);
        for c in &clips {
            for x in *c {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        std::fs::write(&clips_file, bytes)?;
        let out_file = args.dir.join("python-embeddings.f32");
        let sp = spinner(format!("python onnxruntime, {} passes", args.reps));
        let out = run(Command::new(&py)
            .arg(&script)
            .arg(&model)
            .arg(&clips_file)
            .arg(args.clips.to_string())
            .arg(clip_len.to_string())
            .arg(BATCH.to_string())
            .arg("0")
            .arg(args.reps.to_string())
            .arg(&out_file)
            .arg(window_name))?;
        sp.finish_and_clear();
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or(""))
            .with_context(|| format!("python output: {out}"))?;
        let theirs: Vec<f32> = std::fs::read(&out_file)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let dim = embedder.dim();
        ensure!(
            theirs.len() == args.clips * dim,
            "python gave {} values, expected {} × {dim}",
            theirs.len(),
            args.clips
        );
        let cos: Vec<f32> = ours
            .iter()
            .zip(theirs.chunks_exact(dim))
            .map(|(a, b)| cosine_similarity(a, b))
            .collect();
        let min = cos.iter().copied().fold(f32::INFINITY, f32::min);
        let mean = cos.iter().sum::<f32>() / cos.len() as f32;
        println!(
            "python: onnxruntime {}, kaldi-native-fbank {}, numpy {}; passes (s): {}",
            v["onnxruntime"].as_str().unwrap_or("?"),
            v["kaldi_native_fbank"].as_str().unwrap_or("?"),
            v["numpy"].as_str().unwrap_or("?"),
            v["walls"]
                .as_array()
                .map(|a| a
                    .iter()
                    .map(|w| format!("{:.3}", w.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()
        );
        println!(
            "threads in process after warm-up: voxfleet {rust_threads}, python {}",
            v["threads_in_process"]
        );
        println!(
            "agreement voxfleet vs python: cosine min {min:.5}, mean {mean:.5} over {} clips ({})",
            cos.len(),
            if min >= 0.99 {
                "ok, ≥ 0.99"
            } else {
                "BELOW 0.99"
            }
        );
        py_row = Some((
            v["wall"].as_f64().unwrap_or(f64::NAN),
            v["fbank"].as_f64().unwrap_or(f64::NAN),
            v["onnx"].as_f64().unwrap_or(f64::NAN),
            min,
        ));
    }

    println!(
        "\n{} clips of {} s, batches of {BATCH}, median of {} pass(es); ratio = voxfleet clips/s / python clips/s",
        args.clips, args.clip_seconds, args.reps
    );
    println!(
        "{:<34} {:>8} {:>9} {:>11} {:>9} {:>9} {:>6}",
        "side", "wall_s", "clips/s", "audio_s/s", "fbank_s", "onnx_s", "ratio"
    );
    let py_wall = py_row.map_or(f64::NAN, |r| r.0);
    println!(
        "{:<34} {:>8.3} {:>9.1} {:>11.1} {:>9.3} {:>9.3} {:>6.2}",
        "voxfleet (Rust fbank + ort)",
        rust_wall,
        args.clips as f64 / rust_wall,
        clips_audio_s / rust_wall,
        rust_fbank,
        rust_wall - rust_fbank,
        py_wall / rust_wall
    );
    if let Some((wall, fb, onnx, _)) = py_row {
        println!(
            "{:<34} {:>8.3} {:>9.1} {:>11.1} {:>9.3} {:>9.3} {:>6.2}",
            "python (kaldi-native-fbank + ort)",
            wall,
            args.clips as f64 / wall,
            clips_audio_s / wall,
            fb,
            onnx,
            1.0
        );
        println!(
            "voxfleet / python throughput: {:.2}× (goal ≥ 2×: {}); fbank alone {:.2}×, ONNX alone {:.2}×",
            wall / rust_wall,
            if wall / rust_wall >= 2.0 {
                "met"
            } else {
                "not met"
            },
            fb / rust_fbank,
            onnx / (rust_wall - rust_fbank)
        );
    }
    println!(
        "(voxfleet's fbank_s is the same fbank + mean normalisation timed on its own; its onnx_s is wall − fbank)"
    );

    if !args.no_diarization {
        diarize(&args, &models, &parts, embedder)?;
    }
    Ok(())
}

fn diarize(
    args: &Args,
    models: &voxfleet_models::ModelsDir,
    parts: &[Vec<Vec<f32>>],
    embedder: Arc<Embedder>,
) -> Result<()> {
    let seg_path = match &args.segmentation {
        Some(p) => p.clone(),
        None => match models.segmentation() {
            Ok(p) if p.is_file() => p,
            _ => speaker_models::staging()?.join("segmentation-3.0.onnx"),
        },
    };
    let segmenter = Arc::new(
        Segmenter::load(&seg_path).with_context(|| format!("loading {}", seg_path.display()))?,
    );
    let diarizer = Diarizer::new(segmenter, embedder);
    let (pcm, reference) = conversation(parts);
    let audio_s = pcm.len() as f64 / SAMPLE_RATE as f64;
    println!(
        "\ndiarization: {audio_s:.1} s conversation, {} turns, voices {}, {}, {}; segmentation {}",
        reference.len(),
        VOICES[0],
        VOICES[1],
        VOICES[2],
        seg_path.display()
    );
    let opts = DiarizeOptions::default();
    let stop = AtomicBool::new(false);
    // Warm-up on the first 20 s.
    diarizer.run(&pcm[..20 * SAMPLE_RATE], &opts, &mut |_| {}, &stop)?;
    let pb = bar(args.reps as u64, "voxfleet Diarizer::run");
    let mut runs = Vec::new();
    for _ in 0..args.reps {
        let t = Instant::now();
        let (mut seg_end, mut emb_end) = (None, None);
        let result = diarizer.run(
            &pcm,
            &opts,
            &mut |p| {
                if p.done_ms * 2 <= p.total_ms + 1 {
                    seg_end = Some(t.elapsed());
                } else if p.done_ms >= p.total_ms && emb_end.is_none() {
                    emb_end = Some(t.elapsed());
                }
            },
            &stop,
        )?;
        let wall = t.elapsed().as_secs_f64();
        let seg = seg_end.map_or(f64::NAN, |d| d.as_secs_f64());
        let emb = emb_end.map_or(f64::NAN, |d| d.as_secs_f64());
        let der = diarization_error_rate(&reference, &result.turns, 0.25);
        runs.push((
            wall,
            seg,
            emb - seg,
            wall - emb,
            result.speakers.len(),
            der.der,
        ));
        pb.inc(1);
    }
    pb.finish_and_clear();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (wall, seg, emb, rest, speakers, der) = runs[runs.len() / 2];
    println!(
        "runs (wall s): {}",
        runs.iter()
            .map(|r| format!("{:.2}", r.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:>8} {:>8} {:>7} {:>13} {:>12} {:>15} {:>8} {:>6}",
        "audio_s", "wall_s", "RTF", "segmentation", "embeddings", "cluster+aggr", "speakers", "DER"
    );
    println!(
        "{:>8.1} {:>8.2} {:>7.4} {:>12.2}s {:>11.2}s {:>14.3}s {:>8} {:>6.3}",
        audio_s,
        wall,
        wall / audio_s,
        seg,
        emb,
        rest,
        speakers,
        der
    );
    println!(
        "(median of {} run(s), DiarizeOptions::default(), DER collar 0.25 s against the 3 espeak voices)",
        args.reps
    );
    Ok(())
}

/// The Python peer's venv, created on first use.
fn venv_python() -> Result<PathBuf> {
    let venv = home()?.join(".cache/voxfleet/venv-speakers");
    let py = venv.join("bin/python");
    let ok = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import onnxruntime, kaldi_native_fbank, numpy; \
                 assert onnxruntime.__version__ == '1.23.2' and numpy.__version__ == '2.4.6'",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ok(&py) {
        eprintln!(
            "installing {} into {}",
            VENV_PACKAGES.join(" "),
            venv.display()
        );
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(&py)
            .args(["-m", "pip", "install", "-q"])
            .args(VENV_PACKAGES))?;
        ensure!(ok(&py), "the Python peer's packages did not install");
    }
    Ok(py)
}
