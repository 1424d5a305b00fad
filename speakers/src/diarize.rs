//! [`Diarizer`]: who spoke when, pyannote 3.x style, from a [`Segmenter`] and an [`Embedder`].
//!
//! 1. Segmentation: 10 s windows every `step_s` (1 s by default: 90 % overlap; the last window
//!    is zero-padded), in batches, decoded by [`crate::powerset::to_multilabel`] into hard
//!    activations of 3 local speakers per window.
//! 2. Embeddings: for each (window, local speaker) active for at least 0.2 s, the window's
//!    samples of that speaker's frames, cut out and concatenated; only its clean
//!    (non-overlapped) frames when they add up to at least 0.5 s. Clips under 0.25 s are not
//!    embedded (the speaker then only counts towards the number of active speakers).
//! 3. Clustering ([`crate::cluster`], centroid linkage, cosine distance) of the embeddings with
//!    at least 2 s of clean speech in their window (pyannote's 20 % of a window; all
//!    embeddings when none qualifies), threshold from [`DiarizeOptions::threshold`] or
//!    [`FrontEnd::default_threshold`](crate::FrontEnd::default_threshold), honouring the speaker-count hints. Every embedded local
//!    speaker then goes to its nearest centroid, two local speakers of one window to different
//!    clusters where there are enough (best total similarity).
//! 4. [`crate::aggregate`] over windows (frame step 270 samples, segmentation-3.0's stride),
//!    [`Timeline::discrete`](crate::Timeline::discrete) (the estimated number of speakers per
//!    frame, overlap kept) and [`crate::binarize`] (gaps under 0.1 s filled, turns under
//!    0.1 s dropped) into turns; speakers renumbered by first appearance.
//!
//! `stop` is checked between batches (of windows, of embeddings); `progress` is told after each
//! one, segmentation being the first half and embeddings the second half of `total_ms` (the
//! audio's duration).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::aggregate::{AggregateOptions, Chunk, aggregate};
use crate::binarize::{BinarizeOptions, Turn, binarize};
use crate::cluster::{ClusterOptions, Linkage, cluster_embeddings, cosine_similarity};
use crate::error::SpeakersError;
use crate::onnx::{Embedder, SAMPLE_RATE, Segmenter, WINDOW_SAMPLES, normalized};
use crate::powerset::{NUM_LOCAL_SPEAKERS, to_multilabel};

/// Segmentation-3.0's frame stride in samples (SincNet stride 10, then three max-pools of 3).
pub const FRAME_SAMPLES: usize = 270;
/// Windows per segmentation run.
const SEGMENT_BATCH: usize = 8;
/// A local speaker active for less than this (seconds) in a window is not embedded.
const MIN_ACTIVE_S: f64 = 0.2;
/// Clean (non-overlapped) frames are used alone when they add up to at least this.
const MIN_CLEAN_S: f64 = 0.5;
/// Shortest clip that is embedded.
const MIN_EMBED_S: f64 = 0.25;
/// Embeddings with at least this much clean speech in their window are clustered.
const MIN_TRAIN_S: f64 = 2.0;

/// Options of [`Diarizer::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizeOptions {
    /// Exact number of speakers; overrides the threshold and the other hints.
    pub num_speakers: Option<usize>,
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// Clustering threshold (cosine distance); default
    /// [`FrontEnd::default_threshold`](crate::FrontEnd::default_threshold).
    pub threshold: Option<f32>,
    /// Clips per embedding batch (also how often `stop` is checked). Default 32.
    pub batch_size: usize,
    /// Segmentation window step in seconds. Default 1.0 (10 s windows, 90 % overlap).
    pub step_s: f64,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        Self {
            num_speakers: None,
            min_speakers: None,
            max_speakers: None,
            threshold: None,
            batch_size: 32,
            step_s: 1.0,
        }
    }
}

/// One speaker of a [`Diarization`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizedSpeaker {
    /// `SPEAKER_00`, `SPEAKER_01`, … in order of first appearance.
    pub label: String,
    /// Seconds of speech (overlapped speech counts for each speaker).
    pub speech_s: f64,
    /// L2-normalised mean of the embeddings assigned to this speaker.
    pub embedding: Vec<f32>,
}

