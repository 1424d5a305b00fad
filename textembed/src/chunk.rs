//! Transcript chunking for search: a transcript's words cut into overlapping windows of a fixed
//! number of words, each with its time span and the speakers who talk during it.
//!
//! Pure functions, no models: [`chunk_transcript`] takes the transcript segments and the
//! diarization turns and returns [`Chunk`]s ready to embed and index.

use crate::error::TextEmbedError;

/// How [`chunk_transcript`] cuts windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Words per chunk. Default 200 (about 80 s of speech; all-MiniLM-L6-v2 reads 256 word
    /// pieces, so a 200-word chunk is mostly seen whole).
    pub words: usize,
    /// Words shared by consecutive chunks; must be smaller than `words`. Default 40.
    pub overlap: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self {
            words: 200,
            overlap: 40,
        }
    }
}

impl ChunkOptions {
    /// `invalid_options` unless `0 < words` and `overlap < words`.
    pub fn validate(&self) -> Result<(), TextEmbedError> {
        if self.words == 0 {
            return Err(TextEmbedError::InvalidOptions(
                "chunk words must be at least 1".into(),
            ));
        }
        if self.overlap >= self.words {
            return Err(TextEmbedError::InvalidOptions(format!(
                "chunk overlap ({}) must be smaller than chunk words ({})",
                self.overlap, self.words
            )));
        }
        Ok(())
    }
}

/// A transcript segment: text said between two times (seconds from the start of the audio).
#[derive(Debug, Clone, PartialEq)]
pub struct TimedText {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

/// A diarization turn: `speaker` talks between two times.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub start_s: f64,
    pub end_s: f64,
    pub speaker: String,
}

/// One window of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Position in the transcript, from 0.
    pub seq: u32,
    /// Start of the first word.
    pub start_s: f64,
    /// End of the last word.
    pub end_s: f64,
    /// Speakers of the turns overlapping `[start_s, end_s]`, by their first turn's start,
    /// without repeats.
    pub speakers: Vec<String>,
    /// The words, joined by single spaces.
    pub text: String,
}

/// A word with its interpolated time span.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Word<'a> {
    text: &'a str,
    start_s: f64,
    end_s: f64,
}

/// The words of `segments` (ordered by start time, stable), each given an equal share of its
/// segment's duration in word order. Empty or whitespace segments give none.
fn timed_words(segments: &[TimedText]) -> Vec<Word<'_>> {
    let mut ordered: Vec<&TimedText> = segments.iter().collect();
    ordered.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let mut out = Vec::new();
    for seg in ordered {
        let words: Vec<&str> = seg.text.split_whitespace().collect();
        let n = words.len() as f64;
        let dur = (seg.end_s - seg.start_s).max(0.0);
        for (i, text) in words.into_iter().enumerate() {
            out.push(Word {
                text,
                start_s: seg.start_s + dur * i as f64 / n,
                end_s: seg.start_s + dur * (i + 1) as f64 / n,
            });
        }
    }
    out
}

