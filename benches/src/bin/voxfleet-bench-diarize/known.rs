//! `--known`: known-speaker naming on the recordings whose people the set knows, at a range of
//! match thresholds.
use std::path::Path;

use anyhow::{Context, Result};
use voxfleet_speakers::Embedder;

use super::devset::{Item, rttm_with_names};

/// Seconds of a person's speech that make their known-speaker reference.
pub(super) const KNOWN_REFERENCE_S: f64 = 10.0;
/// Match thresholds (cosine similarity) the known-speaker check tries.
pub(super) const KNOWN_THRESHOLDS: [f32; 9] = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8];

/// The person behind the dev set's RTTM label `spk{i}`: `voices[i]`.
pub(super) fn person_of<'a>(label: &str, voices: &'a [String]) -> Option<&'a String> {
    label
        .strip_prefix("spk")
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| voices.get(i))
}

/// A person's reference voiceprint, cut from one recording, as a user would upload it.
pub(super) struct KnownReference {
    pub(super) part: String,
    pub(super) voice: String,
    /// The recording it was cut from (never offered for that recording).
    pub(super) item: String,
    pub(super) print: Vec<f32>,
}

/// Up to two references per (part, person), from different recordings, recordings without
/// overlapped speech first; each the person's first [`KNOWN_REFERENCE_S`] of speech there,
/// embedded as the worker embeds an uploaded reference clip (`Embedder::voiceprint`).
pub(super) fn known_references(
    dir: &Path,
    items: &[&Item],
    embedder: &Embedder,
) -> Result<Vec<KnownReference>> {
    let mut ordered: Vec<&&Item> = items.iter().filter(|i| i.voices.is_some()).collect();
    ordered.sort_by_key(|i| i.overlap);
    let mut out: Vec<KnownReference> = Vec::new();
    for item in ordered {
        let Some(voices) = &item.voices else { continue };
        let (turns, names) = rttm_with_names(&dir.join(&item.rttm))?;
        let mut pcm: Option<Vec<f32>> = None;
        for (label, name) in names.iter().enumerate() {
            let Some(voice) = person_of(name, voices) else {
                continue;
            };
            let have = out
                .iter()
                .filter(|r| r.part == item.part && &r.voice == voice)
                .count();
            if have >= 2 {
                continue;
            }
            let mut regions = Vec::new();
            let mut total = 0.0;
            for t in turns.iter().filter(|t| t.speaker == label) {
                if total >= KNOWN_REFERENCE_S {
                    break;
                }
                let end = t.end.min(t.start + KNOWN_REFERENCE_S - total);
                regions.push((t.start, end));
                total += end - t.start;
            }
            if pcm.is_none() {
                pcm = Some(
                    voxfleet_audio::decode_file(&dir.join(&item.wav), &Default::default())
                        .with_context(|| item.wav.clone())?
                        .samples,
                );
            }
            if let Some(print) = embedder.voiceprint(pcm.as_deref().unwrap_or(&[]), &regions)? {
                out.push(KnownReference {
                    part: item.part.clone(),
                    voice: voice.clone(),
                    item: item.id.clone(),
                    print,
                });
            }
        }
    }
    Ok(out)
}

/// Known-speaker naming over the recordings, per threshold.
#[derive(Default)]
pub(super) struct KnownTally {
    /// Per threshold: (named right, named wrong, left unnamed, named when a stranger).
    pub(super) counts: Vec<(usize, usize, usize, usize)>,
    pub(super) same: Vec<f32>,
    pub(super) different: Vec<f32>,
    pub(super) speakers: usize,
}

