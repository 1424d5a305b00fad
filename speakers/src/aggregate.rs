//! Sliding-window aggregation of per-chunk speaker activations into one global timeline.
//!
//! Segmentation runs on overlapping chunks (10 s, sliding by a step). Once each chunk's local
//! speakers have been mapped to global cluster ids, [`aggregate`] places every chunk frame on a
//! global frame grid and averages over the chunks that cover each global frame (a speaker absent
//! from a covering chunk contributes 0 there), as pyannote.audio does without Hamming weighting.
//! It also estimates how many speakers are active per frame by averaging each chunk's local count
//! and rounding. [`Timeline::discrete`] keeps, per frame, the `count` highest-scoring speakers, so
//! overlapped speech stays overlapped.

use crate::powerset::NUM_LOCAL_SPEAKERS;

/// Chunk length of pyannote segmentation-3.0 in seconds.
pub const CHUNK_DURATION: f64 = 10.0;
/// Output frames per chunk of pyannote segmentation-3.0.
pub const FRAMES_PER_CHUNK: usize = 589;
/// Default frame step in seconds: `CHUNK_DURATION / FRAMES_PER_CHUNK` (≈ 16.98 ms).
pub const FRAME_STEP: f64 = CHUNK_DURATION / FRAMES_PER_CHUNK as f64;

/// One segmented chunk, with its local speakers mapped to global clusters.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// Chunk start time in seconds.
    pub start: f64,
    /// Per-frame activations of the local speakers (hard 0/1 or soft scores in `[0, 1]`).
    pub activations: &'a [[f32; NUM_LOCAL_SPEAKERS]],
    /// Global cluster of each local speaker; `None` drops that speaker from the scores (it still
    /// counts towards the number of active speakers). Several local speakers mapped to one
    /// cluster are combined with `max`.
    pub clusters: [Option<usize>; NUM_LOCAL_SPEAKERS],
}

/// Options for [`aggregate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggregateOptions {
    /// Duration of one frame in seconds. Default [`FRAME_STEP`].
    pub frame_step: f64,
    /// A local activation above this counts as one active speaker in the per-frame count.
    /// Default 0.5.
    pub count_threshold: f32,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            frame_step: FRAME_STEP,
            count_threshold: 0.5,
        }
    }
}

/// Global frame-level activations: frame `i` covers `[i * frame_step, (i + 1) * frame_step)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Duration of one frame in seconds.
    pub frame_step: f64,
    /// Number of global speakers (highest cluster id + 1).
    pub num_speakers: usize,
    /// Averaged activations, `frames × num_speakers`, row-major.
    pub scores: Vec<f32>,
    /// Estimated number of simultaneously active speakers per frame.
    pub count: Vec<u8>,
}

impl Timeline {
    /// Number of frames.
    pub fn num_frames(&self) -> usize {
        self.count.len()
    }

    /// Score of `speaker` at `frame` (0 when out of range).
    pub fn score(&self, frame: usize, speaker: usize) -> f32 {
        if speaker >= self.num_speakers {
            return 0.0;
        }
        self.scores
            .get(frame * self.num_speakers + speaker)
            .copied()
            .unwrap_or(0.0)
    }

    /// The score curve of one speaker over all frames.
    pub fn speaker_scores(&self, speaker: usize) -> Vec<f32> {
        (0..self.num_frames())
            .map(|frame| self.score(frame, speaker))
            .collect()
    }

    /// Discrete activations: per frame, the `count[frame]` speakers with the highest scores
    /// (ties to the lower id, only those with a positive score) get 1.0, others 0.0. This is
    /// pyannote's final reconstruction; two speakers stay active where the count says two.
    pub fn discrete(&self) -> Timeline {
        let n = self.num_speakers;
        let mut scores = vec![0.0f32; self.scores.len()];
        let mut order: Vec<usize> = (0..n).collect();
        for (frame, &count) in self.count.iter().enumerate() {
            let row = &self.scores[frame * n..(frame + 1) * n];
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            for &speaker in order.iter().take(count as usize) {
                if row[speaker] > 0.0 {
                    scores[frame * n + speaker] = 1.0;
                }
            }
        }
        Timeline {
            frame_step: self.frame_step,
            num_speakers: n,
            scores,
            count: self.count.clone(),
        }
    }
}

