//! What the windows method clusters, measured against the reference: `--dump-embeddings`
//! (one JSON line per embedded window and local speaker, labelled, for analysis outside the
//! bench), `--similarities` (same- and different-speaker cosine similarities per part, as the
//! model gives them and centred on its background) and `--fit-background`.
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use voxfleet_speakers::{
    Background, Diarizer, Embedder, Turn, WindowEmbedding, background, cosine_similarity,
    subsegment::is_narrowband,
};

use super::devset::{Item, rttm_with_names};

/// Appends one line per embedding of `pcm` to `out`. `label` is the reference speaker who
/// covers most of the clip (by name, which for the real-mix parts is the person), `purity`
/// the share of the clip that speaker covers (0 where nobody does), `speech` the share any
/// reference speaker covers (overlapped speech counted once per speaker).
pub(super) fn dump(
    out: &mut impl Write,
    dir: &Path,
    item: &Item,
    pcm: &[f32],
    diarizer: &Diarizer,
    second: Option<&Embedder>,
) -> Result<usize> {
    let (turns, names) = rttm_with_names(&dir.join(&item.rttm))?;
    let embeddings = diarizer.window_embeddings(pcm, 1.0)?;
    let seconds: Vec<Option<Vec<f32>>> = match second {
        Some(model) => {
            // The decoded audio is 16 kHz mono, as the diarizer takes it.
            let sample = |t: f64| ((t * 16_000.0).round() as usize).min(pcm.len());
            let clips: Vec<Vec<f32>> = embeddings
                .iter()
                .map(|e| {
                    e.spans_s
                        .iter()
                        .flat_map(|&(a, b)| pcm[sample(a)..sample(b)].iter().copied())
                        .collect()
                })
                .collect();
            // embed_clips batches clips of equal length itself.
            let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
            model.embed_clips(&refs)?.into_iter().map(Some).collect()
        }
        None => vec![None; embeddings.len()],
    };
    for (e, embedding2) in embeddings.iter().zip(seconds) {
        let clip: f64 = e.spans_s.iter().map(|(a, b)| b - a).sum();
        let cover = coverage(e, &turns, names.len());
        let best = (0..cover.len()).max_by(|&a, &b| cover[a].total_cmp(&cover[b]));
        let (label, purity) = match best {
            Some(b) if cover[b] > 0.0 => {
                let name = item
                    .voices
                    .as_ref()
                    .and_then(|v| v.get(b))
                    .cloned()
                    .unwrap_or_else(|| names[b].clone());
                (format!("{}/{name}", item.id), cover[b] / clip.max(1e-9))
            }
            _ => (String::new(), 0.0),
        };
        let person = item.voices.as_ref().and_then(|v| {
            best.filter(|&b| cover[b] > 0.0)
                .and_then(|b| v.get(b).cloned())
        });
        let line = json!({
            "id": item.id,
            "part": item.part,
            "split": item.split,
            "window": e.window,
            "clip_s": clip,
            "clean_s": e.clean_s,
            "label": label,
            "person": person,
            "purity": purity,
            "speech": cover.iter().sum::<f64>() / clip.max(1e-9),
            "embedding": e.embedding,
            "spans_s": e.spans_s,
            "embedding2": embedding2,
        });
        writeln!(out, "{line}")?;
    }
    Ok(embeddings.len())
}

/// Seconds of each of the `speakers` reference speakers inside the clip of `e`.
fn coverage(e: &WindowEmbedding, turns: &[Turn], speakers: usize) -> Vec<f64> {
    let mut cover = vec![0.0f64; speakers];
    for t in turns {
        cover[t.speaker] += e.spans_s.iter().map(|&span| overlap(span, t)).sum::<f64>();
    }
    cover
}

/// Same- and different-speaker cosine similarities of one group of recordings, as the model
/// gives them (`raw`) and centred on its background (`centred`): `(same, different)`.
#[derive(Default)]
pub(super) struct Similarities {
    raw: (Vec<f32>, Vec<f32>),
    centred: (Vec<f32>, Vec<f32>),
}

/// Clips that one reference speaker covers at least this much of count as that speaker's.
const PURE: f64 = 0.9;
/// Two clips of one speaker are compared only when their windows are this far apart (no
/// shared audio).
const APART_WINDOWS: usize = 10;

impl Similarities {
    /// Adds the pairs of one recording: the clips that the windows method clusters (at least
    /// 2 s of clean speech in their window) which one reference speaker covers for at least
    /// 90 % of their length.
    pub(super) fn add(
        &mut self,
        dir: &Path,
        item: &Item,
        pcm: &[f32],
        diarizer: &Diarizer,
    ) -> Result<()> {
        let (turns, names) = rttm_with_names(&dir.join(&item.rttm))?;
        let embedder = diarizer.embedder();
        let background = Background::for_model(embedder.front_end(), embedder.dim())
            .context("this embedding model has no background")?;
        let narrowband = is_narrowband(pcm);
        let mut pure = Vec::new();
        for e in diarizer.window_embeddings(pcm, 1.0)? {
            let clip: f64 = e.spans_s.iter().map(|(a, b)| b - a).sum();
            let cover = coverage(&e, &turns, names.len());
            if let Some(speaker) = (0..cover.len()).find(|&s| cover[s] >= PURE * clip)
                && e.clean_s >= 2.0
            {
                let centred = background.center(&e.embedding, narrowband);
                pure.push((speaker, e.window, e.embedding, centred));
            }
        }
        for (i, a) in pure.iter().enumerate() {
            for b in &pure[i + 1..] {
                let (raw, centred) = if a.0 == b.0 {
                    if a.1.abs_diff(b.1) < APART_WINDOWS {
                        continue;
                    }
                    (&mut self.raw.0, &mut self.centred.0)
                } else {
                    (&mut self.raw.1, &mut self.centred.1)
                };
                raw.push(cosine_similarity(&a.2, &b.2));
                centred.push(cosine_similarity(&a.3, &b.3));
            }
        }
        Ok(())
    }

