//! Speakers attached to transcript segments by time overlap.
//!
//! Rule: a segment gets the speaker whose turns overlap it the longest in total (ties to the
//! lower speaker id). A segment that overlaps no turn gets the speaker of the nearest turn if
//! that turn is at most `tolerance` seconds away ([`NEAREST_TURN_TOLERANCE`] = 0.5 s in
//! [`label_segments`]; ties to the earlier turn in the slice), otherwise `None`.
//!
//! [`match_known`] names diarized speakers after known speakers' reference voiceprints.
//!
//! [`split_at_speaker_changes`] first cuts a segment where the speaker changes inside it, so
//! the words at a turn change go to the person who said them (see its docs).

use crate::binarize::Turn;
use crate::cluster::cosine_similarity;

/// Largest gap (seconds) between a segment and the nearest turn for [`label_segments`] to still
/// use that turn's speaker when nothing overlaps.
pub const NEAREST_TURN_TOLERANCE: f64 = 0.5;

/// Cosine similarity a known speaker's reference must reach with a diarized speaker's
/// voiceprint (same model, CAM++) to name it, on wideband audio. Rechecked on the real voices
/// of the diarization development set (`voxfleet-bench-diarize --split test --part real-mix
/// --known`, issue 14): a person's reference from another recording scores 0.84–0.99, and with
/// their own reference withheld no one was named after someone else at any bar from 0.4 up;
/// 0.6 keeps a margin below the right person.
pub const KNOWN_SPEAKER_MIN_SIMILARITY: f32 = 0.6;

/// The same bar on telephone-band audio ([`crate::subsegment::is_narrowband`]). There, other
/// people's references scored 0.38–0.89 (median 0.58): at 0.6, 13 of 20 speakers whose own
/// reference was withheld were named after someone else; at 0.8, 1 of 20, while the right
/// person still scored at least 0.84. Chosen on that same part (the only real voices with
/// known identities), so it is not an unseen-data figure; a wrong name is worse than none.
pub const KNOWN_SPEAKER_MIN_SIMILARITY_NARROWBAND: f32 = 0.8;

/// [`KNOWN_SPEAKER_MIN_SIMILARITY`] or, for telephone-band audio,
/// [`KNOWN_SPEAKER_MIN_SIMILARITY_NARROWBAND`].
pub fn known_speaker_min_similarity(narrowband: bool) -> f32 {
    if narrowband {
        KNOWN_SPEAKER_MIN_SIMILARITY_NARROWBAND
    } else {
        KNOWN_SPEAKER_MIN_SIMILARITY
    }
}

/// Pairs known speakers with diarized speakers, best similarity first, each at most once, at
/// or above `min_similarity`: `(speaker index, name)`, sorted by speaker.
pub fn match_known(
    speakers: &[Vec<f32>],
    known: &[(String, Vec<f32>)],
    min_similarity: f32,
) -> Vec<(usize, String)> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (s, v) in speakers.iter().enumerate() {
        for (k, (_, r)) in known.iter().enumerate() {
            let sim = cosine_similarity(v, r);
            if sim >= min_similarity {
                pairs.push((sim, s, k));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut used_s, mut used_k) = (vec![false; speakers.len()], vec![false; known.len()]);
    let mut out = Vec::new();
    for (_, s, k) in pairs {
        if !used_s[s] && !used_k[k] {
            used_s[s] = true;
            used_k[k] = true;
            out.push((s, known[k].0.clone()));
        }
    }
    out.sort();
    out
}

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

/// Shortest stretch (seconds) of one speaker inside a segment that gets its own piece in
/// [`split_at_speaker_changes`]; shorter ones (a back-channel under someone's sentence, a
/// boundary a few frames off) stay with their neighbours.
pub const MIN_PIECE_S: f64 = 1.0;

/// One piece of a split segment: its time span and the byte range of its words in the
/// segment's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub start: f64,
    pub end: f64,
    pub text: std::ops::Range<usize>,
    /// The piece's words, as indices among the segment's whitespace-separated words.
    pub words: std::ops::Range<usize>,
}

