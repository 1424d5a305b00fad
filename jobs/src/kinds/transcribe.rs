//! `transcribe`: a stored file through Whisper (the worker's `handlers/transcribe.rs`).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::spec::{DefaultQueue, InputError, JobKind, Kind, Section};

/// Transcribe a stored file with Whisper. Everything but `file_id` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscribeInput {
    pub file_id: Uuid,
    /// `tiny.en` or `base`; the worker's default model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// ISO 639-1 code (`en`, `de`, …); detected when absent (multilingual models).
    #[serde(default)]
    pub language: Option<String>,
    /// 1 = greedy (default); 2–10 = beam search.
    #[serde(default)]
    pub beam_size: Option<u32>,
    /// A fixed sampling temperature (0–1); absent = 0 with fallback to higher ones on
    /// repetitive or low-confidence windows.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Text that conditions the first window (names, spelling, style).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Skip non-speech with Silero VAD (default true).
    #[serde(default)]
    pub vad: Option<bool>,
    /// Batched decoding: the speech cut into chunks of up to 30 s, decoded several at a time,
    /// each on its own (no previous-text conditioning, no temperature fallback). Faster on many
    /// cores and on GPUs; absent = the worker's default (`--batched`).
    #[serde(default)]
    pub batched: Option<bool>,
    /// Time every word (start, end, probability): kept with each segment, shown in the JSON
    /// export and in OpenAI's `verbose_json` words (default false; CTranslate2 engine only).
    #[serde(default)]
    pub word_timestamps: Option<bool>,
    /// `transcribe` (default) or `translate` (into English; multilingual models only).
    #[serde(default)]
    pub task: Option<Task>,
}

/// What Whisper does with the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Text in the language spoken.
    Transcribe,
    /// Text in English, whatever the language spoken.
    Translate,
}

impl TranscribeInput {
    /// Only `file_id` set: every option left to the worker's defaults.
    pub fn for_file(file_id: Uuid) -> Self {
        Self {
            file_id,
            model: None,
            language: None,
            beam_size: None,
            temperature: None,
            prompt: None,
            vad: None,
            batched: None,
            word_timestamps: None,
            task: None,
        }
    }

    pub const MAX_BEAM: u32 = 10;
    /// Longest model name accepted.
    pub const MAX_MODEL_NAME: usize = 64;
}

impl Kind for TranscribeInput {
    const KIND: JobKind = JobKind::Transcribe;
    const QUEUE: DefaultQueue = DefaultQueue::Gpu;
    const ADMIN_ONLY: bool = false;
    const MAX_RUNTIME_MINUTES: u64 = 240;
    const SECTION: Option<Section> = None;
    fn check(&self) -> Result<(), InputError> {
        if let Some(b) = self.beam_size
            && !(1..=Self::MAX_BEAM).contains(&b)
        {
            return Err(InputError(format!(
                "beam_size must be between 1 and {}",
                Self::MAX_BEAM
            )));
        }
        if let Some(t) = self.temperature
            && !(0.0..=1.0).contains(&t)
        {
            return Err(InputError("temperature must be between 0 and 1".into()));
        }
        if let Some(l) = &self.language
            && (l.len() < 2 || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return Err(InputError(format!(
                "language `{l}`: expected an ISO 639-1 code such as `en`"
            )));
        }
        if self.prompt.as_ref().is_some_and(|p| p.len() > 2000) {
            return Err(InputError("prompt is longer than 2,000 bytes".into()));
        }
        // The name's shape; which names exist is the models registry's (checked by the API
        // and by the worker before it caches anything).
        if let Some(m) = &self.model
            && (m.is_empty()
                || m.len() > Self::MAX_MODEL_NAME
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
        {
            return Err(InputError(format!(
                "model: expected a model name such as `tiny.en` (at most {} of a-z, 0-9, `.`, `-`, `_`)",
                Self::MAX_MODEL_NAME
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::JobKind;
    use serde_json::json;

    #[test]
    fn other_payloads_are_typed() {
        let id = Uuid::nil();
        assert!(
            JobKind::Transcribe
                .parse_input(&json!({"file_id": id}))
                .is_ok()
        );
        assert!(
            JobKind::Transcribe
                .parse_input(&json!({"file_id": "nope"}))
                .is_err()
        );
        assert!(JobKind::CollectStats.parse_input(&json!({})).is_ok());
    }
}
