//! Plain data at the crate's edge: options in, transcript and progress out.

use serde::{Deserialize, Serialize};

/// How to transcribe. `Default` gives: detect the language (or English for `.en` models),
/// transcribe, greedy decoding, the temperature fallback schedule, VAD on, previous-text
/// conditioning on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TranscribeOptions {
    /// ISO code such as `"en"`; `None` detects it on the first window (multilingual models) or
    /// uses `"en"` (English-only models).
    pub language: Option<String>,
    /// Translate to English instead of transcribing (multilingual models only).
    pub translate: bool,
    /// 1 = greedy; n > 1 = beam search with n beams (at temperature 0).
    pub beam_size: usize,
    /// `Some(t)`: decode at this temperature only. `None`: 0.0, 0.2, …, 1.0, moving on when the
    /// text repeats itself (gzip ratio > 2.4) or the model is unsure (mean log-prob < −1).
    pub temperature: Option<f32>,
    /// Text that conditions the first window (spelling of names, style).
    pub initial_prompt: Option<String>,
    /// Skip stretches without speech using Silero VAD (when a VAD model is given).
    pub vad: bool,
    /// Feed each window's text as the prompt of the next.
    pub condition_on_previous_text: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            translate: false,
            beam_size: 1,
            temperature: None,
            initial_prompt: None,
            vad: true,
            condition_on_previous_text: true,
        }
    }
}

/// One stretch of text with times in seconds from the start of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Mean log-probability of the window's tokens this segment came from.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the start of that window.
    pub no_speech_prob: f32,
    /// Temperature the window was finally decoded at.
    pub temperature: f32,
    /// gzip compression ratio of the window's text.
    pub compression_ratio: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub language: String,
    pub duration_s: f64,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// All segment texts joined with spaces.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.segments.iter().map(|s| s.text.trim()).collect();
        parts.join(" ")
    }
}

/// Reported after each 30 s window.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub processed_s: f64,
    pub total_s: f64,
    pub windows_done: usize,
    pub segments_so_far: usize,
}