/// Result of [`Diarizer::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Diarization {
    /// Sorted turns; `speaker` indexes `speakers`. Overlapped speech gives overlapping turns.
    pub turns: Vec<Turn>,
    pub speakers: Vec<DiarizedSpeaker>,
    /// Duration of the input in seconds.
    pub duration_s: f64,
}

/// How far [`Diarizer::run`] is: `done_ms / total_ms` of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done_ms: u64,
    pub total_ms: u64,
}

/// A speaker diarization pipeline. `Send + Sync`; cheap to clone the `Arc`s into.
#[derive(Clone)]
pub struct Diarizer {
    segmenter: Arc<Segmenter>,
    embedder: Arc<Embedder>,
}

/// One (window, local speaker) to embed.
struct Candidate {
    window: usize,
    speaker: usize,
    /// Sample ranges of the clip.
    spans: Vec<(usize, usize)>,
    /// Clean speech in the window, seconds.
    clean_s: f64,
}

impl Diarizer {
    pub fn new(segmenter: Arc<Segmenter>, embedder: Arc<Embedder>) -> Self {
        Self {
            segmenter,
            embedder,
        }
    }

    pub fn embedder(&self) -> &Arc<Embedder> {
        &self.embedder
    }

    pub fn segmenter(&self) -> &Arc<Segmenter> {
        &self.segmenter
    }