/// Cuts the transcript into windows of `opts.words` words advancing by
/// `opts.words - opts.overlap`. The last window is the first that reaches the last word, so no
/// chunk is made only of words the previous one already holds; a transcript shorter than one
/// window gives one chunk, an empty one none. Fails only on invalid options.
pub fn chunk_transcript(
    segments: &[TimedText],
    turns: &[Turn],
    opts: &ChunkOptions,
) -> Result<Vec<Chunk>, TextEmbedError> {
    opts.validate()?;
    let words = timed_words(segments);
    let step = opts.words - opts.overlap;
    let mut turns: Vec<&Turn> = turns.iter().collect();
    turns.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < words.len() {
        let end = (start + opts.words).min(words.len());
        let window = &words[start..end];
        let (t0, t1) = (window[0].start_s, window[window.len() - 1].end_s);
        let mut speakers: Vec<String> = Vec::new();
        for t in &turns {
            if t.start_s < t1 && t.end_s > t0 && !speakers.contains(&t.speaker) {
                speakers.push(t.speaker.clone());
            }
        }
        chunks.push(Chunk {
            seq: chunks.len() as u32,
            start_s: t0,
            end_s: t1,
            speakers,
            text: window.iter().map(|w| w.text).collect::<Vec<_>>().join(" "),
        });
        if end == words.len() {
            break;
        }
        start += step;
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxfleet_errors::Classified;

    fn seg(start_s: f64, end_s: f64, text: &str) -> TimedText {
        TimedText {
            start_s,
            end_s,
            text: text.into(),
        }
    }

    fn turn(start_s: f64, end_s: f64, speaker: &str) -> Turn {
        Turn {
            start_s,
            end_s,
            speaker: speaker.into(),
        }
    }

    /// `n` words `w0 … w{n-1}` in segments of 10 words lasting 4 s each, back to back.
    fn numbered(n: usize) -> Vec<TimedText> {
        (0..n.div_ceil(10))
            .map(|s| {
                let words: Vec<String> = (s * 10..((s + 1) * 10).min(n))
                    .map(|i| format!("w{i}"))
                    .collect();
                seg(s as f64 * 4.0, s as f64 * 4.0 + 4.0, &words.join(" "))
            })
            .collect()
    }

    fn indices(c: &Chunk) -> Vec<usize> {
        c.text.split(' ').map(|w| w[1..].parse().unwrap()).collect()
    }

    #[test]
    fn thousand_words_make_six_chunks_sharing_forty_words() {
        let segs = numbered(1000);
        let chunks = chunk_transcript(&segs, &[], &ChunkOptions::default()).unwrap();
        let firsts: Vec<usize> = chunks.iter().map(|c| indices(c)[0]).collect();
        assert_eq!(firsts, [0, 160, 320, 480, 640, 800]);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.seq as usize, i);
            let idx = indices(c);
            assert_eq!(idx.len(), 200);
            assert_eq!(idx, (idx[0]..idx[0] + 200).collect::<Vec<_>>());
        }
        assert_eq!(*indices(&chunks[5]).last().unwrap(), 999);
        for pair in chunks.windows(2) {
            let (a, b) = (indices(&pair[0]), indices(&pair[1]));
            let shared = a.iter().filter(|i| b.contains(i)).count();
            assert_eq!(shared, 40);
        }
    }

    #[test]
    fn times_are_monotone_and_inside_the_segments() {
        let segs = numbered(1000);
        let chunks = chunk_transcript(&segs, &[], &ChunkOptions::default()).unwrap();
        for c in &chunks {
            assert!(c.start_s < c.end_s, "{c:?}");
            let first = indices(c)[0];
            let last = *indices(c).last().unwrap();
            let (s0, s1) = (&segs[first / 10], &segs[last / 10]);
            assert!(c.start_s >= s0.start_s && c.start_s < s0.end_s);
            assert!(c.end_s > s1.start_s && c.end_s <= s1.end_s);
            // Word i of a 10-word, 4 s segment starts at 0.4 s × i.
            assert!((c.start_s - first as f64 * 0.4).abs() < 1e-9);
            assert!((c.end_s - (last + 1) as f64 * 0.4).abs() < 1e-9);
        }
        for pair in chunks.windows(2) {
            assert!(pair[0].start_s < pair[1].start_s);
            assert!(pair[0].end_s < pair[1].end_s);
            assert!(
                pair[1].start_s < pair[0].end_s,
                "consecutive chunks overlap"
            );
        }
        assert_eq!(chunks[0].start_s, 0.0);
        assert!((chunks[5].end_s - 400.0).abs() < 1e-9);
    }

    #[test]
    fn tail_rule() {
        let opts = ChunkOptions::default();
        // The window at 800 reaches word 999: nothing after it.
        assert_eq!(
            chunk_transcript(&numbered(1000), &[], &opts).unwrap().len(),
            6
        );
        // 10 words past that window: one more chunk of 50 (40 shared + 10 new).
        let c = chunk_transcript(&numbered(1010), &[], &opts).unwrap();
        assert_eq!(c.len(), 7);
        assert_eq!(indices(&c[6]), (960..1010).collect::<Vec<_>>());
        // Exactly one window, or less: one chunk.
        assert_eq!(
            chunk_transcript(&numbered(200), &[], &opts).unwrap().len(),
            1
        );
        let short = chunk_transcript(&numbered(7), &[], &opts).unwrap();
        assert_eq!(short.len(), 1);
        assert_eq!(short[0].text, "w0 w1 w2 w3 w4 w5 w6");
        // 201 words: the second window holds the one new word plus the overlap.
        let c = chunk_transcript(&numbered(201), &[], &opts).unwrap();
        assert_eq!(indices(&c[1]), (160..201).collect::<Vec<_>>());
    }

    #[test]
    fn speakers_of_a_planted_two_speaker_transcript() {
        // Alice talks 0–100 s, Bob 100–200 s, Alice again 200–400 s; 1,000 words over 400 s.
        let turns = [
            turn(200.0, 400.0, "alice"),
            turn(0.0, 100.0, "alice"),
            turn(100.0, 200.0, "bob"),
        ];
        let chunks = chunk_transcript(&numbered(1000), &turns, &ChunkOptions::default()).unwrap();
        let spans: Vec<(f64, f64)> = chunks.iter().map(|c| (c.start_s, c.end_s)).collect();
        assert_eq!(
            spans,
            [
                (0.0, 80.0),
                (64.0, 144.0),
                (128.0, 208.0),
                (192.0, 272.0),
                (256.0, 336.0),
                (320.0, 400.0)
            ]
        );
        let speakers: Vec<Vec<&str>> = chunks
            .iter()
            .map(|c| c.speakers.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            speakers,
            [
                vec!["alice"],
                vec!["alice", "bob"],
                vec!["bob", "alice"],
                vec!["bob", "alice"],
                vec!["alice"],
                vec!["alice"],
            ]
        );
    }

    #[test]
    fn empty_and_whitespace_segments() {
        let opts = ChunkOptions::default();
        assert!(chunk_transcript(&[], &[], &opts).unwrap().is_empty());
        let blank = [seg(0.0, 2.0, ""), seg(2.0, 3.0, "  \n\t ")];
        assert!(chunk_transcript(&blank, &[], &opts).unwrap().is_empty());
        let mixed = [
            seg(0.0, 2.0, "hello  there"),
            seg(2.0, 3.0, "   "),
            seg(3.0, 4.0, "general\tkenobi"),
        ];
        let c = chunk_transcript(&mixed, &[turn(0.0, 4.0, "obi")], &opts).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text, "hello there general kenobi");
        assert_eq!((c[0].start_s, c[0].end_s), (0.0, 4.0));
        assert_eq!(c[0].speakers, ["obi"]);
    }

    #[test]
    fn options_are_validated() {
        let bad = |words, overlap| {
            let e =
                chunk_transcript(&numbered(10), &[], &ChunkOptions { words, overlap }).unwrap_err();
            assert_eq!(e.code(), "invalid_options");
        };
        bad(200, 200);
        bad(200, 300);
        bad(0, 0);
        let ok = ChunkOptions {
            words: 3,
            overlap: 0,
        };
        let c = chunk_transcript(&numbered(10), &[], &ok).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[3].text, "w9");
    }
}
