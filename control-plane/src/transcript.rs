//! Transcript renderings: JSON, plain text, SubRip and WebVTT. Shared by the files API and the
//! OpenAI-compatible endpoint.
use serde::{Deserialize, Serialize};
use serde_json::json;
use voxfleet_store::files::{FileRecord, SegmentRow};

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

pub fn render(format: Format, file: &FileRecord, segments: &[SegmentRow]) -> String {
    match format {
        Format::Json => json!({
            "file_id": file.file.id,
            "language": file.language,
            "model": file.transcript_model,
            "duration_s": file.file.duration_s,
            "text": text(segments),
            "segments": segments.iter().map(|s| json!({
                "id": s.idx, "start": s.start_s, "end": s.end_s, "text": s.text.trim(),
                "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob,
            })).collect::<Vec<_>>(),
        })
        .to_string(),
        Format::Txt => {
            let mut t = text(segments);
            t.push('\n');
            t
        }
        Format::Srt => srt(segments),
        Format::Vtt => vtt(segments),
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

pub fn srt(segments: &[SegmentRow]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(s.start_s, ','),
            timestamp(s.end_s, ','),
            cue_text(&s.text)
        ));
    }
    out
}

pub fn vtt(segments: &[SegmentRow]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in segments {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
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
            srt(&s),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n\
             2\n00:00:02,500 --> 00:01:01,000\nA -> B\nC\n\n"
        );
        assert_eq!(
            vtt(&s),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n\
             00:00:02.500 --> 00:01:01.000\nA -> B\nC\n\n"
        );
        assert_eq!(text(&s), "Hello there. A --> B\n\nC");
        assert_eq!(srt(&[]), "");
        assert_eq!(vtt(&[]), "WEBVTT\n\n");
    }
}
