//! Hysteresis binarisation of score curves into speaker turns.
//!
//! A region starts at the first frame whose score is above `onset` and ends at the first later
//! frame whose score is below `offset` (so with `offset < onset` a dip between the two does not
//! split it). Frame `i` spans `[i * frame_step, (i + 1) * frame_step)`, and a region of active
//! frames `a..b` becomes `[a * frame_step, b * frame_step)`. Then, per speaker and in this order
//! (as pyannote.audio's `Binarize`): each region is padded by `pad_onset`/`pad_offset` (start
//! clamped at 0), regions whose gap is shorter than `min_duration_off` are merged (so are regions
//! that padding made overlap), and regions shorter than `min_duration_on` are removed.

use crate::aggregate::Timeline;

/// One speaker turn, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turn {
    /// Start time in seconds.
    pub start: f64,
    /// End time in seconds (exclusive).
    pub end: f64,
    /// Speaker (global cluster) id.
    pub speaker: usize,
}

impl Turn {
    /// `end - start`.
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// Options for [`binarize`] and [`binarize_scores`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinarizeOptions {
    /// A region starts when the score is strictly above this. Default 0.5.
    pub onset: f32,
    /// A region ends when the score is strictly below this. Default 0.5.
    pub offset: f32,
    /// Regions shorter than this (seconds) are removed. Default 0.
    pub min_duration_on: f64,
    /// Gaps shorter than this (seconds) within one speaker are filled. Default 0.
    pub min_duration_off: f64,
    /// Seconds added before each region. Default 0.
    pub pad_onset: f64,
    /// Seconds added after each region. Default 0.
    pub pad_offset: f64,
}

impl Default for BinarizeOptions {
    fn default() -> Self {
        Self {
            onset: 0.5,
            offset: 0.5,
            min_duration_on: 0.0,
            min_duration_off: 0.0,
            pad_onset: 0.0,
            pad_offset: 0.0,
        }
    }
}

/// Binarises one speaker's score curve into `(start, end)` regions in seconds, sorted.
/// NaN scores count as below both thresholds.
pub fn binarize_scores(
    scores: &[f32],
    frame_step: f64,
    options: &BinarizeOptions,
) -> Vec<(f64, f64)> {
    let mut raw = Vec::new();
    let mut start: Option<usize> = None;
    for (frame, &score) in scores.iter().enumerate() {
        match start {
            Some(first) if score < options.offset || score.is_nan() => {
                raw.push((first, frame));
                start = None;
            }
            None if score > options.onset => start = Some(frame),
            _ => {}
        }
    }
    if let Some(first) = start {
        raw.push((first, scores.len()));
    }

    let mut regions: Vec<(f64, f64)> = Vec::with_capacity(raw.len());
    for (first, last) in raw {
        let begin = (first as f64 * frame_step - options.pad_onset).max(0.0);
        let end = last as f64 * frame_step + options.pad_offset;
        match regions.last_mut() {
            Some(previous)
                if begin - previous.1 < options.min_duration_off || begin <= previous.1 =>
            {
                previous.1 = previous.1.max(end);
            }
            _ => regions.push((begin, end)),
        }
    }
    regions.retain(|&(begin, end)| end - begin >= options.min_duration_on);
    regions
}

/// Binarises every speaker of a [`Timeline`] into turns sorted by start (then speaker, end).
pub fn binarize(timeline: &Timeline, options: &BinarizeOptions) -> Vec<Turn> {
    let mut turns = Vec::new();
    for speaker in 0..timeline.num_speakers {
        let scores = timeline.speaker_scores(speaker);
        for (start, end) in binarize_scores(&scores, timeline.frame_step, options) {
            turns.push(Turn {
                start,
                end,
                speaker,
            });
        }
    }
    sort_turns(&mut turns);
    turns
}

/// A turn from its fields, for the tests of the modules that read turns.
#[cfg(test)]
pub(crate) fn turn(start: f64, end: f64, speaker: usize) -> Turn {
    Turn {
        start,
        end,
        speaker,
    }
}

