//! Word timestamps: a window's text tokens aligned with its audio by CTranslate2 (dynamic time
//! warping over the decoder's cross-attention alignment heads: `Whisper::align`), grouped into
//! words and handed back to the window's segments. The rules are those of faster-whisper's
//! `word_timestamps` (from openai-whisper's `timing.py`): split at spaces (or between characters
//! in languages written without them), punctuation joined to its word, over-long words clipped
//! at sentence ends and after pauses, segment edges moved to their first and last words.
//!
//! Written here because no crate groups Whisper's byte-level tokens into timed words; the
//! alignment itself is CTranslate2's.

use crate::Segment;
use crate::Word;

/// Alignment frames per second: the encoder's positions (two mel frames each).
const FRAMES_PER_S: f64 = 50.0;
/// Punctuation that joins the word after it.
const PREPENDED: &str = "\"'“¿([{-";
/// Punctuation that joins the word before it.
const APPENDED: &str = "\"'.。,，!！?？:：”)]}、";
const SENTENCE_END: &str = ".。!！?？";
/// Languages written without spaces between words: one word per character.
const UNSPACED: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];

/// A word of one window, in seconds from the window's start, with how many tokens it spans.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimedWord {
    pub word: String,
    pub tokens: usize,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Groups text tokens into pieces that decode to whole characters (a character can take
/// several byte-level tokens): (text, token count). `decode` turns tokens into text; a piece
/// whose text still holds U+FFFD takes the next token too, up to 4 tokens.
pub(crate) fn unicode_pieces(
    tokens: &[u32],
    decode: &dyn Fn(&[u32]) -> String,
) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    for i in 0..tokens.len() {
        let text = decode(&tokens[from..=i]);
        if !text.contains('\u{FFFD}') || i + 1 - from >= 4 || i + 1 == tokens.len() {
            out.push((text, i + 1 - from));
            from = i + 1;
        }
    }
    out
}

fn is_punctuation(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_punctuation())
}

/// Pieces into words (text, token count): a piece that starts with a space, or is
/// punctuation, starts a word; in `language`s written without spaces, every piece is a word.
pub(crate) fn group_words(pieces: Vec<(String, usize)>, language: &str) -> Vec<(String, usize)> {
    if UNSPACED.contains(&language) {
        return pieces;
    }
    let mut out: Vec<(String, usize)> = Vec::new();
    for (text, n) in pieces {
        let starts_word = text.starts_with(' ') || is_punctuation(text.trim());
        match out.last_mut() {
            Some(last) if !starts_word => {
                last.0.push_str(&text);
                last.1 += n;
            }
            _ => out.push((text, n)),
        }
    }
    out
}

/// Times each word from the alignment (`(text token index, frame index)` pairs over the
/// window's text tokens and the end-of-text token after them) and the tokens' probabilities.
pub(crate) fn time_words(
    words: Vec<(String, usize)>,
    alignment: &[(i64, i64)],
    token_probs: &[f32],
) -> Vec<TimedWord> {
    // The frame at which each token starts: where the path first reaches it.
    let mut starts: Vec<f64> = Vec::new();
    let mut last_token = None;
    for &(token, frame) in alignment {
        if last_token != Some(token) {
            starts.push(frame.max(0) as f64 / FRAMES_PER_S);
            last_token = Some(token);
        }
    }
    let at = |i: usize| -> f64 { starts.get(i).or(starts.last()).copied().unwrap_or_default() };
    let mut out = Vec::with_capacity(words.len());
    let mut from = 0;
    for (word, n) in words {
        let to = from + n;
        let probs = token_probs
            .get(from..to.min(token_probs.len()))
            .unwrap_or(&[]);
        let probability = if probs.is_empty() {
            0.0
        } else {
            probs.iter().sum::<f32>() / probs.len() as f32
        };
        out.push(TimedWord {
            word,
            tokens: n,
            start: at(from),
            end: at(to),
            probability,
        });
        from = to;
    }
    out
}

/// The median duration of the words that have one, at most 0.7 s.
pub(crate) fn median_duration(words: &[TimedWord]) -> f64 {
    let mut d: Vec<f64> = words
        .iter()
        .map(|w| w.end - w.start)
        .filter(|&d| d > 0.0)
        .collect();
    if d.is_empty() {
        return 0.0;
    }
    d.sort_by(f64::total_cmp);
    let n = d.len();
    let median = if n % 2 == 1 {
        d[n / 2]
    } else {
        (d[n / 2 - 1] + d[n / 2]) / 2.0
    };
    median.min(0.7)
}

