//! [`Diarizer`]: who spoke when, from a [`Segmenter`] and an [`Embedder`].
//!
//! 1. Segmentation: 10 s windows every `step_s` (1 s by default: 90 % overlap; the last window
//!    is zero-padded), in batches, decoded by [`crate::powerset::to_multilabel`] into hard
//!    activations of 3 local speakers per window.
//! 2. Embeddings and clustering, by [`DiarizeOptions::method`]:
//!    - [`Method::SubSegments`]: the windows' speaker counts are averaged into a
//!      count per frame; stretches where it is one are cut into 1.5 s sub-segments every
//!      0.75 s ([`crate::subsegment`]), each embedded and clustered (centroid linkage, cosine
//!      distance, threshold [`FrontEnd::default_subsegment_threshold`](crate::FrontEnd::default_subsegment_threshold),
//!      tighter on telephone-band audio), clusters with under 3 s folded into their nearest.
//!      Frames where one speaker talks take their nearest sub-segment's cluster; each window's
//!      local speakers take the cluster most of their frames have, which names the second
//!      speaker of overlapped frames. Falls back to windows when nothing can be cut.
//!    - [`Method::Windows`] (pyannote 3.x, the default): for each (window, local speaker) active for at
//!      least 0.2 s, the window's samples of that speaker's frames, cut out and concatenated;
//!      only its clean (non-overlapped) frames when they add up to at least 0.5 s. Clips under
//!      0.25 s are not embedded. On wideband audio each unit embedding less the model's
//!      [`Background`](crate::Background) mean ([`DiarizeOptions::background`]) is what is
//!      clustered and assigned. The embeddings with at least 2 s of clean speech in their
//!      window (pyannote's 20 % of a window; all when none qualifies) are clustered, threshold
//!      [`FrontEnd::default_background_threshold`](crate::FrontEnd::default_background_threshold)
//!      when centred, else [`FrontEnd::default_threshold`](crate::FrontEnd::default_threshold)
//!      (tighter on telephone-band audio); clusters with fewer members than
//!      [`DiarizeOptions::min_cluster_size`] (none by default) are folded; every embedded
//!      local speaker then goes to its nearest centroid, two local speakers of one window to
//!      different clusters where there are enough (best total similarity). On voices the
//!      segmentation model does not tell apart, one local speaker holds two people and its
//!      embedding is a mixture, which is what sub-segments avoid.
//!    - [`Method::Hybrid`]: the windows' number of speakers, the sub-segments' labels.
//!
//!    All honour the speaker-count hints.
//! 3. [`crate::aggregate`] over windows (frame step 270 samples, segmentation-3.0's stride),
//!    [`Timeline::discrete`](crate::Timeline::discrete) (the estimated number of speakers per
//!    frame, overlap kept), sub-segment labels where one speaker talks, and
//!    [`crate::binarize`] (gaps under 0.1 s filled, turns under 0.1 s dropped) into turns;
//!    speakers renumbered by first appearance.
//! 4. Unless `num_speakers` is given, the recheck ([`DiarizeOptions::recheck`], on by default):
//!    each speaker's single-speaker stretches re-embedded in pieces of 1–3 s, two speakers
//!    merged when their pieces agree as well as each one's agree among themselves, speakers
//!    with under two seconds of speech folded into the nearest; step 3 again when any changed.
//!
//! `stop` is checked between batches (of windows, of embeddings); `progress` is told after each
//! one, segmentation being the first half and embeddings the second half of `total_ms` (the
//! audio's duration).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::aggregate::{AggregateOptions, Chunk, Timeline, aggregate};
use crate::binarize::{BinarizeOptions, Turn, binarize};
use crate::cluster::{
    ClusterOptions, Linkage, cluster_embeddings, cosine_similarity, count_at_largest_gap,
    merge_heights,
};
use crate::error::SpeakersError;
use crate::onnx::{Embedder, SAMPLE_RATE, Segmenter, WINDOW_SAMPLES, normalized};
use crate::powerset::{NUM_LOCAL_SPEAKERS, to_multilabel};
use crate::subsegment;

mod by_subsegments;
mod by_windows;
mod options;
mod recheck;

pub use options::{
    ADAPTIVE_RANGE, DEFAULT_FOLD_BELOW_S, DEFAULT_MIN_CLUSTER_SIZE, DEFAULT_RECHECK,
    DiarizeOptions, Method,
};

/// Segmentation-3.0's frame stride in samples (SincNet stride 10, then three max-pools of 3).
pub const FRAME_SAMPLES: usize = 270;
/// Hard activations of one window's local speakers, frame by frame.
type Activations = Vec<[f32; NUM_LOCAL_SPEAKERS]>;
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