impl KnownTally {
    /// Names `d`'s speakers against every person of the item's part (each from another
    /// recording); a speaker's true person is the reference speaker it overlaps most.
    pub(super) fn add(
        &mut self,
        dir: &Path,
        item: &Item,
        voices: &[String],
        d: &voxfleet_speakers::Diarization,
        references: &[KnownReference],
    ) -> Result<()> {
        let (turns, names) = rttm_with_names(&dir.join(&item.rttm))?;
        let person = |label: usize| person_of(&names[label], voices);
        let truth: Vec<Option<&String>> = (0..d.speakers.len())
            .map(|s| {
                let mut overlap = vec![0.0f64; names.len()];
                for h in d.turns.iter().filter(|t| t.speaker == s) {
                    for r in &turns {
                        overlap[r.speaker] += (h.end.min(r.end) - h.start.max(r.start)).max(0.0);
                    }
                }
                (0..names.len())
                    .filter(|&l| overlap[l] > 0.0)
                    .max_by(|&a, &b| overlap[a].total_cmp(&overlap[b]))
                    .and_then(person)
            })
            .collect();
        let mut known: Vec<(String, Vec<f32>)> = Vec::new();
        for r in references
            .iter()
            .filter(|r| r.part == item.part && r.item != item.id)
        {
            if !known.iter().any(|(v, _)| v == &r.voice) {
                known.push((r.voice.clone(), r.print.clone()));
            }
        }
        let prints: Vec<Vec<f32>> = d.speakers.iter().map(|s| s.embedding.clone()).collect();
        for (s, print) in prints.iter().enumerate() {
            for (voice, r) in &known {
                let sim = voxfleet_speakers::cosine_similarity(print, r);
                if truth[s] == Some(voice) {
                    self.same.push(sim);
                } else {
                    self.different.push(sim);
                }
            }
        }
        // A stranger: the same speakers with their own person's reference withheld; any
        // name is then wrong.
        let best_other: Vec<f32> = prints
            .iter()
            .enumerate()
            .map(|(s, print)| {
                known
                    .iter()
                    .filter(|(v, _)| truth[s] != Some(v))
                    .map(|(_, r)| voxfleet_speakers::cosine_similarity(print, r))
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .collect();
        self.speakers += prints.len();
        self.counts.resize(KNOWN_THRESHOLDS.len(), (0, 0, 0, 0));
        for (i, &t) in KNOWN_THRESHOLDS.iter().enumerate() {
            let named = voxfleet_speakers::match_known(&prints, &known, t);
            let right = named.iter().filter(|(s, v)| truth[*s] == Some(v)).count();
            self.counts[i].0 += right;
            self.counts[i].1 += named.len() - right;
            self.counts[i].2 += prints.len() - named.len();
            self.counts[i].3 += best_other.iter().filter(|&&b| b >= t).count();
        }
        Ok(())
    }

    pub(super) fn print(&self, part: &str) {
        let stats = |v: &[f32]| {
            let mut v = v.to_vec();
            v.sort_by(f32::total_cmp);
            match (v.first(), v.get(v.len() / 2), v.last()) {
                (Some(a), Some(m), Some(b)) => format!("{a:.2} / {m:.2} / {b:.2} (n={})", v.len()),
                _ => "none".to_owned(),
            }
        };
        println!(
            "\nknown speakers, {part} ({} diarized speakers; references: first {KNOWN_REFERENCE_S} s of each person in another recording of the part; the worker's bar: {} wideband, {} telephone-band)",
            self.speakers,
            voxfleet_speakers::KNOWN_SPEAKER_MIN_SIMILARITY,
            voxfleet_speakers::KNOWN_SPEAKER_MIN_SIMILARITY_NARROWBAND
        );
        println!(
            "  similarity to the right person's reference  min / median / max: {}",
            stats(&self.same)
        );
        println!(
            "  similarity to other people's references     min / median / max: {}",
            stats(&self.different)
        );
        println!(
            "  {:>9} {:>11} {:>11} {:>9} {:>26}",
            "threshold", "named right", "named wrong", "unnamed", "stranger given a name"
        );
        for (t, (right, wrong, unnamed, stranger)) in KNOWN_THRESHOLDS.iter().zip(&self.counts) {
            println!(
                "  {t:>9.2} {right:>11} {wrong:>11} {unnamed:>9} {stranger:>19} of {}",
                self.speakers
            );
        }
    }
}
