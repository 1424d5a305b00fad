//! Transcript renderings: JSON, plain text, SubRip and WebVTT, with speaker labels once the
//! file is diarized. Shared by the files API and the OpenAI-compatible endpoint.
use serde::{Deserialize, Serialize};
use serde_json::json;
use voxfleet_speakers::{Turn, label_segments, split_at_speaker_changes};
use voxfleet_store::files::{FileRecord, SegmentRow, WordRow};
use voxfleet_store::speakers::{SpeakerRecord, TurnRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Txt,
    Srt,
    Vtt,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Txt => "text/plain; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

/// A transcript with its speakers, as the exports show it.
pub struct Transcript<'a> {
    pub file: &'a FileRecord,
    pub segments: &'a [SegmentRow],
    /// Who speaks in each segment (empty when the file is not diarized).
    pub labels: Vec<Option<String>>,
    pub speakers: &'a [SpeakerRecord],
}

impl Transcript<'_> {
    fn label(&self, i: usize) -> Option<&str> {
        self.labels.get(i).and_then(|l| l.as_deref())
    }
}

/// Who speaks in each segment: the speaker whose turns overlap it most (a segment between
/// turns takes the nearest turn within half a second), as one of that speaker's turns (which
/// carries the speaker's id, label and name). Empty when the file has no speaker turns.
pub fn segment_turns<'t>(
    segments: &[SegmentRow],
    turns: &'t [TurnRow],
) -> Vec<Option<&'t TurnRow>> {
    if turns.is_empty() {
        return Vec::new();
    }
    let (numbered, first) = numbered_turns(turns);
    let spans: Vec<(f64, f64)> = segments.iter().map(|s| (s.start_s, s.end_s)).collect();
    label_segments(&spans, &numbered)
        .into_iter()
        .map(|l| l.map(|i| first[i]))
        .collect()
}

/// The turns with speakers numbered in order of first turn, and each speaker's first turn.
fn numbered_turns(turns: &[TurnRow]) -> (Vec<Turn>, Vec<&TurnRow>) {
    let mut first: Vec<&TurnRow> = Vec::new();
    let numbered = turns
        .iter()
        .map(|t| {
            let speaker = first
                .iter()
                .position(|f| f.speaker_id == t.speaker_id)
                .unwrap_or_else(|| {
                    first.push(t);
                    first.len() - 1
                });
            Turn {
                start: t.start_s,
                end: t.end_s,
                speaker,
            }
        })
        .collect();
    (numbered, first)
}

/// The segments as the exports show them once the file is diarized: a segment in which the
/// speaker changes is cut there ([`split_at_speaker_changes`]: each piece keeps the words
/// said in it), so the text at a turn change goes to the right person. Segments are
/// renumbered from 0; without turns they come back as they are.
pub fn split_at_turns(segments: Vec<SegmentRow>, turns: &[TurnRow]) -> Vec<SegmentRow> {
    if turns.is_empty() {
        return segments;
    }
    let (numbered, _) = numbered_turns(turns);
    let mut out = Vec::with_capacity(segments.len());
    for s in segments {
        // Whisper's words as the text's whitespace-separated words (a word with no leading
        // space, such as "-room" after "full", belongs to the one before), when they match
        // the text one for one.
        let groups = s
            .words
            .as_deref()
            .map(text_words)
            .filter(|g| g.len() == s.text.split_whitespace().count());
        let times: Option<Vec<(f64, f64)>> = match (&groups, &s.words) {
            (Some(g), Some(w)) => Some(
                g.iter()
                    .map(|r| (w[r.start].start, w[r.end - 1].end))
                    .collect(),
            ),
            _ => None,
        };
        let pieces =
            split_at_speaker_changes(s.start_s, s.end_s, &s.text, &numbered, times.as_deref());
        if pieces.len() < 2 {
            out.push(s);
            continue;
        }
        for p in pieces {
            let piece_words = match (&groups, &s.words) {
                (Some(g), Some(all)) => {
                    Some(all[g[p.words.start].start..g[p.words.end - 1].end].to_vec())
                }
                // Words that do not match the text: by their middle.
                (None, Some(all)) => Some(
                    all.iter()
                        .filter(|w| (p.start..p.end).contains(&(0.5 * (w.start + w.end))))
                        .cloned()
                        .collect(),
                ),
                (_, None) => None,
            };
            // With word times, a piece spans its words.
            let (start_s, end_s) = match piece_words.as_deref() {
                Some([first, .., last]) => (first.start, last.end),
                Some([only]) => (only.start, only.end),
                _ => (p.start, p.end),
            };
            out.push(SegmentRow {
                start_s,
                end_s,
                text: s.text[p.text].to_owned(),
                words: piece_words,
                ..s.clone()
            });
        }
    }
    for (i, s) in out.iter_mut().enumerate() {
        s.idx = i32::try_from(i).unwrap_or(i32::MAX);
    }
    out
}

