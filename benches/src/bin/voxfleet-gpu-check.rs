//! voxfleet-gpu-check: the worker's transcription path on one device, stage by stage, with the
//! times as ×real time and the device memory this process holds. `scripts/gpu-check.sh` builds
//! it with `--features cuda`, packs it with a model and generated speech, and runs it on a GPU
//! machine (no Rust, no network there); on a machine without a GPU it runs with
//! `--device cpu` to check the same flow.
//!
//! Stages: decode (the worker's decoder and resampler), Silero VAD (ONNX Runtime, CPU), then
//! for each engine and compute type Whisper's load, a warm-up on the first 10 s, and the
//! sequential (greedy and beam 5) and batched (greedy) modes over the whole recording, each
//! the median of `--reps` runs, with its WER against the text the speech was made from.
//! Device memory: NVML's count for this process after each stage (none on CPU).
//!
//! ```text
//! voxfleet-gpu-check --audio speech.wav --text speech.txt --models-dir models \
//!     [--device cuda:0] [--reps 3] [--json out.json]
//! ```

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use voxfleet_asr::wer::word_error_rate;
use voxfleet_asr::{
    ComputeType, DeviceSpec, EngineKind, EngineSettings, ModelCache, TranscribeOptions,
};

#[derive(Debug, clap::Parser)]
struct Args {
    /// The recording (any format the worker decodes).
    #[arg(long)]
    audio: PathBuf,
    /// The text it was made from, for the WER.
    #[arg(long)]
    text: PathBuf,
    /// A models directory holding at least the Whisper model and Silero VAD.
    #[arg(long)]
    models_dir: PathBuf,
    /// Whisper model name.
    #[arg(long, default_value = "tiny.en")]
    model: String,
    #[arg(long, default_value = "cuda:0")]
    device: DeviceSpec,
    /// Engines and compute types, `engine:compute` (candle ignores the compute type).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ct2:float16,ct2:int8_float16,candle:float16"
    )]
    runs: Vec<String>,
    /// Timed runs per mode (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Chunks per batch in batched mode.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// CPU threads (CTranslate2 on CPU, ONNX Runtime).
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Also write the figures here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Device memory this process holds, in MiB, from NVML (None on CPU or without NVML).
struct Memory {
    nvml: Option<nvml_wrapper::Nvml>,
    index: u32,
}

impl Memory {
    fn open(device: DeviceSpec) -> Self {
        let DeviceSpec::Cuda(n) = device else {
            return Self {
                nvml: None,
                index: 0,
            };
        };
        let nvml = nvml_wrapper::Nvml::init()
            .map_err(|e| eprintln!("NVML unavailable ({e}): no memory figures"))
            .ok();
        Self {
            nvml,
            index: n as u32,
        }
    }

    /// This process's memory on the device, and the device's used memory, in MiB.
    fn read(&self) -> (Option<f64>, Option<f64>) {
        let Some(dev) = self
            .nvml
            .as_ref()
            .and_then(|n| n.device_by_index(self.index).ok())
        else {
            return (None, None);
        };
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let pid = std::process::id();
        let own = dev.running_compute_processes().ok().and_then(|ps| {
            ps.iter()
                .find(|p| p.pid == pid)
                .and_then(|p| match p.used_gpu_memory {
                    nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(mib(b)),
                    nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
                })
        });
        let used = dev.memory_info().ok().map(|m| mib(m.used));
        (own, used)
    }
}

struct Report {
    audio_s: f64,
    memory: Memory,
    rows: Vec<serde_json::Value>,
}

impl Report {
    fn stage(&mut self, stage: &str, wall: f64, wer: Option<f64>) {
        let (own, used) = self.memory.read();
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |m| format!("{m:.0}"));
        println!(
            "{stage:<44} {wall:>8.3} {:>9} {:>8} {:>10} {:>10}",
            if wall > 0.0 {
                format!("{:.1}", self.audio_s / wall)
            } else {
                "-".into()
            },
            wer.map_or("-".into(), |w| format!("{w:.3}")),
            fmt(own),
            fmt(used)
        );
        self.rows.push(json!({
            "stage": stage, "wall_s": wall, "x_real_time": self.audio_s / wall,
            "wer": wer, "process_mib": own, "device_used_mib": used,
        }));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    ensure!(args.reps > 0, "--reps must be at least 1");
    let text = std::fs::read_to_string(&args.text)
        .with_context(|| format!("reading {}", args.text.display()))?;