/// A sentence mark standing on its own, or a word right after one, longer than `max`: the
/// alignment tends to stretch them over the pause between sentences; clip them to `max`.
fn clip_at_sentence_ends(words: &mut [TimedWord], max: f64) {
    let is_end = |w: &str| w.chars().count() == 1 && SENTENCE_END.contains(w);
    for i in 1..words.len() {
        if words[i].end - words[i].start > max {
            if is_end(&words[i].word) {
                words[i].end = words[i].start + max;
            } else if is_end(&words[i - 1].word) {
                words[i].start = words[i].end - max;
            }
        }
    }
}

/// Leading punctuation joins the word after it, trailing punctuation the word before; the
/// emptied entry stays (with no text) so token counts still add up.
fn merge_punctuation(words: &mut [TimedWord]) {
    // Prepended marks, right to left.
    for i in (0..words.len().saturating_sub(1)).rev() {
        let w = &words[i].word;
        if w.starts_with(' ') && PREPENDED.contains(w.trim()) && !w.trim().is_empty() {
            let moved = std::mem::take(&mut words[i].word);
            let n = std::mem::take(&mut words[i].tokens);
            words[i + 1].word = moved + &words[i + 1].word;
            words[i + 1].tokens += n;
        }
    }
    // Appended marks, left to right.
    let mut i = 0;
    for j in 1..words.len() {
        let prev = &words[i].word;
        let w = &words[j].word;
        if !w.is_empty() && !prev.ends_with(' ') && APPENDED.contains(w.as_str()) {
            let moved = std::mem::take(&mut words[j].word);
            let n = std::mem::take(&mut words[j].tokens);
            words[i].word.push_str(&moved);
            words[i].tokens += n;
        } else {
            i = j;
        }
    }
}

