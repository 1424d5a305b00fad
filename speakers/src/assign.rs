//! Speakers attached to transcript segments by time overlap.
//!
//! Rule: a segment gets the speaker whose turns overlap it the longest in total (ties to the
//! lower speaker id). A segment that overlaps no turn gets the speaker of the nearest turn if
//! that turn is at most `tolerance` seconds away ([`NEAREST_TURN_TOLERANCE`] = 0.5 s in
//! [`label_segments`]; ties to the earlier turn in the slice), otherwise `None`.

use crate::binarize::Turn;

/// Largest gap (seconds) between a segment and the nearest turn for [`label_segments`] to still
/// use that turn's speaker when nothing overlaps.
pub const NEAREST_TURN_TOLERANCE: f64 = 0.5;

/// Labels each `(start, end)` segment with [`NEAREST_TURN_TOLERANCE`]; see the module docs.
pub fn label_segments(segments: &[(f64, f64)], turns: &[Turn]) -> Vec<Option<usize>> {
    label_segments_with_tolerance(segments, turns, NEAREST_TURN_TOLERANCE)
}

/// Labels each `(start, end)` segment; `tolerance` of 0 disables the nearest-turn fallback
/// (except for turns touching the segment).
pub fn label_segments_with_tolerance(
    segments: &[(f64, f64)],
    turns: &[Turn],
    tolerance: f64,
) -> Vec<Option<usize>> {
    let num_speakers = turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0);
    let mut overlap = vec![0.0f64; num_speakers];
    segments
        .iter()
        .map(|&(start, end)| {
            overlap.fill(0.0);
            for turn in turns {
                let shared = end.min(turn.end) - start.max(turn.start);
                if shared > 0.0 {
                    overlap[turn.speaker] += shared;
                }
            }
            let mut best: Option<(usize, f64)> = None;
            for (speaker, &total) in overlap.iter().enumerate() {
                if total > 0.0 && best.is_none_or(|(_, b)| total > b) {
                    best = Some((speaker, total));
                }
            }
            if let Some((speaker, _)) = best {
                return Some(speaker);
            }
            let mut nearest: Option<(usize, f64)> = None;
            for turn in turns {
                let gap = (turn.start - end).max(start - turn.end).max(0.0);
                if gap <= tolerance && nearest.is_none_or(|(_, g)| gap < g) {
                    nearest = Some((turn.speaker, gap));
                }
            }
            nearest.map(|(speaker, _)| speaker)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start: f64, end: f64, speaker: usize) -> Turn {
        Turn {
            start,
            end,
            speaker,
        }
    }

    #[test]
    fn segments_get_the_speaker_with_the_most_overlap() {
        let turns = [
            turn(0.0, 4.0, 0),
            turn(3.0, 6.0, 1),
            turn(6.5, 7.0, 0),
            turn(7.0, 9.0, 1),
            turn(20.0, 25.0, 2),
        ];
        let segments = [
            (0.0, 3.5),   // 0: 3.5 s of speaker 0, 0.5 s of speaker 1
            (3.5, 6.0),   // 1: 0.5 s vs 2.5 s
            (6.0, 8.0),   // 1: speaker 0 has 0.5 s, speaker 1 has 1 s
            (9.3, 10.0),  // no overlap, turn ends 0.3 s before: speaker 1
            (12.0, 13.0), // nothing within 0.5 s
            (19.6, 19.9), // 0.1 s before speaker 2
        ];
        assert_eq!(
            label_segments(&segments, &turns),
            vec![Some(0), Some(1), Some(1), Some(1), None, Some(2)]
        );
        assert_eq!(
            label_segments_with_tolerance(&segments, &turns, 0.0),
            vec![Some(0), Some(1), Some(1), None, None, None]
        );
    }

    #[test]
    fn overlap_sums_over_turns_and_ties_go_to_lower_id() {
        // Speaker 1 has two short pieces summing to more than speaker 0's single piece.
        let turns = [turn(0.0, 1.5, 0), turn(1.5, 2.5, 1), turn(3.0, 4.0, 1)];
        assert_eq!(label_segments(&[(0.0, 4.0)], &turns), vec![Some(1)]);
        let turns = [turn(0.0, 1.0, 3), turn(1.0, 2.0, 2)];
        assert_eq!(label_segments(&[(0.0, 2.0)], &turns), vec![Some(2)]);
        assert_eq!(label_segments(&[(0.0, 2.0)], &[]), vec![None]);
    }
}