/// One embedded (window, local speaker) of [`Diarizer::window_embeddings`].
#[derive(Debug, Clone, PartialEq)]
pub struct WindowEmbedding {
    pub window: usize,
    pub local_speaker: usize,
    /// Where the embedded audio lies, in seconds.
    pub spans_s: Vec<(f64, f64)>,
    /// Clean (non-overlapped) speech of this local speaker in its window, seconds.
    pub clean_s: f64,
    pub embedding: Vec<f32>,
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
    /// A second embedding model for the recheck's pieces ([`Diarizer::with_second`]).
    second: Option<Arc<Embedder>>,
    memo: Option<Arc<Mutex<Memo>>>,
}

/// Model outputs kept by [`Diarizer::with_memo`], keyed by a hash of the input samples.
#[derive(Default)]
struct Memo {
    segments: HashMap<u64, Vec<[f32; NUM_LOCAL_SPEAKERS]>>,
    embeddings: HashMap<u64, Vec<f32>>,
    /// The second model's embeddings ([`Diarizer::with_second`]).
    second_embeddings: HashMap<u64, Vec<f32>>,
}

/// Hash of a clip's samples (bit patterns), for [`Memo`].
fn clip_key(clip: &[f32]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    clip.len().hash(&mut hasher);
    for x in clip {
        x.to_bits().hash(&mut hasher);
    }
    hasher.finish()
}

/// The segmentation of one input, as the clustering steps read it.
struct Segmented<'a> {
    pcm: &'a [f32],
    /// Window starts in samples.
    starts: &'a [usize],
    /// Hard activations of each window's local speakers.
    activations: &'a [Vec<[f32; NUM_LOCAL_SPEAKERS]>],
    duration_s: f64,
    /// Seconds per segmentation frame.
    frame_step: f64,
    /// Telephone-band audio ([`crate::subsegment::is_narrowband`]).
    narrowband: bool,
}