    /// Diarizes 16 kHz mono `pcm` (see the module docs).
    pub fn run(
        &self,
        pcm: &[f32],
        opts: &DiarizeOptions,
        progress: &mut dyn FnMut(Progress),
        stop: &AtomicBool,
    ) -> Result<Diarization, SpeakersError> {
        if !(opts.step_s.is_finite() && opts.step_s > 0.0 && opts.step_s <= 10.0) {
            return Err(SpeakersError::InvalidOptions(format!(
                "step_s must be in (0, 10], got {}",
                opts.step_s
            )));
        }
        let cluster_opts = ClusterOptions {
            threshold: opts
                .threshold
                .unwrap_or_else(|| self.embedder.front_end().default_threshold()),
            linkage: Linkage::Centroid,
            num_speakers: opts.num_speakers,
            min_speakers: opts.min_speakers,
            max_speakers: opts.max_speakers,
        };
        // Reject bad hints before any work.
        cluster_embeddings(&[[1.0f32]], &cluster_opts)?;
        let check = || {
            if stop.load(Ordering::Relaxed) {
                Err(SpeakersError::Cancelled)
            } else {
                Ok(())
            }
        };
        check()?;
        let duration_s = pcm.len() as f64 / SAMPLE_RATE as f64;
        let total_ms = (duration_s * 1000.0).round() as u64;
        let mut report = |fraction: f64| {
            progress(Progress {
                done_ms: ((total_ms as f64 * fraction.clamp(0.0, 1.0)).round() as u64)
                    .min(total_ms),
                total_ms,
            })
        };
        let empty = Diarization {
            turns: Vec::new(),
            speakers: Vec::new(),
            duration_s,
        };
        if pcm.is_empty() {
            report(1.0);
            return Ok(empty);
        }

        // 1. Segmentation.
        let step = ((opts.step_s * SAMPLE_RATE as f64).round() as usize).max(1);
        let num_windows = if pcm.len() <= WINDOW_SAMPLES {
            1
        } else {
            (pcm.len() - WINDOW_SAMPLES).div_ceil(step) + 1
        };
        let starts: Vec<usize> = (0..num_windows).map(|k| k * step).collect();
        let mut activations: Vec<Vec<[f32; NUM_LOCAL_SPEAKERS]>> = Vec::with_capacity(num_windows);
        for batch in starts.chunks(SEGMENT_BATCH) {
            check()?;
            let windows: Vec<&[f32]> = batch
                .iter()
                .map(|&s| &pcm[s..(s + WINDOW_SAMPLES).min(pcm.len())])
                .collect();
            for logits in self.segmenter.segment(&windows)? {
                activations.push(to_multilabel(&logits));
            }
            report(0.5 * activations.len() as f64 / num_windows as f64);
        }

        // 2. Embeddings.
        let mut candidates = self.candidates(pcm, &starts, &activations, true);
        if candidates.is_empty() {
            candidates = self.candidates(pcm, &starts, &activations, false);
        }
        tracing::debug!(
            windows = num_windows,
            candidates = candidates.len(),
            "diarization: segmentation done"
        );
        if candidates.is_empty() {
            report(1.0);
            return Ok(empty);
        }
        let clips: Vec<Vec<f32>> = candidates
            .iter()
            .map(|c| {
                c.spans
                    .iter()
                    .flat_map(|&(a, b)| pcm[a..b].iter().copied())
                    .collect()
            })
            .collect();
        let mut embeddings: Vec<Vec<f32>> = Vec::with_capacity(clips.len());
        for batch in clips.chunks(opts.batch_size.max(1)) {
            check()?;
            let refs: Vec<&[f32]> = batch.iter().map(Vec::as_slice).collect();
            embeddings.extend(self.embedder.embed_clips(&refs)?);
            report(0.5 + 0.5 * embeddings.len() as f64 / clips.len() as f64);
        }

        // 3. Clustering.
        let mut train: Vec<&[f32]> = candidates
            .iter()
            .zip(&embeddings)
            .filter(|(c, _)| c.clean_s >= MIN_TRAIN_S)
            .map(|(_, e)| e.as_slice())
            .collect();
        if train.is_empty() {
            train = embeddings.iter().map(Vec::as_slice).collect();
        }
        let clustering = cluster_embeddings(&train, &cluster_opts)?;
        let centroids = clustering.centroids;
        let mut clusters = vec![[None; NUM_LOCAL_SPEAKERS]; num_windows];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); centroids.len()];
        let mut first = 0;
        while first < candidates.len() {
            let window = candidates[first].window;
            let mut end = first;
            while end < candidates.len() && candidates[end].window == window {
                end += 1;
            }
            let sims: Vec<Vec<f32>> = (first..end)
                .map(|i| {
                    centroids
                        .iter()
                        .map(|c| cosine_similarity(&embeddings[i], c))
                        .collect()
                })
                .collect();
            for (offset, cluster) in best_assignment(&sims).into_iter().enumerate() {
                clusters[window][candidates[first + offset].speaker] = Some(cluster);
                members[cluster].push(first + offset);
            }
            first = end;
        }

        // 4. Aggregation and turns.
        let frame_step = FRAME_SAMPLES as f64 / SAMPLE_RATE as f64;
        let chunks: Vec<Chunk<'_>> = starts
            .iter()
            .zip(&activations)
            .zip(&clusters)
            .map(|((&start, acts), &clusters)| Chunk {
                start: start as f64 / SAMPLE_RATE as f64,
                activations: acts,
                clusters,
            })
            .collect();
        let timeline = aggregate(
            &chunks,
            duration_s,
            &AggregateOptions {
                frame_step,
                count_threshold: 0.5,
            },
        )
        .discrete();
        let raw_turns = binarize(
            &timeline,
            &BinarizeOptions {
                min_duration_on: 0.1,
                min_duration_off: 0.1,
                ..BinarizeOptions::default()
            },
        );

        // Renumber by first appearance; speakers without turns are dropped.
        let mut new_id = vec![usize::MAX; centroids.len().max(timeline.num_speakers)];
        let mut speakers = Vec::new();
        let mut turns = Vec::with_capacity(raw_turns.len());
        for t in raw_turns {
            let end = t.end.min(duration_s);
            if end <= t.start {
                continue;
            }
            if new_id[t.speaker] == usize::MAX {
                new_id[t.speaker] = speakers.len();
                let mut sum = vec![0f32; self.embedder.dim()];
                for &m in members.get(t.speaker).map_or(&[][..], Vec::as_slice) {
                    for (s, x) in sum.iter_mut().zip(&embeddings[m]) {
                        *s += x;
                    }
                }
                let embedding = if sum.iter().any(|&x| x != 0.0) {
                    normalized(sum)
                } else {
                    centroids.get(t.speaker).cloned().unwrap_or_default()
                };
                speakers.push(DiarizedSpeaker {
                    label: format!("SPEAKER_{:02}", speakers.len()),
                    speech_s: 0.0,
                    embedding,
                });
            }
            let speaker = new_id[t.speaker];
            speakers[speaker].speech_s += end - t.start;
            turns.push(Turn {
                start: t.start,
                end,
                speaker,
            });
        }
        crate::binarize::sort_turns(&mut turns);
        tracing::debug!(
            speakers = speakers.len(),
            turns = turns.len(),
            clusters = centroids.len(),
            "diarization done"
        );
        report(1.0);
        Ok(Diarization {
            turns,
            speakers,
            duration_s,
        })
    }

    /// The (window, local speaker) pairs worth embedding, in window order. `strict = false`
    /// takes every active speaker with any audio (for inputs where nothing passes the limits).
    fn candidates(
        &self,
        pcm: &[f32],
        starts: &[usize],
        activations: &[Vec<[f32; NUM_LOCAL_SPEAKERS]>],
        strict: bool,
    ) -> Vec<Candidate> {
        let frame_s = FRAME_SAMPLES as f64 / SAMPLE_RATE as f64;
        let (min_active, min_embed) = if strict {
            (MIN_ACTIVE_S, (MIN_EMBED_S * SAMPLE_RATE as f64) as usize)
        } else {
            (0.0, 1)
        };
        let mut out = Vec::new();
        for (window, (&start, acts)) in starts.iter().zip(activations).enumerate() {
            for speaker in 0..NUM_LOCAL_SPEAKERS {
                let active: Vec<bool> = acts.iter().map(|f| f[speaker] > 0.5).collect();
                let clean: Vec<bool> = acts
                    .iter()
                    .map(|f| {
                        f[speaker] > 0.5
                            && f.iter()
                                .enumerate()
                                .all(|(other, &v)| other == speaker || v <= 0.5)
                    })
                    .collect();
                let n_active = active.iter().filter(|&&a| a).count();
                let n_clean = clean.iter().filter(|&&a| a).count();
                if n_active == 0 || (n_active as f64) * frame_s < min_active {
                    continue;
                }
                let mask = if n_clean as f64 * frame_s >= MIN_CLEAN_S {
                    &clean
                } else {
                    &active
                };
                let mut spans: Vec<(usize, usize)> = Vec::new();
                for (j, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
                    let a = (start + j * FRAME_SAMPLES).min(pcm.len());
                    let b = (start + (j + 1) * FRAME_SAMPLES).min(pcm.len());
                    if b <= a {
                        continue;
                    }
                    match spans.last_mut() {
                        Some(last) if last.1 == a => last.1 = b,
                        _ => spans.push((a, b)),
                    }
                }
                let samples: usize = spans.iter().map(|(a, b)| b - a).sum();
                if samples < min_embed {
                    continue;
                }
                out.push(Candidate {
                    window,
                    speaker,
                    spans,
                    clean_s: n_clean as f64 * frame_s,
                });
            }
        }
        out
    }
}

