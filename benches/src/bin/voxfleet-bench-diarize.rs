//! voxfleet-bench-diarize: diarization error rate and speaker-count accuracy of
//! `voxfleet_speakers::Diarizer` on a development set the tests never use, per part and split,
//! with the real-time factor on CPU.
//!
//! - Data: `python/diarize_devset.py` builds it on first use into `--dir`
//!   (`~/.cache/voxfleet/diarize-devset`; nothing is committed): synthetic espeak-ng
//!   conversations of 2–6 speakers (clean, telephone-band and noisy versions), the real AMI
//!   meeting excerpts of pyannote-audio 4.0.7's source archive (also through a telephone
//!   channel), and conversations mixed from
//!   real single voices of Debian packages (16 kHz and telephone 8 kHz). Each recording is
//!   `tune` (parameters may be chosen on it) or `test` (reported, never tuned on); the script's
//!   docs say which is which and why voices never cross.
//! - Scoring: `voxfleet_speakers::diarization_error_rate` with a ±0.25 s collar around every
//!   reference boundary (pyannote.metrics' `collar=0.5`), overlapped speech scored; the DER of
//!   a group is pooled (errors over reference time of all its recordings). "count" is the
//!   number of recordings whose hypothesis has exactly the reference's number of speakers;
//!   "count≥2s" compares with the reference speakers who have at least 2 s of speech (AMI
//!   excerpts hold people who say one word).
//! - Speed: wall time of `Diarizer::run` over all recordings against their duration (RTF),
//!   decoding excluded.
//!
//! ```text
//! cargo build --release -p voxfleet-benches --bin voxfleet-bench-diarize
//! $CARGO_TARGET_DIR/release/voxfleet-bench-diarize [--split tune|test|all] [--threshold T] [-v]
//! ```

#[path = "../progress.rs"]
#[allow(dead_code)]
mod progress;
#[path = "../speaker_models.rs"]
mod speaker_models;

#[path = "voxfleet-bench-diarize/args.rs"]
mod args;
#[path = "voxfleet-bench-diarize/devset.rs"]
mod devset;
#[path = "voxfleet-bench-diarize/dump.rs"]
mod dump;
#[path = "voxfleet-bench-diarize/known.rs"]
mod known;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use args::{Args, Setting};
use devset::{Item, manifest, rttm, speakers_with};
use known::{KnownTally, known_references};
use progress::bar;
use voxfleet_speakers::{
    DiarizeOptions, Diarizer, Embedder, Method, Segmenter, WindowType, diarization_error_rate,
    subsegment::SubSegmentOptions,
};

const COLLAR_S: f64 = 0.25;
/// Reference speakers with less speech than this are left out of "count≥2s".
const AUDIBLE_S: f64 = 2.0;

/// An embedding profile's model, with the fbank window its front end names.
fn load_embedder(file: &voxfleet_models::SpeakerModelFile) -> Result<Embedder> {
    let window = if file.povey_window {
        WindowType::Povey
    } else {
        WindowType::Hamming
    };
    Ok(Embedder::load(&file.path, window)?)
}

#[derive(Default, Clone)]
struct Tally {
    recordings: usize,
    count_right: usize,
    audible_right: usize,
    errors: f64,
    missed: f64,
    false_alarm: f64,
    confusion: f64,
    total: f64,
}

impl Tally {
    fn add(&mut self, r: &voxfleet_speakers::DerReport, count_ok: bool, audible_ok: bool) {
        self.recordings += 1;
        self.count_right += usize::from(count_ok);
        self.audible_right += usize::from(audible_ok);
        self.errors += r.missed + r.false_alarm + r.confusion;
        self.missed += r.missed;
        self.false_alarm += r.false_alarm;
        self.confusion += r.confusion;
        self.total += r.total;
    }

    fn row(&self, name: &str) -> String {
        let pct = |x: f64| 100.0 * x / self.total.max(1e-9);
        format!(
            "{name:34} {:>4} {:>6} {:>9} {:>7.1} % {:>6.1} {:>6.1} {:>6.1}",
            self.recordings,
            format!("{}/{}", self.count_right, self.recordings),
            format!("{}/{}", self.audible_right, self.recordings),
            pct(self.errors),
            pct(self.missed),
            pct(self.false_alarm),
            pct(self.confusion),
        )
    }
}

fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    if !matches!(args.split.as_str(), "tune" | "test" | "all") {
        bail!("--split must be tune, test or all");
    }
    let manifest = manifest(&args.dir)?;
    let items: Vec<&Item> = manifest
        .items
        .iter()
        .filter(|i| args.split == "all" || i.split == args.split)
        .filter(|i| args.part.as_deref().is_none_or(|p| i.part.starts_with(p)))
        .collect();
    if items.is_empty() {
        bail!("no recordings match");
    }

    let method = match args.method.as_str() {
        "subsegments" => Method::SubSegments,
        "windows" => Method::Windows,
        "hybrid" => Method::Hybrid,
        other => bail!("--method must be subsegments, windows or hybrid, not {other}"),
    };
    let defaults = SubSegmentOptions::default();
    let subsegments = SubSegmentOptions {
        len_s: args.sub_len.unwrap_or(defaults.len_s),
        step_s: args.sub_step.unwrap_or(defaults.step_s),
        min_cluster_s: args.min_cluster.unwrap_or(defaults.min_cluster_s),
        center: args.center,
        ..defaults
    };
    let models = speaker_models::models_dir();
    let ort = speaker_models::start_onnxruntime(&models)?;
    let seg_path = models.segmentation()?;
    let emb = models.speaker_model("v4")?;
    let mut diarizer = Diarizer::new(
        Arc::new(Segmenter::load(&seg_path)?),
        Arc::new(load_embedder(&emb)?),
    );
    if let Some(profile) = &args.second {
        diarizer = diarizer.with_second(Arc::new(load_embedder(&models.speaker_model(profile)?)?));
    }
    // The first setting is the one reported in full; a sweep's others are summarised.
    let settings = args.settings()?;
    let Setting {
        min_cluster_size,
        gap_range,
        recheck,
        recheck_weight,
        ..
    } = settings[0];
    if args.sweeping() {
        diarizer = diarizer.with_memo();
    }
    println!(
        "development set: {} ({} recordings, split {}); models: {}, {}; ONNX Runtime: {ort}",
        args.dir.display(),
        items.len(),
        args.split,
        seg_path.display(),
        emb.path.display()
    );
    println!(
        "clustering: {method:?}{}, threshold (cosine distance) {}{}; DER collar ±{COLLAR_S} s, overlap scored",
        if method == Method::SubSegments {
            format!(
                " ({} s every {} s, clusters under {} s folded, {})",
                subsegments.len_s,
                subsegments.step_s,
                subsegments.min_cluster_s,
                if subsegments.center {
                    "centred"
                } else {
                    "not centred"
                }
            )
        } else {
            String::new()
        },
        match args.threshold {
            Some(t) => t.to_string(),
            None => {
                let opts = DiarizeOptions {
                    method,
                    background: !args.no_background,
                    ..DiarizeOptions::default()
                };
                let (wide, narrow) = (
                    diarizer.default_threshold(&opts, false),
                    diarizer.default_threshold(&opts, true),
                );
                if wide == narrow {
                    wide.to_string()
                } else {
                    format!("{wide} ({narrow} on telephone-band audio)")
                }
            }
        },
        match (
            args.oracle_count,
            method != Method::SubSegments && !args.no_background
        ) {
            (true, true) => ", oracle speaker count, centred on the background where it applies",
            (true, false) => ", oracle speaker count",
            (false, true) => ", centred on the background where it applies",
            (false, false) => "",
        }
    );

    let fold_below_s = args
        .fold_below
        .unwrap_or(DiarizeOptions::default().fold_below_s);
    println!(
        "recheck of the speakers found: {}",
        recheck.map_or("off".into(), |m| format!(
            "merge within a margin of {m}; fold speakers under {fold_below_s} s"
        ))
    );

    if let Some(path) = &args.dump_embeddings {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| path.display().to_string())?,
        );
        let second = match &args.dump_second {
            Some(profile) => Some(load_embedder(&models.speaker_model(profile)?)?),
            None => None,
        };
        let pb = bar(items.len() as u64, "embedding");
        let mut lines = 0;
        for item in &items {
            let pcm = voxfleet_audio::decode_file(&args.dir.join(&item.wav), &Default::default())
                .with_context(|| item.wav.clone())?
                .samples;
            lines += dump::dump(&mut out, &args.dir, item, &pcm, &diarizer, second.as_ref())?;
            pb.inc(1);
        }
        pb.finish_and_clear();
        std::io::Write::flush(&mut out)?;
        println!("{lines} embeddings written to {}", path.display());
        return Ok(());
    }
    if args.similarities {
        let mut groups: BTreeMap<String, dump::Similarities> = BTreeMap::new();
        let pb = bar(items.len() as u64, "embedding");
        for item in &items {
            let pcm = voxfleet_audio::decode_file(&args.dir.join(&item.wav), &Default::default())
                .with_context(|| item.wav.clone())?
                .samples;
            groups
                .entry(format!("{} {}", item.split, item.part))
                .or_default()
                .add(&args.dir, item, &pcm, &diarizer)?;
            pb.inc(1);
        }
        pb.finish_and_clear();
        println!(
            "\n{:30} {:10} {:>6} {:>5} {:>5} {:>7} {:>5} {:>5} {:>8} {:>6}",
            "split part", "scored", "same", "p10", "p50", "diff", "p50", "p90", "EER", "at cos"
        );
        for (name, group) in &groups {
            for row in group.rows(name) {
                println!("{row}");
            }
        }
        return Ok(());
    }

    if let Some(path) = &args.fit_background {
        let tune: Vec<&Item> = manifest
            .items
            .iter()
            .filter(|i| i.split == "tune")
            .collect();
        return dump::fit_background(path, &args.dir, &tune, &diarizer);
    }

    let references = if args.known {
        let refs = known_references(&args.dir, &items, diarizer.embedder())?;
        if refs.is_empty() {
            bail!(
                "--known: no recording of this selection names its people (`voices`); the real-mix parts do (delete {} to rebuild an older set)",
                args.dir.join("manifest.json").display()
            );
        }
        refs
    } else {
        Vec::new()
    };
    let mut known_tally: BTreeMap<String, KnownTally> = BTreeMap::new();
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut swept: Vec<BTreeMap<String, Tally>> =
        settings.iter().map(|_| BTreeMap::new()).collect();
    let (mut wall, mut audio) = (0.0f64, 0.0f64);
    let pb = bar(items.len() as u64, "diarizing");
    let stop = AtomicBool::new(false);
    for item in &items {
        let pcm = voxfleet_audio::decode_file(&args.dir.join(&item.wav), &Default::default())
            .with_context(|| item.wav.clone())?
            .samples;
        let reference = rttm(&args.dir.join(&item.rttm))?;
        let opts = DiarizeOptions {
            num_speakers: args.oracle_count.then_some(item.speakers),
            threshold: args.threshold,
            method,
            subsegments,
            min_cluster_size,
            threshold_scale: args.threshold_scale,
            gap_range,
            background: !args.no_background,
            recheck,
            fold_below_s,
            recheck_weight,
            ..DiarizeOptions::default()
        };
        let t = Instant::now();
        let d = diarizer.run(&pcm, &opts, &mut |_| {}, &stop)?;
        wall += t.elapsed().as_secs_f64();
        audio += item.duration_s;
        let report = diarization_error_rate(&reference, &d.turns, COLLAR_S);
        if let Some(dir) = &args.write_rttm {
            std::fs::create_dir_all(dir)?;
            let lines: String = d
                .turns
                .iter()
                .map(|t| {
                    format!(
                        "SPEAKER {} 1 {:.3} {:.3} <NA> <NA> SPEAKER_{:02} <NA> <NA>\n",
                        item.id,
                        t.start,
                        t.end - t.start,
                        t.speaker
                    )
                })
                .collect();
            std::fs::write(dir.join(format!("{}.rttm", item.id)), lines)?;
        }
        for (setting, tallies) in settings.iter().zip(&mut swept).skip(1) {
            let opts = DiarizeOptions {
                threshold: setting.threshold,
                min_cluster_size: setting.min_cluster_size,
                threshold_scale: setting.threshold_scale,
                gap_range: setting.gap_range,
                recheck: setting.recheck,
                recheck_weight: setting.recheck_weight,
                ..opts.clone()
            };
            let d = diarizer.run(&pcm, &opts, &mut |_| {}, &stop)?;
            let report = diarization_error_rate(&reference, &d.turns, COLLAR_S);
            tallies
                .entry(format!("{} {}", item.split, item.part))
                .or_default()
                .add(
                    &report,
                    d.speakers.len() == item.speakers,
                    d.speakers.len() == speakers_with(&reference, AUDIBLE_S),
                );
        }
        diarizer.forget();
        if let Some(voices) = item.voices.as_ref().filter(|_| args.known) {
            known_tally.entry(item.part.clone()).or_default().add(
                &args.dir,
                item,
                voices,
                &d,
                &references,
            )?;
        }
        let found = d.speakers.len();
        let count_ok = found == item.speakers;
        let audible_ok = found == speakers_with(&reference, AUDIBLE_S);
        if args.verbose {
            pb.suspend(|| {
                let mut speech: Vec<f64> = d.speakers.iter().map(|s| s.speech_s).collect();
                speech.sort_by(|a, b| b.total_cmp(a));
                let speech: Vec<String> = speech.iter().map(|s| format!("{s:.1}")).collect();
                println!(
                    "  {:30} {:5} ref {} (≥2 s: {}) hyp {found}  DER {:5.1} %  speech s: {}",
                    item.id,
                    item.split,
                    item.speakers,
                    speakers_with(&reference, AUDIBLE_S),
                    100.0 * report.der,
                    speech.join(" ")
                )
            });
        }
        for key in [
            format!("{} {}", item.split, item.part),
            format!(
                "{} {} (all) {}",
                item.split,
                if item.part.starts_with("real-mix") {
                    "real-mix"
                } else {
                    item.part.split('-').next().unwrap_or(&item.part)
                },
                if item.overlap {
                    "with overlap"
                } else {
                    "no overlap"
                }
            ),
        ] {
            groups
                .entry(key)
                .or_default()
                .add(&report, count_ok, audible_ok);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    println!(
        "\n{:34} {:>4} {:>6} {:>9} {:>9} {:>6} {:>6} {:>6}",
        "split part", "recs", "count", "count≥2s", "DER", "miss", "FA", "conf"
    );
    for (name, tally) in &groups {
        println!("{}", tally.row(name));
    }
    for (part, tally) in &known_tally {
        tally.print(part);
    }
    if settings.len() > 1 {
        println!(
            "\nsweep (threshold, min_cluster_size, threshold_scale, gap_range, recheck, recheck weight): count right and DER per part"
        );
        swept[0] = groups
            .iter()
            .filter(|(k, _)| !k.contains("(all)"))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        for (setting, tallies) in settings.iter().zip(&swept) {
            let cells: Vec<String> = tallies
                .iter()
                .map(|(part, t)| {
                    format!(
                        "{part} {}/{} {:.1} %",
                        t.count_right,
                        t.recordings,
                        100.0 * t.errors / t.total.max(1e-9)
                    )
                })
                .collect();
            println!(
                "  {:>8} {:>3} {:>6} {:>9} {:>5} {:>4}  {}",
                setting
                    .threshold
                    .map_or("default".into(), |t| t.to_string()),
                setting.min_cluster_size,
                setting
                    .threshold_scale
                    .map_or("-".into(), |c| c.to_string()),
                setting
                    .gap_range
                    .map_or("-".into(), |(lo, hi)| format!("{lo}-{hi}")),
                setting.recheck.map_or("off".into(), |m| m.to_string()),
                setting.recheck_weight,
                cells.join(" | ")
            );
        }
    }
    println!(
        "\ndiarization wall time {wall:.1} s for {audio:.1} s of audio: RTF {:.3} (CPU, {} threads)",
        wall / audio.max(1e-9),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