/// Hands a window's timed words to its segments: `segment_tokens[k]` is how many text tokens
/// segment `k` has (the words were made from those tokens, in order). Times become absolute
/// with `offset`; a segment's start and end move to its first and last word unless that word
/// is implausibly long. `last_speech`: the end of the speech before this window.
pub(crate) fn assign(
    mut words: Vec<TimedWord>,
    segment_tokens: &[usize],
    segments: &mut [Segment],
    offset: f64,
    last_speech: &mut f64,
) {
    let median = median_duration(&words);
    let max = median * 2.0;
    if median > 0.0 {
        clip_at_sentence_ends(&mut words, max);
    }
    merge_punctuation(&mut words);
    let mut words = words.into_iter().peekable();
    for (segment, &n) in segments.iter_mut().zip(segment_tokens) {
        let mut taken = 0;
        let mut out: Vec<Word> = Vec::new();
        while taken < n {
            let Some(w) = words.next() else { break };
            taken += w.tokens;
            if !w.word.is_empty() {
                out.push(Word {
                    word: w.word,
                    start: round2(offset + w.start),
                    end: round2(offset + w.end),
                    probability: w.probability,
                });
            }
        }
        if let Some(first) = out.first().cloned() {
            // The first word after a pause: the alignment tends to start it early.
            if first.end - *last_speech > median * 4.0
                && (first.end - first.start > max
                    || out.get(1).is_some_and(|w| w.end - first.start > max * 2.0))
            {
                if out.len() > 1 && out[1].end - out[1].start > max {
                    let boundary = (out[1].end / 2.0).max(out[1].end - max);
                    out[0].end = boundary;
                    out[1].start = boundary;
                }
                out[0].start = (out[0].end - max).max(0.0);
            }
            if segment.start < out[0].end && segment.start - 0.5 > out[0].start {
                out[0].start = (out[0].end - median).min(segment.start).max(0.0);
                // That start can still fall before the segment's (a word shorter than the
                // median): the segment then starts with its word, so it holds all its words.
                segment.start = segment.start.min(out[0].start);
            } else {
                segment.start = out[0].start;
            }
            let last = out.len() - 1;
            if segment.end > out[last].start && segment.end + 0.5 < out[last].end {
                out[last].end = (out[last].start + median).max(segment.end);
                segment.end = segment.end.max(out[last].end);
            } else {
                segment.end = out[last].end;
            }
            *last_speech = segment.end;
        }
        segment.words = out;
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-token word.
    fn w(word: &str, start: f64, end: f64) -> TimedWord {
        TimedWord {
            word: word.into(),
            tokens: 1,
            start,
            end,
            probability: 0.9,
        }
    }

    fn seg(start: f64, end: f64, text: &str) -> Segment {
        Segment {
            start,
            end,
            text: text.into(),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
            words: Vec::new(),
        }
    }

    #[test]
    fn pieces_wait_for_whole_characters() {
        // Token 1 and 2 together are one character; each alone is not.
        let decode = |t: &[u32]| match t {
            [1] | [2] => "\u{FFFD}".to_owned(),
            [1, 2] => "é".to_owned(),
            t => t.iter().map(|i| format!(" w{i}")).collect(),
        };
        assert_eq!(
            unicode_pieces(&[5, 1, 2, 6], &decode),
            vec![
                (" w5".to_owned(), 1),
                ("é".to_owned(), 2),
                (" w6".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn words_split_at_spaces_and_punctuation() {
        let pieces = [" Hello", ",", " wor", "ld", "."]
            .map(|s| (s.to_owned(), 1))
            .to_vec();
        let w = group_words(pieces.clone(), "en");
        let texts: Vec<&str> = w.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, [" Hello", ",", " world", "."]);
        assert_eq!(w[2].1, 2);
        assert_eq!(group_words(pieces, "ja").len(), 5);
    }

    #[test]
    fn times_come_from_the_first_frame_of_each_token() {
        // Tokens 0, 1, 2 (2 = end of text) starting at frames 10, 25, 40.
        let alignment = [(0, 10), (0, 11), (1, 25), (1, 30), (2, 40), (2, 41)];
        let words = vec![(" a".to_owned(), 1), (" b".to_owned(), 1)];
        let t = time_words(words, &alignment, &[0.9, 0.5]);
        assert_eq!((t[0].start, t[0].end), (0.2, 0.5));
        assert_eq!((t[1].start, t[1].end), (0.5, 0.8));
        assert_eq!(t[1].probability, 0.5);
    }

    #[test]
    fn punctuation_joins_its_word_and_words_reach_their_segments() {
        let words = vec![
            w(" \"", 0.0, 0.1),
            w("Hi", 0.1, 0.4),
            w(".", 0.4, 0.5),
            w(" Bye", 2.0, 2.3),
            w(" now", 2.3, 2.6),
        ];
        let mut segments = vec![seg(10.0, 10.6, " \"Hi."), seg(12.0, 12.6, " Bye now")];
        let mut last = 0.0;
        assign(words, &[3, 2], &mut segments, 10.0, &mut last);
        let texts: Vec<&str> = segments[0].words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, [" \"Hi."]);
        assert_eq!(segments[1].words.len(), 2);
        assert_eq!(segments[1].words[1].end, 12.6);
        // Segment edges follow their words.
        assert_eq!(segments[0].start, segments[0].words[0].start);
        assert_eq!(last, segments[1].end);
    }

    /// The case `word_timestamps_fall_on_the_words` met: the first word starts well before its
    /// segment and is shorter than the median, so "prefer the segment's start" (Whisper's rule)
    /// still leaves it before the segment; the segment then starts with it.
    #[test]
    fn a_segment_holds_its_first_and_last_words() {
        let words = vec![
            w(" a", 0.0, 1.2),
            w(" b", 1.2, 1.6),
            w(" c", 1.6, 2.0),
            w(" d", 2.0, 2.4),
            w(" e", 2.4, 2.8),
        ];
        // The segment starts at 0.9, inside " a" and over 0.5 s after its start: " a" is moved
        // to min(1.2 - median 0.4, 0.9) = 0.8, still before 0.9.
        let mut segments = vec![seg(0.9, 2.8, " a b c d e")];
        let mut last = 0.0;
        assign(words, &[5], &mut segments, 0.0, &mut last);
        let s = &segments[0];
        assert_eq!(s.words.len(), 5);
        assert!(s.start <= s.words[0].start, "{s:?}");
        assert!(s.end >= s.words[4].end, "{s:?}");
    }

    #[test]
    fn a_sentence_mark_stretched_over_a_pause_is_clipped() {
        let mut words = vec![
            w(" one", 0.0, 0.3),
            w(" two", 0.3, 0.6),
            w(".", 0.6, 3.0),
            w(" three", 3.0, 3.3),
        ];
        let max = 2.0 * median_duration(&words);
        clip_at_sentence_ends(&mut words, max);
        assert!((words[2].end - 1.2).abs() < 1e-9, "{words:?}");
    }
}