/// Cuts the segment `(start, end, text)` where the speaker changes inside it.
///
/// Over the segment, the speaker at each moment is the one whose turn is active (in overlap,
/// the one active longest over the segment); stretches of one speaker shorter than
/// [`MIN_PIECE_S`] and moments with no one are given to their neighbours. Each remaining
/// stretch becomes a piece. Each word goes to the stretch holding the middle of it; cuts fall
/// between words. A word's time is `word_times[i]` (start, end) for the `i`-th
/// whitespace-separated word when given for every word (word timestamps); otherwise it is
/// estimated from its position in the text, characters being spread evenly over the segment.
/// Pieces that get no words are dropped (their time goes to the piece before). A segment with
/// one speaker, no turns or one word comes back whole.
pub fn split_at_speaker_changes(
    start: f64,
    end: f64,
    text: &str,
    turns: &[Turn],
    word_times: Option<&[(f64, f64)]>,
) -> Vec<Piece> {
    let whole = vec![Piece {
        start,
        end,
        text: 0..text.len(),
        words: 0..text.split_whitespace().count(),
    }];
    if end - start < 2.0 * MIN_PIECE_S {
        return whole;
    }
    // Elementary intervals between every turn boundary inside the segment.
    let mut cuts: Vec<f64> = vec![start, end];
    for t in turns {
        for x in [t.start, t.end] {
            if x > start && x < end {
                cuts.push(x);
            }
        }
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut total = std::collections::HashMap::<usize, f64>::new();
    for t in turns {
        let shared = end.min(t.end) - start.max(t.start);
        if shared > 0.0 {
            *total.entry(t.speaker).or_default() += shared;
        }
    }
    // (start, end, speaker) stretches, consecutive same speakers merged.
    let mut stretches: Vec<(f64, f64, Option<usize>)> = Vec::new();
    for w in cuts.windows(2) {
        let mid = 0.5 * (w[0] + w[1]);
        let who = turns
            .iter()
            .filter(|t| t.start <= mid && mid < t.end)
            .map(|t| t.speaker)
            .max_by(|a, b| total[a].total_cmp(&total[b]).then(b.cmp(a)));
        match stretches.last_mut() {
            Some(last) if last.2 == who => last.1 = w[1],
            _ => stretches.push((w[0], w[1], who)),
        }
    }
    // Silence and short stretches join a neighbour: the shortest first, into the longer side.
    loop {
        let short = stretches
            .iter()
            .enumerate()
            .filter(|(_, s)| s.2.is_none() || s.1 - s.0 < MIN_PIECE_S)
            .min_by(|a, b| (a.1.1 - a.1.0).total_cmp(&(b.1.1 - b.1.0)))
            .map(|(i, _)| i);
        let Some(i) = short else { break };
        if stretches.len() == 1 {
            break;
        }
        let len = |k: usize| stretches[k].1 - stretches[k].0;
        let into = if i == 0 {
            1
        } else if i + 1 == stretches.len() || len(i - 1) >= len(i + 1) {
            i - 1
        } else {
            i + 1
        };
        let (a, b) = (i.min(into), i.max(into));
        let keep = stretches[into].2;
        stretches[a] = (stretches[a].0, stretches[b].1, keep);
        stretches.remove(b);
        // Neighbours that now share a speaker become one.
        let mut k = 0;
        while k + 1 < stretches.len() {
            if stretches[k].2 == stretches[k + 1].2 {
                stretches[k].1 = stretches[k + 1].1;
                stretches.remove(k + 1);
            } else {
                k += 1;
            }
        }
    }
    if stretches.len() < 2 {
        return whole;
    }
    // Words with their byte ranges and estimated middle times.
    let chars = text.chars().count().max(1) as f64;
    let mut words: Vec<(usize, usize, f64)> = Vec::new();
    let mut word: Option<(usize, usize)> = None; // (byte start, char start)
    let ends = text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')));
    for (char_pos, (byte, c)) in ends.enumerate() {
        if c.is_whitespace() {
            if let Some((b0, c0)) = word.take() {
                let mid = (c0 + char_pos) as f64 / 2.0 / chars;
                words.push((b0, byte, start + mid * (end - start)));
            }
        } else if word.is_none() {
            word = Some((byte, char_pos));
        }
    }
    if words.len() < 2 {
        return whole;
    }
    if let Some(times) = word_times.filter(|t| t.len() == words.len()) {
        for (w, &(a, b)) in words.iter_mut().zip(times) {
            w.2 = 0.5 * (a + b);
        }
    }
    let mut pieces: Vec<Piece> = Vec::new();
    let mut w = 0;
    for (k, s) in stretches.iter().enumerate() {
        let last = k + 1 == stretches.len();
        let first_word = w;
        while w < words.len() && (last || words[w].2 < s.1) {
            w += 1;
        }
        if w == first_word {
            if let Some(p) = pieces.last_mut() {
                p.end = s.1;
            }
            continue;
        }
        let piece_start = pieces.last().map_or(start, |p| p.end);
        pieces.push(Piece {
            start: piece_start,
            end: s.1,
            text: words[first_word].0..words[w - 1].1,
            words: first_word..w,
        });
    }
    if pieces.len() < 2 {
        return whole;
    }
    if let Some(p) = pieces.last_mut() {
        p.end = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binarize::turn;

    #[test]
    fn known_speakers_match_best_first_above_the_threshold() {
        let s = [vec![1.0, 0.0], vec![0.0, 1.0], vec![0.7, 0.7]];
        let k = [
            ("Bea".to_owned(), vec![0.1, 1.0]),
            ("Al".to_owned(), vec![1.0, 0.05]),
            ("Cy".to_owned(), vec![-1.0, 0.0]),
        ];
        assert_eq!(
            match_known(&s, &k, 0.6),
            [(0, "Al".to_owned()), (1, "Bea".to_owned())]
        );
        // A higher bar names nobody whose best match is below it.
        assert_eq!(match_known(&s, &k, 0.999), []);
        assert!(match_known(&s, &[], 0.6).is_empty());
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
    fn segments_split_where_the_speaker_changes() {
        // 0–4 s speaker 0, 4–8 s speaker 1; 16 characters a second.
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen ab";
        let turns = [turn(0.0, 4.1, 0), turn(4.1, 8.0, 1)];
        let pieces = split_at_speaker_changes(0.0, 8.0, text, &turns, None);
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert_eq!(pieces[0].start, 0.0);
        assert_eq!(pieces[1].end, 8.0);
        assert_eq!(pieces[0].end, pieces[1].start);
        assert!((pieces[0].end - 4.1).abs() < 1e-9);
        let first = &text[pieces[0].text.clone()];
        let second = &text[pieces[1].text.clone()];
        assert!(
            first.starts_with("one") && first.ends_with("eight"),
            "{first}"
        );
        assert!(
            second.starts_with("nine") && second.ends_with("ab"),
            "{second}"
        );
        let labels = label_segments(
            &pieces.iter().map(|p| (p.start, p.end)).collect::<Vec<_>>(),
            &turns,
        );
        assert_eq!(labels, vec![Some(0), Some(1)]);

        // A back-channel under the sentence (0.4 s) and a short pause do not split it.
        let turns = [turn(0.0, 3.0, 0), turn(3.3, 8.0, 0), turn(5.0, 5.4, 1)];
        assert_eq!(
            split_at_speaker_changes(0.0, 8.0, text, &turns, None).len(),
            1
        );
        // One speaker, no turns, one word, a short segment: whole.
        assert_eq!(
            split_at_speaker_changes(0.0, 8.0, text, &[turn(0.0, 8.0, 2)], None).len(),
            1
        );
        assert_eq!(split_at_speaker_changes(0.0, 8.0, text, &[], None).len(), 1);
        let two = [turn(0.0, 4.0, 0), turn(4.0, 8.0, 1)];
        assert_eq!(
            split_at_speaker_changes(0.0, 8.0, "word", &two, None).len(),
            1
        );
        assert_eq!(
            split_at_speaker_changes(0.0, 1.5, text, &two, None).len(),
            1
        );
        // Three speakers, multi-byte text: cuts on character boundaries.
        let text = "été ça où naïve café déjà vu über straße œuvre fête crème brûlée";
        let three = [turn(0.0, 3.0, 0), turn(3.0, 6.0, 1), turn(6.0, 9.0, 2)];
        let pieces = split_at_speaker_changes(0.0, 9.0, text, &three, None);
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        let joined: Vec<&str> = pieces.iter().map(|p| &text[p.text.clone()]).collect();
        assert_eq!(joined.join(" "), text);
    }

    #[test]
    fn word_times_put_a_word_at_a_speaker_change_with_its_speaker() {
        let text = "one two three four";
        let turns = [turn(0.0, 5.5, 0), turn(5.5, 8.0, 1)];
        // Estimated from the text, "three" falls at 4.4 s: speaker 0's.
        let guessed = split_at_speaker_changes(0.0, 8.0, text, &turns, None);
        assert_eq!(&text[guessed[0].text.clone()], "one two three");
        // Said at 5.6–6.0 s, it is speaker 1's.
        let times = [(0.0, 0.5), (0.5, 1.0), (5.6, 6.0), (6.0, 7.0)];
        let timed = split_at_speaker_changes(0.0, 8.0, text, &turns, Some(&times));
        assert_eq!(&text[timed[0].text.clone()], "one two");
        assert_eq!(&text[timed[1].text.clone()], "three four");
        assert_eq!(
            (timed[0].words.clone(), timed[1].words.clone()),
            (0..2, 2..4)
        );
        // Times that do not match the words one for one are not used.
        let short = split_at_speaker_changes(0.0, 8.0, text, &turns, Some(&times[..3]));
        assert_eq!(&text[short[0].text.clone()], "one two three");
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