/// Cluster for each of (at most 3) local speakers given their similarities to every centroid:
/// distinct clusters maximising the total similarity when there are enough clusters, else each
/// its nearest.
fn best_assignment(sims: &[Vec<f32>]) -> Vec<usize> {
    let k = sims.first().map_or(0, Vec::len);
    let nearest = |row: &Vec<f32>| {
        (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    };
    if k < sims.len() || sims.len() <= 1 {
        return sims.iter().map(nearest).collect();
    }
    fn search(
        sims: &[Vec<f32>],
        i: usize,
        used: &mut Vec<usize>,
        score: f32,
        best: &mut (f32, Vec<usize>),
    ) {
        if i == sims.len() {
            if score > best.0 {
                *best = (score, used.clone());
            }
            return;
        }
        for c in 0..sims[i].len() {
            if !used.contains(&c) {
                used.push(c);
                search(sims, i + 1, used, score + sims[i][c], best);
                used.pop();
            }
        }
    }
    let mut best = (f32::NEG_INFINITY, Vec::new());
    search(sims, 0, &mut Vec::new(), 0.0, &mut best);
    if best.1.len() == sims.len() {
        best.1
    } else {
        sims.iter().map(nearest).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_keeps_local_speakers_apart() {
        // Both prefer cluster 0; the second is less sure, so it moves to cluster 1.
        let sims = vec![vec![0.9, 0.1], vec![0.6, 0.5]];
        assert_eq!(best_assignment(&sims), vec![0, 1]);
        // More local speakers than clusters: nearest each.
        let sims = vec![vec![0.9], vec![0.6]];
        assert_eq!(best_assignment(&sims), vec![0, 0]);
        assert_eq!(best_assignment(&[]), Vec::<usize>::new());
    }

    #[test]
    fn diarizer_is_send_sync() {
        fn f<T: Send + Sync>() {}
        f::<Diarizer>();
        f::<Embedder>();
        f::<Segmenter>();
    }
}