/// Ranges of `words` that make up one whitespace-separated word of their text each: a word
/// that starts with a space (or is the first) opens a range; one that does not joins it.
fn text_words(words: &[WordRow]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        match out.last_mut() {
            Some(r) if !w.word.starts_with(char::is_whitespace) => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Each segment's speaker by name when one is set, else by label (see [`segment_turns`]).
pub fn segment_speakers(segments: &[SegmentRow], turns: &[TurnRow]) -> Vec<Option<String>> {
    segment_turns(segments, turns)
        .into_iter()
        .map(|t| t.map(|t| t.name.clone().unwrap_or_else(|| t.label.clone())))
        .collect()
}

pub fn render(format: Format, t: &Transcript<'_>) -> String {
    let file = t.file;
    match format {
        Format::Json => json!({
            "file_id": file.file.id,
            "language": file.language,
            "model": file.transcript_model,
            "duration_s": file.file.duration_s,
            "text": text(t.segments),
            "segments": t.segments.iter().enumerate().map(|(i, s)| json!({
                "id": s.idx, "start": s.start_s, "end": s.end_s, "text": s.text.trim(),
                "speaker": t.label(i),
                "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob,
                "words": s.words.as_ref().map(|words| words.iter().map(|w| json!({
                    "word": w.word, "start": w.start, "end": w.end,
                    "probability": w.probability, "speaker": t.label(i),
                })).collect::<Vec<_>>()),
            })).collect::<Vec<_>>(),
            "speakers": t.speakers.iter().map(|sp| json!({
                "id": sp.id, "label": sp.label, "name": sp.name, "speech_s": sp.speech_s,
            })).collect::<Vec<_>>(),
        })
        .to_string(),
        Format::Txt if !t.labels.is_empty() => {
            // One paragraph per speaker turn: "SPEAKER_00: text".
            let mut out = String::new();
            let mut current: Option<Option<&str>> = None;
            for (i, s) in t.segments.iter().enumerate() {
                let words = s.text.trim();
                if words.is_empty() {
                    continue;
                }
                let who = t.label(i);
                if current == Some(who) {
                    out.push(' ');
                } else {
                    if current.is_some() {
                        out.push_str("\n\n");
                    }
                    out.push_str(&format!("{}: ", who.unwrap_or("UNKNOWN")));
                    current = Some(who);
                }
                out.push_str(words);
            }
            out.push('\n');
            out
        }
        Format::Txt => {
            let mut out = text(t.segments);
            out.push('\n');
            out
        }
        Format::Srt => srt(t.segments, &t.labels),
        Format::Vtt => vtt(t.segments, &t.labels),
    }
}

/// The segments' text joined with single spaces.
pub fn text(segments: &[SegmentRow]) -> String {
    let parts: Vec<&str> = segments
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect();
    parts.join(" ")
}

/// `HH:MM:SS{sep}mmm`, rounded to the millisecond.
fn timestamp(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

/// Cue text may not contain a blank line (it would end the cue) nor, in VTT, `-->`.
fn cue_text(t: &str) -> String {
    t.trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        .replace("-->", "->")
}

/// SubRip cues; a diarized transcript prefixes each cue with `Speaker: `.
pub fn srt(segments: &[SegmentRow], labels: &[Option<String>]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        let who = match labels.get(i) {
            Some(Some(l)) => format!("{}: ", cue_text(l)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{}\n{} --> {}\n{who}{}\n\n",
            i + 1,
            timestamp(s.start_s, ','),
            timestamp(s.end_s, ','),
            cue_text(&s.text)
        ));
    }
    out
}

/// WebVTT cues; a diarized transcript marks each cue with a voice span (`<v Speaker>`).
pub fn vtt(segments: &[SegmentRow], labels: &[Option<String>]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (i, s) in segments.iter().enumerate() {
        let who = match labels.get(i) {
            Some(Some(l)) => format!("<v {}>", cue_text(l).replace(['<', '>', '&'], "")),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{} --> {}\n{who}{}\n\n",
            timestamp(s.start_s, '.'),
            timestamp(s.end_s, '.'),
            cue_text(&s.text)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(idx: i32, start_s: f64, end_s: f64, text: &str) -> SegmentRow {
        SegmentRow {
            idx,
            start_s,
            end_s,
            text: text.into(),
            avg_logprob: -0.2,
            no_speech_prob: 0.01,
            temperature: 0.0,
            compression_ratio: 1.2,
            language: "en".into(),
            words: None,
        }
    }

    #[test]
    fn timestamps_round_and_roll_over() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(3661.2345, '.'), "01:01:01.235");
        assert_eq!(timestamp(59.9996, ','), "00:01:00,000");
        assert_eq!(timestamp(-1.0, ','), "00:00:00,000");
    }

    #[test]
    fn srt_and_vtt_cues() {
        let s = [
            seg(0, 0.0, 2.5, " Hello there."),
            seg(1, 2.5, 61.0, " A --> B\n\nC "),
        ];
        assert_eq!(
            srt(&s, &[]),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n\
             2\n00:00:02,500 --> 00:01:01,000\nA -> B\nC\n\n"
        );
        assert_eq!(
            vtt(&s, &[]),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n\
             00:00:02.500 --> 00:01:01.000\nA -> B\nC\n\n"
        );
        assert_eq!(text(&s), "Hello there. A --> B\n\nC");
        assert_eq!(srt(&[], &[]), "");
        assert_eq!(vtt(&[], &[]), "WEBVTT\n\n");
        let who = [Some("Ann".to_owned()), None];
        assert!(srt(&s, &who).contains("00:00:02,500\nAnn: Hello there.\n"));
        assert!(vtt(&s, &who).contains("00:00:02.500\n<v Ann>Hello there.\n"));
        assert!(vtt(&s, &who).contains("00:01:01.000\nA -> B\nC\n"));
    }

    fn turn(speaker: u128, label: &str, name: Option<&str>, start_s: f64, end_s: f64) -> TurnRow {
        TurnRow {
            idx: 0,
            speaker_id: uuid::Uuid::from_u128(speaker),
            label: label.into(),
            name: name.map(str::to_owned),
            start_s,
            end_s,
        }
    }

    #[test]
    fn segments_take_the_speaker_they_overlap_most() {
        let s = [
            seg(0, 0.0, 3.0, "one"),
            seg(1, 3.0, 6.0, "two"),
            seg(2, 6.2, 7.0, "three"),
            seg(3, 20.0, 21.0, "far"),
        ];
        let turns = [
            turn(1, "SPEAKER_00", None, 0.0, 3.4),
            turn(2, "SPEAKER_01", Some("Bea"), 3.4, 6.0),
        ];
        assert_eq!(
            segment_speakers(&s, &turns),
            [
                Some("SPEAKER_00".to_owned()),
                Some("Bea".to_owned()),
                Some("Bea".to_owned()),
                None
            ]
        );
        assert!(segment_speakers(&s, &[]).is_empty());
    }

    #[test]
    fn segments_are_cut_where_the_speaker_changes() {
        // Ann speaks 0–4.1 s, Bob 4.1–8 s; one Whisper segment spans both.
        let turns = [
            turn(1, "SPEAKER_00", Some("Ann"), 0.0, 4.1),
            turn(2, "SPEAKER_01", None, 4.1, 8.0),
        ];
        let text = " one two three four five six seven eight nine ten eleven twelve thirteen ab";
        let segs = vec![seg(0, 0.0, 8.0, text), seg(1, 8.0, 9.0, " Thanks.")];
        let split = split_at_turns(segs.clone(), &turns);
        assert_eq!(split.len(), 3, "{split:?}");
        assert_eq!(
            split.iter().map(|s| s.idx).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(split[0].text.starts_with("one") && split[0].text.ends_with("eight"));
        assert!(split[1].text.starts_with("nine"));
        assert_eq!((split[0].end_s, split[1].start_s), (4.1, 4.1));
        assert_eq!(split[2].text, " Thanks.");
        assert_eq!(
            segment_speakers(&split, &turns),
            vec![
                Some("Ann".to_owned()),
                Some("SPEAKER_01".to_owned()),
                Some("SPEAKER_01".to_owned())
            ]
        );
        // Without turns nothing changes.
        assert_eq!(split_at_turns(segs.clone(), &[]), segs);
    }

    #[test]
    fn timed_words_decide_the_cut_and_go_with_their_piece() {
        // Ann 0–5.5 s, Bob 5.5–8 s; "full-room" is two Whisper words ("full", "-room").
        let turns = [
            turn(1, "SPEAKER_00", Some("Ann"), 0.0, 5.5),
            turn(2, "SPEAKER_01", None, 5.5, 8.0),
        ];
        let w = |word: &str, start: f64, end: f64| WordRow {
            word: word.into(),
            start,
            end,
            probability: 0.9,
        };
        let mut s = seg(0, 0.0, 8.0, "a full-room test today");
        s.words = Some(vec![
            w(" a", 0.0, 0.5),
            w(" full", 0.5, 1.0),
            w("-room", 1.0, 1.5),
            w(" test", 5.6, 6.0),
            w(" today", 6.0, 7.0),
        ]);
        let split = split_at_turns(vec![s], &turns);
        assert_eq!(split.len(), 2, "{split:?}");
        assert_eq!(split[0].text, "a full-room");
        assert_eq!(split[1].text, "test today");
        let spelled = |s: &SegmentRow| -> String {
            s.words.iter().flatten().map(|w| w.word.as_str()).collect()
        };
        assert_eq!(spelled(&split[0]).trim(), split[0].text);
        assert_eq!(spelled(&split[1]).trim(), split[1].text);
        // Each piece spans its own words.
        assert_eq!((split[0].start_s, split[0].end_s), (0.0, 1.5));
        assert_eq!((split[1].start_s, split[1].end_s), (5.6, 7.0));
    }
}