/// What a clustering step gives the aggregation.
struct Labelled {
    /// Global cluster of each window's local speakers.
    clusters: Vec<[Option<usize>; NUM_LOCAL_SPEAKERS]>,
    /// L2-normalised mean embedding of each cluster.
    speaker_embeddings: Vec<Vec<f32>>,
    /// Per global frame, the one speaker of that frame where that is known (empty: none).
    frame_labels: Vec<Option<usize>>,
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
            second: None,
            memo: None,
        }
    }

    /// A diarizer whose recheck can also hear the speakers' pieces through `second`, another
    /// embedding model, when [`DiarizeOptions::recheck_weight`] is under 1.
    pub fn with_second(mut self, second: Arc<Embedder>) -> Self {
        self.second = Some(second);
        self
    }

    /// A diarizer that remembers every window's segmentation and every clip's embedding, so
    /// that running it again on the same audio with other clustering options (a parameter
    /// sweep in `voxfleet-bench-diarize`) skips the models. Memory grows with every input
    /// until [`Diarizer::forget`]; not for a worker.
    pub fn with_memo(mut self) -> Self {
        self.memo = Some(Arc::default());
        self
    }

    /// Drops what [`Diarizer::with_memo`] remembered.
    pub fn forget(&self) {
        if let Some(memo) = &self.memo {
            *memo.lock().unwrap_or_else(|e| e.into_inner()) = Memo::default();
        }
    }

    /// Segmentation of `windows`, through the memo when there is one.
    fn segment(&self, windows: &[&[f32]]) -> Result<Vec<Activations>, SpeakersError> {
        self.through_memo(
            windows,
            |m| &mut m.segments,
            |windows| {
                Ok(self
                    .segmenter
                    .segment(windows)?
                    .iter()
                    .map(|logits| to_multilabel(logits))
                    .collect())
            },
        )
    }

    /// Embeddings of `clips`, through the memo when there is one.
    fn embed(&self, clips: &[&[f32]]) -> Result<Vec<Vec<f32>>, SpeakersError> {
        self.through_memo(
            clips,
            |m| &mut m.embeddings,
            |clips| self.embedder.embed_clips(clips),
        )
    }

    /// `second`'s embeddings of `clips` (the diarizer's second model), through the memo.
    fn embed_second(
        &self,
        second: &Embedder,
        clips: &[&[f32]],
    ) -> Result<Vec<Vec<f32>>, SpeakersError> {
        self.through_memo(
            clips,
            |m| &mut m.second_embeddings,
            |clips| second.embed_clips(clips),
        )
    }

    /// `compute(inputs)`, or what the memo's `table` holds for every one of them.
    fn through_memo<T: Clone>(
        &self,
        inputs: &[&[f32]],
        table: fn(&mut Memo) -> &mut HashMap<u64, T>,
        compute: impl FnOnce(&[&[f32]]) -> Result<Vec<T>, SpeakersError>,
    ) -> Result<Vec<T>, SpeakersError> {
        let Some(memo) = &self.memo else {
            return compute(inputs);
        };
        let keys: Vec<u64> = inputs.iter().map(|c| clip_key(c)).collect();
        let known = {
            let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
            let table = table(&mut memo);
            keys.iter()
                .map(|k| table.get(k).cloned())
                .collect::<Option<Vec<_>>>()
        };
        if let Some(known) = known {
            return Ok(known);
        }
        let out = compute(inputs)?;
        let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
        let table = table(&mut memo);
        for (k, v) in keys.iter().zip(&out) {
            table.insert(*k, v.clone());
        }
        Ok(out)
    }

    pub fn embedder(&self) -> &Arc<Embedder> {
        &self.embedder
    }

    pub fn segmenter(&self) -> &Arc<Segmenter> {
        &self.segmenter
    }

    /// The clustering threshold `opts` get when they name none, on `narrowband` audio or not:
    /// the embedding model's (see [`FrontEnd`](crate::FrontEnd)), for the windows method
    /// with or without its [`Background`](crate::Background).
    pub fn default_threshold(&self, opts: &DiarizeOptions, narrowband: bool) -> f32 {
        let front_end = self.embedder.front_end();
        match opts.method {
            Method::Windows | Method::Hybrid => self
                .background(opts, narrowband)
                .and(front_end.default_background_threshold(narrowband))
                .unwrap_or_else(|| front_end.default_threshold(narrowband)),
            Method::SubSegments => front_end.default_subsegment_threshold(narrowband),
        }
    }

    /// The [`Background`](crate::Background) the windows method centres on: the embedding
    /// model's, when `opts` ask for it and the model has one, and either `opts` name a
    /// threshold or the model has a threshold for centred embeddings in this band.
    pub(super) fn background(
        &self,
        opts: &DiarizeOptions,
        narrowband: bool,
    ) -> Option<crate::Background> {
        let front_end = self.embedder.front_end();
        let measured = opts.threshold.is_some()
            || front_end.default_background_threshold(narrowband).is_some();
        crate::Background::for_model(front_end, self.embedder.dim())
            .filter(|_| opts.background && measured)
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
        let narrowband = crate::subsegment::is_narrowband(pcm);
        let cluster_opts = ClusterOptions {
            threshold: opts
                .threshold
                .unwrap_or_else(|| self.default_threshold(opts, narrowband)),
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
        let (starts, activations) = self.segment_all(pcm, opts.step_s, &mut report, &check)?;

        // 2. Embeddings and clustering: each window's local speakers get a global cluster.
        let frame_step = FRAME_SAMPLES as f64 / SAMPLE_RATE as f64;
        let ctx = Segmented {
            pcm,
            starts: &starts,
            activations: &activations,
            duration_s,
            frame_step,
            narrowband,
        };
        let labelled = match opts.method {
            Method::SubSegments => {
                match self.by_subsegments(&ctx, opts, &cluster_opts, &mut report, &check)? {
                    Some(l) => Some(l),
                    // Nothing long enough where one speaker talks alone: the windows decide.
                    None => self.by_windows(&ctx, opts, &cluster_opts, &mut report, &check)?,
                }
            }
            Method::Windows => self.by_windows(&ctx, opts, &cluster_opts, &mut report, &check)?,
            Method::Hybrid => {
                let windows = self.by_windows(&ctx, opts, &cluster_opts, &mut report, &check)?;
                match &windows {
                    Some(w) if cluster_opts.num_speakers.is_none() => {
                        let counted = ClusterOptions {
                            num_speakers: Some(w.speaker_embeddings.len().max(1)),
                            ..cluster_opts
                        };
                        self.by_subsegments(&ctx, opts, &counted, &mut report, &check)?
                            .or(windows)
                    }
                    _ => windows,
                }
            }
        };
        let Some(Labelled {
            mut clusters,
            mut speaker_embeddings,
            mut frame_labels,
        }) = labelled
        else {
            report(1.0);
            return Ok(empty);
        };

        // 3. Aggregation and turns, and the second look at the speakers found.
        let (raw_turns, num_speakers) =
            turns_of(&ctx, &clusters, &frame_labels, speaker_embeddings.len());
        let (raw_turns, num_speakers) = self.second_look(
            &ctx,
            &mut clusters,
            &mut frame_labels,
            &mut speaker_embeddings,
            (raw_turns, num_speakers),
            opts,
            &check,
        )?;

        // Renumber by first appearance; speakers without turns are dropped.
        let mut new_id = vec![usize::MAX; num_speakers];
        let mut speakers = Vec::new();
        let mut turns = Vec::with_capacity(raw_turns.len());
        for t in raw_turns {
            let end = t.end.min(duration_s);
            if end <= t.start {
                continue;
            }
            if new_id[t.speaker] == usize::MAX {
                new_id[t.speaker] = speakers.len();
                let embedding = speaker_embeddings
                    .get(t.speaker)
                    .cloned()
                    .unwrap_or_default();
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
            clusters = speaker_embeddings.len(),
            "diarization done"
        );
        report(1.0);
        Ok(Diarization {
            turns,
            speakers,
            duration_s,
        })
    }

    /// Segmentation of `pcm` in 10 s windows every `step_s`: the windows' start samples and
    /// each window's hard local-speaker activations. Reports the first half of the work.
    fn segment_all(
        &self,
        pcm: &[f32],
        step_s: f64,
        report: &mut dyn FnMut(f64),
        check: &dyn Fn() -> Result<(), SpeakersError>,
    ) -> Result<(Vec<usize>, Vec<Activations>), SpeakersError> {
        let step = ((step_s * SAMPLE_RATE as f64).round() as usize).max(1);
        let num_windows = if pcm.len() <= WINDOW_SAMPLES {
            1
        } else {
            (pcm.len() - WINDOW_SAMPLES).div_ceil(step) + 1
        };
        let starts: Vec<usize> = (0..num_windows).map(|k| k * step).collect();
        let mut activations: Vec<Activations> = Vec::with_capacity(num_windows);
        for batch in starts.chunks(SEGMENT_BATCH) {
            check()?;
            let windows: Vec<&[f32]> = batch
                .iter()
                .map(|&s| &pcm[s..(s + WINDOW_SAMPLES).min(pcm.len())])
                .collect();
            activations.extend(self.segment(&windows)?);
            report(0.5 * activations.len() as f64 / num_windows as f64);
        }
        Ok((starts, activations))
    }

    /// What [`Method::Windows`] clusters, for measuring embeddings against a reference
    /// (`voxfleet-bench-diarize --dump-embeddings`): every (window, local speaker) of 16 kHz
    /// mono `pcm` that the method embeds, with its embedding and where its audio lies.
    pub fn window_embeddings(
        &self,
        pcm: &[f32],
        step_s: f64,
    ) -> Result<Vec<WindowEmbedding>, SpeakersError> {
        let check = || Ok(());
        let (starts, activations) = self.segment_all(pcm, step_s, &mut |_| {}, &check)?;
        let candidates = self.candidates(pcm, &starts, &activations, true);
        let embeddings = self.embed_all(&clips_of(pcm, &candidates), 32, &mut |_| {}, &check)?;
        let s = |x: usize| x as f64 / SAMPLE_RATE as f64;
        Ok(candidates
            .into_iter()
            .zip(embeddings)
            .map(|(c, embedding)| WindowEmbedding {
                window: c.window,
                local_speaker: c.speaker,
                spans_s: c.spans.iter().map(|&(a, b)| (s(a), s(b))).collect(),
                clean_s: c.clean_s,
                embedding,
            })
            .collect())
    }

    /// Embeds clips in batches of `batch_size`, checking `stop` and reporting progress (the
    /// second half of the work) after each.
    fn embed_all(
        &self,
        clips: &[Vec<f32>],
        batch_size: usize,
        report: &mut dyn FnMut(f64),
        check: &dyn Fn() -> Result<(), SpeakersError>,
    ) -> Result<Vec<Vec<f32>>, SpeakersError> {
        embed_batches(clips, batch_size, report, check, |refs| self.embed(refs))
    }
}

/// `embed` over `clips` in batches of `batch_size`, checking `stop` before and reporting
/// progress (the second half of the work) after each.
fn embed_batches(
    clips: &[Vec<f32>],
    batch_size: usize,
    report: &mut dyn FnMut(f64),
    check: &dyn Fn() -> Result<(), SpeakersError>,
    embed: impl Fn(&[&[f32]]) -> Result<Vec<Vec<f32>>, SpeakersError>,
) -> Result<Vec<Vec<f32>>, SpeakersError> {
    let mut embeddings: Vec<Vec<f32>> = Vec::with_capacity(clips.len());
    for batch in clips.chunks(batch_size.max(1)) {
        check()?;
        let refs: Vec<&[f32]> = batch.iter().map(Vec::as_slice).collect();
        embeddings.extend(embed(&refs)?);
        report(0.5 + 0.5 * embeddings.len() as f64 / clips.len() as f64);
    }
    Ok(embeddings)
}

/// Step 3 of [`Diarizer::run`]: the windows' local speakers, labelled by `clusters` (and
/// `frame_labels` where they name a frame's one speaker), aggregated into a timeline and
/// binarized into turns. Also the number of speaker ids the turns may use (at least `known`).
fn turns_of(
    ctx: &Segmented<'_>,
    clusters: &[[Option<usize>; NUM_LOCAL_SPEAKERS]],
    frame_labels: &[Option<usize>],
    known: usize,
) -> (Vec<Turn>, usize) {
    let chunks: Vec<Chunk<'_>> = ctx
        .starts
        .iter()
        .zip(ctx.activations)
        .zip(clusters)
        .map(|((&start, acts), &clusters)| Chunk {
            start: start as f64 / SAMPLE_RATE as f64,
            activations: acts,
            clusters,
        })
        .collect();
    let timeline = aggregate(
        &chunks,
        ctx.duration_s,
        &AggregateOptions {
            frame_step: ctx.frame_step,
            count_threshold: 0.5,
        },
    )
    .discrete();
    let timeline = with_frame_labels(timeline, frame_labels);
    let turns = binarize(
        &timeline,
        &BinarizeOptions {
            min_duration_on: 0.1,
            min_duration_off: 0.1,
            ..BinarizeOptions::default()
        },
    );
    (turns, timeline.num_speakers.max(known))
}

/// Each candidate's audio: its spans of `pcm`, concatenated.
fn clips_of(pcm: &[f32], candidates: &[Candidate]) -> Vec<Vec<f32>> {
    candidates
        .iter()
        .map(|c| {
            c.spans
                .iter()
                .flat_map(|&(a, b)| pcm[a..b].iter().copied())
                .collect()
        })
        .collect()
}

/// The [`mean_embedding`] of each of the `k` clusters of `labels` (empty for one with no
/// members).
fn cluster_means<E: AsRef<[f32]>>(labels: &[usize], k: usize, embeddings: &[E]) -> Vec<Vec<f32>> {
    (0..k)
        .map(|c| {
            mean_embedding(
                labels
                    .iter()
                    .zip(embeddings)
                    .filter(|(l, _)| **l == c)
                    .map(|(_, e)| e.as_ref()),
            )
            .unwrap_or_default()
        })
        .collect()
}

/// L2-normalised mean of unit vectors; `None` when there are none (or they cancel out).
fn mean_embedding<'a>(embeddings: impl Iterator<Item = &'a [f32]>) -> Option<Vec<f32>> {
    let mut sum: Vec<f32> = Vec::new();
    for e in embeddings {
        if sum.is_empty() {
            sum = vec![0.0; e.len()];
        }
        for (s, x) in sum.iter_mut().zip(e) {
            *s += x;
        }
    }
    sum.iter().any(|&x| x != 0.0).then(|| normalized(sum))
}