    /// One line per way of scoring: percentiles of both distributions and the equal error
    /// rate with the cosine similarity where it lies.
    pub(super) fn rows(&self, name: &str) -> Vec<String> {
        [("raw", &self.raw), ("background", &self.centred)]
            .into_iter()
            .filter(|(_, (same, diff))| !same.is_empty() && !diff.is_empty())
            .map(|(how, (same, diff))| {
                let (same, diff) = (sorted(same), sorted(diff));
                let (eer, at) = equal_error(&same, &diff);
                format!(
                    "{name:30} {how:10} {:>6} {:>5.2} {:>5.2} {:>7} {:>5.2} {:>5.2} {:>6.1} % {at:>6.2}",
                    same.len(),
                    percentile(&same, 0.1),
                    percentile(&same, 0.5),
                    diff.len(),
                    percentile(&diff, 0.5),
                    percentile(&diff, 0.9),
                    100.0 * eer,
                )
            })
            .collect()
    }
}

fn sorted(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    v.sort_by(f32::total_cmp);
    v
}

fn percentile(sorted: &[f32], q: f64) -> f32 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Equal error rate of two sorted score lists and the threshold where it lies: the cosine
/// similarity in steps of 0.01 where the share of same-speaker pairs below it and of
/// different-speaker pairs at or above it are closest.
fn equal_error(same: &[f32], diff: &[f32]) -> (f64, f32) {
    let below = |v: &[f32], t: f32| v.partition_point(|&x| x < t) as f64 / v.len() as f64;
    (-100..=100)
        .map(|i| i as f32 / 100.0)
        .map(|t| {
            let (miss, false_accept) = (below(same, t), 1.0 - below(diff, t));
            ((miss - false_accept).abs(), (miss + false_accept) / 2.0, t)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or((0.0, 0.0), |(_, eer, t)| (eer, t))
}

/// Seconds of `turn` inside `span`.
fn overlap((a, b): (f64, f64), turn: &Turn) -> f64 {
    (b.min(turn.end) - a.max(turn.start)).max(0.0)
}

/// `--fit-background`: the mean unit embedding of what the windows method clusters (clips
/// with at least 2 s of clean speech in their window), per band, over `items` (the `tune`
/// part), written as the Rust source of `speakers/src/background/campplus.rs`.
pub(super) fn fit_background(
    out: &Path,
    dir: &Path,
    items: &[&Item],
    diarizer: &Diarizer,
) -> Result<()> {
    let (mut wide, mut narrow) = (Vec::new(), Vec::new());
    let pb = super::progress::bar(items.len() as u64, "embedding");
    for item in items {
        let pcm = voxfleet_audio::decode_file(&dir.join(&item.wav), &Default::default())
            .with_context(|| item.wav.clone())?
            .samples;
        let band = if is_narrowband(&pcm) {
            &mut narrow
        } else {
            &mut wide
        };
        band.extend(
            diarizer
                .window_embeddings(&pcm, 1.0)?
                .into_iter()
                .filter(|e| e.clean_s >= 2.0)
                .map(|e| e.embedding),
        );
        pb.inc(1);
    }
    pb.finish_and_clear();
    let rust = |name: &str, embeddings: &[Vec<f32>]| -> Result<String> {
        let mean = background::fit(embeddings).context("no embeddings in this band")?;
        let rows: Vec<String> = mean
            .chunks(6)
            .map(|row| {
                // The shortest digits that give the same f32 back.
                let cells: Vec<String> = row.iter().map(|x| format!("{x:?}")).collect();
                format!("    {},", cells.join(", "))
            })
            .collect();
        Ok(format!(
            "/// Mean of {} unit embeddings.\n#[rustfmt::skip]\npub(super) const {name}: [f32; {}] = [\n{}\n];\n",
            embeddings.len(),
            mean.len(),
            rows.join("\n")
        ))
    };
    let source = format!(
        "//! CAM++ background means, written by `voxfleet-bench-diarize --fit-background` from the\n//! `tune` part of the diarization development set ({} recordings). Do not edit.\n\n{}\n{}",
        items.len(),
        rust("WIDEBAND", &wide)?,
        rust("NARROWBAND", &narrow)?
    );
    std::fs::write(out, source).with_context(|| out.display().to_string())?;
    println!(
        "background fitted on {} wideband and {} narrowband embeddings: {}",
        wide.len(),
        narrow.len(),
        out.display()
    );
    Ok(())
}