/// Sorts turns by start, then speaker, then end.
pub fn sort_turns(turns: &mut [Turn]) {
    turns.sort_by(|a, b| {
        a.start
            .total_cmp(&b.start)
            .then(a.speaker.cmp(&b.speaker))
            .then(a.end.total_cmp(&b.end))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(pattern: &[(f32, usize)]) -> Vec<f32> {
        pattern
            .iter()
            .flat_map(|&(value, n)| std::iter::repeat_n(value, n))
            .collect()
    }

    #[test]
    fn hysteresis_uses_onset_to_start_and_offset_to_end() {
        // Frame step 0.1 s. The dip to 0.4 stays above offset 0.3, so the region is not split;
        // 0.6 never reaches onset 0.7, so the second bump is ignored.
        let scores = curve(&[
            (0.0, 5),
            (0.8, 5),
            (0.4, 5),
            (0.8, 5),
            (0.2, 5),
            (0.6, 5),
            (0.0, 5),
        ]);
        let options = BinarizeOptions {
            onset: 0.7,
            offset: 0.3,
            ..BinarizeOptions::default()
        };
        let regions = binarize_scores(&scores, 0.1, &options);
        assert_eq!(regions.len(), 1);
        assert!((regions[0].0 - 0.5).abs() < 1e-9 && (regions[0].1 - 2.0).abs() < 1e-9);

        // With onset = offset = 0.5, the dip splits the region and the 0.6 bump counts.
        let regions = binarize_scores(&scores, 0.1, &BinarizeOptions::default());
        let expected = [(0.5, 1.0), (1.5, 2.0), (2.5, 3.0)];
        assert_eq!(regions.len(), expected.len(), "{regions:?}");
        for (got, want) in regions.iter().zip(expected) {
            assert!((got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9);
        }
    }

    #[test]
    fn min_durations_fill_gaps_then_drop_short_regions() {
        // Frame step 1 s: on [2,5), gap 1 s, on [6,9), gap 4 s, on [13,14) (1 s long).
        let scores = curve(&[
            (0.0, 2),
            (1.0, 3),
            (0.0, 1),
            (1.0, 3),
            (0.0, 4),
            (1.0, 1),
            (0.0, 2),
        ]);
        let options = BinarizeOptions {
            min_duration_off: 2.0,
            min_duration_on: 1.5,
            ..BinarizeOptions::default()
        };
        assert_eq!(binarize_scores(&scores, 1.0, &options), vec![(2.0, 9.0)]);

        // Without the minimums all three regions stay.
        assert_eq!(
            binarize_scores(&scores, 1.0, &BinarizeOptions::default()),
            vec![(2.0, 5.0), (6.0, 9.0), (13.0, 14.0)]
        );
    }

    #[test]
    fn padding_extends_clamps_and_merges() {
        let scores = curve(&[(1.0, 2), (0.0, 2), (1.0, 2), (0.0, 4)]);
        let options = BinarizeOptions {
            pad_onset: 0.5,
            pad_offset: 0.5,
            ..BinarizeOptions::default()
        };
        // [0,2) and [4,6) padded to [0,2.5) and [3.5,6.5): still apart.
        assert_eq!(
            binarize_scores(&scores, 1.0, &options),
            vec![(0.0, 2.5), (3.5, 6.5)]
        );
        let options = BinarizeOptions {
            pad_onset: 1.0,
            pad_offset: 1.0,
            ..BinarizeOptions::default()
        };
        assert_eq!(binarize_scores(&scores, 1.0, &options), vec![(0.0, 7.0)]);
    }

    #[test]
    fn timeline_turns_are_sorted_and_keep_overlap() {
        let timeline = Timeline {
            frame_step: 1.0,
            num_speakers: 2,
            // speaker 0 on frames 0..3, speaker 1 on frames 2..5.
            scores: vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            count: vec![1, 1, 2, 1, 1],
        };
        let turns = binarize(&timeline, &BinarizeOptions::default());
        assert_eq!(
            turns,
            vec![
                Turn {
                    start: 0.0,
                    end: 3.0,
                    speaker: 0
                },
                Turn {
                    start: 2.0,
                    end: 5.0,
                    speaker: 1
                },
            ]
        );
    }
}