/// Where `labels` name the one speaker of a frame whose count is one, that speaker alone is
/// active there (the sub-segment's finer boundaries win over the windows' vote).
fn with_frame_labels(mut timeline: Timeline, labels: &[Option<usize>]) -> Timeline {
    let needed = labels.iter().flatten().max().map_or(0, |&m| m + 1);
    if needed > timeline.num_speakers {
        let (old, new) = (timeline.num_speakers, needed);
        let frames = timeline.num_frames();
        let mut scores = vec![0.0f32; frames * new];
        for f in 0..frames {
            scores[f * new..f * new + old]
                .copy_from_slice(&timeline.scores[f * old..(f + 1) * old]);
        }
        timeline.scores = scores;
        timeline.num_speakers = new;
    }
    let n = timeline.num_speakers;
    for (f, label) in labels.iter().enumerate().take(timeline.num_frames()) {
        if let Some(l) = *label
            && timeline.count[f] == 1
        {
            let row = &mut timeline.scores[f * n..(f + 1) * n];
            row.fill(0.0);
            row[l] = 1.0;
        }
    }
    timeline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diarizer_is_send_sync() {
        fn f<T: Send + Sync>() {}
        f::<Diarizer>();
        f::<Embedder>();
        f::<Segmenter>();
    }
}