/// Aggregates chunks into a [`Timeline`] covering `[0, duration)` seconds.
///
/// Chunk frame `j` of a chunk starting at `start` lands on global frame
/// `round(start / frame_step) + j`. Frames past `duration` (the zero-padded tail of the last,
/// partial chunk) are dropped; global frames no chunk covers get score 0 and count 0. Non-finite
/// or negative starts and a non-positive `frame_step` give an empty timeline.
pub fn aggregate(chunks: &[Chunk<'_>], duration: f64, options: &AggregateOptions) -> Timeline {
    let step = options.frame_step;
    let num_speakers = chunks
        .iter()
        .flat_map(|chunk| chunk.clusters.iter().flatten())
        .max()
        .map_or(0, |&max| max + 1);
    let num_frames = if step > 0.0 && duration.is_finite() && duration > 0.0 {
        (duration / step).ceil() as usize
    } else {
        0
    };
    let mut sums = vec![0.0f32; num_frames * num_speakers];
    let mut count_sums = vec![0.0f32; num_frames];
    let mut coverage = vec![0u32; num_frames];
    let mut chunk_row = vec![0.0f32; num_speakers];

    for chunk in chunks {
        if num_frames == 0 || !chunk.start.is_finite() || chunk.start < 0.0 {
            continue;
        }
        let offset = (chunk.start / step).round() as usize;
        for (j, local) in chunk.activations.iter().enumerate() {
            let frame = offset.saturating_add(j);
            if frame >= num_frames {
                break;
            }
            chunk_row.fill(0.0);
            let mut active = 0u32;
            for (speaker, &value) in local.iter().enumerate() {
                let value = if value.is_finite() { value } else { 0.0 };
                if value > options.count_threshold {
                    active += 1;
                }
                if let Some(cluster) = chunk.clusters[speaker] {
                    chunk_row[cluster] = chunk_row[cluster].max(value);
                }
            }
            let row = &mut sums[frame * num_speakers..(frame + 1) * num_speakers];
            for (sum, value) in row.iter_mut().zip(&chunk_row) {
                *sum += value;
            }
            count_sums[frame] += active as f32;
            coverage[frame] += 1;
        }
    }

    let mut count = vec![0u8; num_frames];
    for frame in 0..num_frames {
        let covered = coverage[frame];
        if covered == 0 {
            continue;
        }
        let inv = 1.0 / covered as f32;
        for sum in &mut sums[frame * num_speakers..(frame + 1) * num_speakers] {
            *sum *= inv;
        }
        count[frame] = (count_sums[frame] * inv).round() as u8;
    }
    Timeline {
        frame_step: step,
        num_speakers,
        scores: sums,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn two_overlapping_chunks_are_averaged() {
        let options = AggregateOptions {
            frame_step: 1.0,
            count_threshold: 0.5,
        };
        // Chunk A: frames 0..4; local 0 -> cluster 0 always on, local 1 -> cluster 1 on at 3.
        let a = [
            [1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
        ];
        // Chunk B starts at 2 s: local 2 -> cluster 0 with 0.5, local 0 -> cluster 1 always on.
        let b = [
            [1.0, 0.0, 0.5],
            [1.0, 0.0, 0.5],
            [1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
        ];
        let chunks = [
            Chunk {
                start: 0.0,
                activations: &a,
                clusters: [Some(0), Some(1), None],
            },
            Chunk {
                start: 2.0,
                activations: &b,
                clusters: [Some(1), None, Some(0)],
            },
        ];
        let timeline = aggregate(&chunks, 6.0, &options);
        assert_eq!(timeline.num_speakers, 2);
        assert_eq!(timeline.num_frames(), 6);
        let s0 = timeline.speaker_scores(0);
        let s1 = timeline.speaker_scores(1);
        let want0 = [1.0, 1.0, 0.75, 0.75, 0.0, 0.0];
        let want1 = [0.0, 0.0, 0.5, 1.0, 1.0, 1.0];
        for i in 0..6 {
            assert!(close(s0[i], want0[i]), "speaker 0: {s0:?}");
            assert!(close(s1[i], want1[i]), "speaker 1: {s1:?}");
        }
        // Counts: frame 2: (1 + 1) / 2 = 1; frame 3: (2 + 1) / 2 = 1.5 -> 2.
        assert_eq!(timeline.count, vec![1, 1, 1, 2, 1, 1]);
        // The discrete view keeps the overlap at frame 3 and picks the top speaker elsewhere.
        let discrete = timeline.discrete();
        assert_eq!(
            discrete.speaker_scores(0),
            vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(
            discrete.speaker_scores(1),
            vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
        );
    }

    #[test]
    fn last_partial_chunk_is_cut_at_duration_and_gaps_are_empty() {
        let options = AggregateOptions {
            frame_step: 0.5,
            count_threshold: 0.5,
        };
        let a = [[1.0, 0.0, 0.0]; 4];
        let chunks = [Chunk {
            start: 0.5,
            activations: &a,
            clusters: [Some(0), None, None],
        }];
        // 1.8 s -> 4 frames; the chunk covers frames 1..5, so its last frame is dropped.
        let timeline = aggregate(&chunks, 1.8, &options);
        assert_eq!(timeline.speaker_scores(0), vec![0.0, 1.0, 1.0, 1.0]);
        assert_eq!(timeline.count, vec![0, 1, 1, 1]);
    }

    #[test]
    fn local_speakers_sharing_a_cluster_take_the_max() {
        let a = [[0.25, 0.75, 0.0], [1.0, 1.0, 0.0]];
        let chunks = [Chunk {
            start: 0.0,
            activations: &a,
            clusters: [Some(0), Some(0), None],
        }];
        let options = AggregateOptions {
            frame_step: 1.0,
            count_threshold: 0.5,
        };
        let timeline = aggregate(&chunks, 2.0, &options);
        assert_eq!(timeline.speaker_scores(0), vec![0.75, 1.0]);
        assert_eq!(timeline.count, vec![1, 2]);
    }

    #[test]
    fn degenerate_inputs_give_empty_timelines() {
        let a = [[1.0, 0.0, 0.0]; 4];
        let chunk = Chunk {
            start: 0.0,
            activations: &a,
            clusters: [Some(0), None, None],
        };
        assert_eq!(
            aggregate(&[chunk], 0.0, &AggregateOptions::default()).num_frames(),
            0
        );
        assert_eq!(
            aggregate(&[], 5.0, &AggregateOptions::default()).num_speakers,
            0
        );
    }
}