    let t = Instant::now();
    let pcm = voxfleet_audio::decode_file(&args.audio, &Default::default())?.samples;
    let decode = t.elapsed().as_secs_f64();
    let audio_s = pcm.len() as f64 / 16_000.0;
    ensure!(audio_s >= 10.0, "only {audio_s:.1} s of audio");
    println!(
        "voxfleet-gpu-check: {:.1} s of audio ({}), model {}, device {}, median of {} run(s)",
        audio_s,
        args.audio.display(),
        args.model,
        args.device,
        args.reps
    );
    println!(
        "{:<44} {:>8} {:>9} {:>8} {:>10} {:>10}",
        "stage", "wall_s", "x_real", "WER", "proc_MiB", "dev_MiB"
    );
    let mut report = Report {
        audio_s,
        memory: Memory::open(args.device),
        rows: Vec::new(),
    };
    report.stage("decode + resample (CPU)", decode, None);

    let mut vad_done = false;
    for run in &args.runs {
        let (engine, compute) = run.split_once(':').unwrap_or((run.as_str(), "float16"));
        let engine: EngineKind = engine.parse().map_err(anyhow::Error::msg)?;
        let compute: ComputeType = compute.parse().map_err(anyhow::Error::msg)?;
        let settings = EngineSettings {
            engine,
            compute_type: (engine == EngineKind::Ct2).then_some(compute),
            cpu_threads: args.threads,
            replicas: 1,
        };
        let label = match engine {
            EngineKind::Ct2 => format!("ct2 {compute}"),
            EngineKind::Candle => "candle".to_string(),
        };
        let cache = ModelCache::with_settings(
            voxfleet_models::ModelsDir::new(&args.models_dir),
            args.device,
            settings,
        )?;
        let vad = {
            let t = Instant::now();
            let vad = cache.vad()?;
            let spans = vad.speech_regions(&pcm)?;
            if !vad_done {
                report.stage(
                    &format!("Silero VAD (CPU, {} regions)", spans.len()),
                    t.elapsed().as_secs_f64(),
                    None,
                );
                vad_done = true;
            }
            vad
        };
        let t = Instant::now();
        let whisper = match cache.whisper(&args.model) {
            Ok(w) => w,
            Err(e) => {
                println!("{label}: cannot load: {e}");
                report
                    .rows
                    .push(json!({"stage": format!("{label} load"), "error": e.to_string()}));
                continue;
            }
        };
        report.stage(&format!("{label} load"), t.elapsed().as_secs_f64(), None);
        for (mode, beam, batched) in [
            ("sequential", 1, false),
            ("sequential", 5, false),
            ("batched", 1, true),
        ] {
            if batched && engine == EngineKind::Candle {
                continue;
            }
            let opts = TranscribeOptions {
                beam_size: beam,
                vad: batched,
                language: Some("en".into()),
                batched,
                batch_size: args.batch_size,
                ..Default::default()
            };
            let go = |pcm: &[f32]| {
                whisper.transcribe(pcm, &opts, batched.then_some(&*vad), &mut |_| {
                    ControlFlow::Continue(())
                })
            };
            let t = Instant::now();
            go(&pcm[..160_000.min(pcm.len())])?;
            let warm = t.elapsed().as_secs_f64();
            let mut walls = Vec::new();
            let mut hyp = String::new();
            for _ in 0..args.reps {
                let t = Instant::now();
                hyp = go(&pcm)?.text();
                walls.push(t.elapsed().as_secs_f64());
            }
            report.stage(
                &format!("{label} {mode} beam {beam} (warm-up {warm:.2} s)"),
                median(walls),
                Some(word_error_rate(&text, &hyp)),
            );
        }
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "audio_s": audio_s, "device": args.device.to_string(), "model": args.model,
            "reps": args.reps, "stages": report.rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
