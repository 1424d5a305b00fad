//! Job kinds and their payload types. A kind is parsed from its string once, at the edge; a
//! payload is checked against its kind's type at submission, so a worker never sees one that
//! does not parse.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::QueueName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Transcribe,
    Diarize,
    ExtractEmbeddings,
    Reindex,
    IntegrityCheck,
    EmbeddingRepair,
    EmbeddingMigration,
    Retention,
    CollectStats,
    Diagnostic,
}

impl JobKind {
    pub const ALL: [JobKind; 10] = [
        Self::Transcribe,
        Self::Diarize,
        Self::ExtractEmbeddings,
        Self::Reindex,
        Self::IntegrityCheck,
        Self::EmbeddingRepair,
        Self::EmbeddingMigration,
        Self::Retention,
        Self::CollectStats,
        Self::Diagnostic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transcribe => "transcribe",
            Self::Diarize => "diarize",
            Self::ExtractEmbeddings => "extract_embeddings",
            Self::Reindex => "reindex",
            Self::IntegrityCheck => "integrity_check",
            Self::EmbeddingRepair => "embedding_repair",
            Self::EmbeddingMigration => "embedding_migration",
            Self::Retention => "retention",
            Self::CollectStats => "collect_stats",
            Self::Diagnostic => "diagnostic",
        }
    }

    /// Model work goes to `gpu`, maintenance to `cpu`. A submission may override it.
    pub fn default_queue(self) -> QueueName {
        match self {
            Self::Transcribe | Self::Diarize | Self::ExtractEmbeddings => QueueName::gpu(),
            // Maintenance runs beside the model queues, so transcription keeps going while a
            // reindex or an embedding migration runs.
            Self::Reindex
            | Self::IntegrityCheck
            | Self::EmbeddingRepair
            | Self::EmbeddingMigration
            | Self::Retention
            | Self::CollectStats
            | Self::Diagnostic => QueueName::cpu(),
        }
    }

    /// Whether workers of this version can run the kind. The API rejects the others with
    /// `not_implemented` until their issue lands (every kind has landed now).
    pub fn is_implemented(self) -> bool {
        true
    }

    /// Kinds only admins may submit.
    pub fn admin_only(self) -> bool {
        matches!(
            self,
            Self::Diagnostic
                | Self::Reindex
                | Self::IntegrityCheck
                | Self::EmbeddingRepair
                | Self::EmbeddingMigration
                | Self::Retention
                | Self::CollectStats
        )
    }

    /// Parses and checks a payload against this kind's type.
    pub fn parse_input(self, input: &serde_json::Value) -> Result<JobInput, InputError> {
        fn de<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, InputError> {
            T::deserialize(v).map_err(|e| InputError(e.to_string()))
        }
        // PostgreSQL's text and jsonb hold no NUL: refuse it here, before anything is
        // written, rather than fail half way through a submission.
        if holds_nul(input) {
            return Err(InputError(
                "text must not contain NUL characters (\\u0000)".into(),
            ));
        }
        let parsed = match self {
            Self::Transcribe => {
                let t: TranscribeInput = de(input)?;
                t.validate()?;
                JobInput::Transcribe(t)
            }
            Self::Diarize => {
                let d: DiarizeInput = de(input)?;
                d.validate()?;
                JobInput::Diarize(d)
            }
            Self::ExtractEmbeddings => {
                let e: ExtractEmbeddingsInput = de(input)?;
                if let Some(p) = &e.profile {
                    check_profile(p)?;
                }
                JobInput::ExtractEmbeddings(e)
            }
            Self::Reindex => {
                let r: ReindexInput = de(input)?;
                r.validate()?;
                JobInput::Reindex(r)
            }
            Self::IntegrityCheck => JobInput::IntegrityCheck(de(input)?),
            Self::EmbeddingRepair => {
                let r: EmbeddingRepairInput = de(input)?;
                if let Some(p) = &r.profile {
                    check_profile(p)?;
                }
                JobInput::EmbeddingRepair(r)
            }
            Self::EmbeddingMigration => {
                let m: EmbeddingMigrationInput = de(input)?;
                m.validate()?;
                JobInput::EmbeddingMigration(m)
            }
            Self::Retention => JobInput::Retention(de(input)?),
            Self::CollectStats => JobInput::CollectStats(de(input)?),
            Self::Diagnostic => {
                let d: DiagnosticInput = de(input)?;
                d.validate()?;
                JobInput::Diagnostic(d)
            }
        };
        Ok(parsed)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown job kind `{s}`"))
    }
}

/// Whether any string (or key) in `v` contains a NUL character.
pub fn holds_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(holds_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// A payload that does not match its kind's type.
#[derive(Debug, thiserror::Error)]
#[error("invalid input: {0}")]
pub struct InputError(pub String);

/// A parsed payload, one variant per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum JobInput {
    Transcribe(TranscribeInput),
    Diarize(DiarizeInput),
    ExtractEmbeddings(ExtractEmbeddingsInput),
    Reindex(ReindexInput),
    IntegrityCheck(IntegrityCheckInput),
    EmbeddingRepair(EmbeddingRepairInput),
    EmbeddingMigration(EmbeddingMigrationInput),
    Retention(RetentionInput),
    CollectStats(CollectStatsInput),
    Diagnostic(DiagnosticInput),
}

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

    fn validate(&self) -> Result<(), InputError> {
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

/// Embedding profiles: `v3` (legacy voiceprints) and `v4` (WeSpeaker-interface voiceprints,
/// also the model diarization clusters with).
pub const EMBEDDING_PROFILES: [&str; 2] = ["v3", "v4"];

fn check_profile(p: &str) -> Result<(), InputError> {
    if EMBEDDING_PROFILES.contains(&p) {
        Ok(())
    } else {
        Err(InputError(format!(
            "unknown embedding profile `{p}` (known: {})",
            EMBEDDING_PROFILES.join(", ")
        )))
    }
}

/// Who speaks when in a stored file, with a voiceprint per speaker. Everything but `file_id`
/// is optional; the speaker-count hints are bounds, not guesses to match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiarizeInput {
    pub file_id: Uuid,
    /// The exact number of speakers, when known (1–32).
    #[serde(default)]
    pub num_speakers: Option<u32>,
    #[serde(default)]
    pub min_speakers: Option<u32>,
    #[serde(default)]
    pub max_speakers: Option<u32>,
    /// Voiceprint profiles to store for every speaker. Default: `v4` (the model speakers are
    /// clustered with) and the active profile.
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
    /// Name the speakers whose voices match these reference recordings (at most 4); the others
    /// keep their generic labels.
    #[serde(default)]
    pub known_speakers: Vec<KnownSpeaker>,
}

/// A reference recording of a known voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownSpeaker {
    pub name: String,
    /// A stored file holding a few seconds of that voice alone.
    pub file_id: Uuid,
}

impl DiarizeInput {
    pub const MAX_SPEAKERS: u32 = 32;
    pub const MAX_KNOWN_SPEAKERS: usize = 4;

    fn validate(&self) -> Result<(), InputError> {
        for (name, v) in [
            ("num_speakers", self.num_speakers),
            ("min_speakers", self.min_speakers),
            ("max_speakers", self.max_speakers),
        ] {
            if let Some(v) = v
                && !(1..=Self::MAX_SPEAKERS).contains(&v)
            {
                return Err(InputError(format!(
                    "{name} must be between 1 and {}",
                    Self::MAX_SPEAKERS
                )));
            }
        }
        let (lo, hi) = (self.min_speakers.unwrap_or(1), self.max_speakers);
        if let Some(hi) = hi
            && lo > hi
        {
            return Err(InputError(
                "min_speakers must not exceed max_speakers".into(),
            ));
        }
        if let Some(n) = self.num_speakers
            && (n < lo || hi.is_some_and(|hi| n > hi))
        {
            return Err(InputError(
                "num_speakers lies outside min_speakers..max_speakers".into(),
            ));
        }
        for p in self.profiles.iter().flatten() {
            check_profile(p)?;
        }
        if self.known_speakers.len() > Self::MAX_KNOWN_SPEAKERS {
            return Err(InputError(format!(
                "at most {} known speakers",
                Self::MAX_KNOWN_SPEAKERS
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for k in &self.known_speakers {
            let n = k.name.trim();
            if n.is_empty() || n.chars().count() > 100 {
                return Err(InputError(
                    "a known speaker's name must have 1–100 characters".into(),
                ));
            }
            if !names.insert(n) {
                return Err(InputError(format!("known speaker `{n}` is named twice")));
            }
        }
        Ok(())
    }
}

/// (Re-)extract the voiceprints of a diarized file's speakers under one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractEmbeddingsInput {
    pub file_id: Uuid,
    /// Embedding profile (`v3`, `v4`); the active one when absent.
    #[serde(default)]
    pub profile: Option<String>,
}

/// Which files a reindex covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReindexMode {
    /// Every file with a transcript or speakers, whatever its state.
    All,
    /// Only files whose index documents are missing or older than their rows.
    #[default]
    Pending,
}

/// Rebuilds search documents (transcript chunks, speaker voiceprints) from PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReindexInput {
    #[serde(default)]
    pub mode: ReindexMode,
    /// Only these files (what a finished transcription or diarization queues); `mode` is
    /// then ignored.
    #[serde(default)]
    pub file_ids: Option<Vec<Uuid>>,
    /// Drop and recreate the chunk index first (a change of the text-embedding model).
    #[serde(default)]
    pub recreate: bool,
}

impl ReindexInput {
    pub const MAX_FILES: usize = 10_000;

    fn validate(&self) -> Result<(), InputError> {
        if self
            .file_ids
            .as_ref()
            .is_some_and(|f| f.len() > Self::MAX_FILES)
        {
            return Err(InputError(format!(
                "at most {} file_ids per reindex job",
                Self::MAX_FILES
            )));
        }
        Ok(())
    }
}

/// Scans every index for documents whose PostgreSQL rows are gone and deletes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrityCheckInput {
    /// Report orphans without deleting them.
    #[serde(default)]
    pub dry_run: bool,
}

/// Puts every speaker's voiceprint of `profile` (default: the active one) back into its
/// index: from PostgreSQL when stored there, else re-extracted from the audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRepairInput {
    #[serde(default)]
    pub profile: Option<String>,
}

/// What a migration run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationAction {
    /// Extract `to` voiceprints for every speaker that lacks one and has not failed (also
    /// how a stopped or crashed migration resumes).
    #[default]
    Start,
    /// Only the speakers that failed before.
    RetryFailed,
    /// Every speaker again, even those already migrated.
    ForceReextract,
}

/// Extracts `to_profile` voiceprints for every speaker (v3 → v4). Voiceprints of
/// `from_profile` are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingMigrationInput {
    #[serde(default)]
    pub action: MigrationAction,
    #[serde(default = "v3")]
    pub from_profile: String,
    #[serde(default = "v4")]
    pub to_profile: String,
}

fn v3() -> String {
    "v3".into()
}

fn v4() -> String {
    "v4".into()
}

impl EmbeddingMigrationInput {
    fn validate(&self) -> Result<(), InputError> {
        check_profile(&self.from_profile)?;
        check_profile(&self.to_profile)?;
        if self.from_profile == self.to_profile {
            return Err(InputError("from_profile and to_profile must differ".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionInput {
    /// Count what would be deleted, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Evaluate the age limit as of this instant instead of now (previews of a future day,
    /// and tests of a day with a DST change). Only the past of this instant is considered.
    #[serde(default)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// A drill for crash safety: after this many files, the worker stops in the middle of the
    /// next file (its object deleted, its rows not yet) and waits to be killed. Honoured only
    /// by a worker started with `--allow-crash`.
    #[serde(default)]
    pub stall_after: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectStatsInput {}

/// How a `diagnostic` job fails, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticFail {
    #[default]
    Never,
    /// Every attempt fails with a retryable error.
    Always,
    /// The first attempt fails with a retryable error; later ones succeed.
    FirstAttempt,
    /// Fails at once with a permanent (bad input) error: no retry.
    Permanent,
    /// The handler panics (a drill for handler bugs): the job fails with `handler_panic`.
    Panic,
}

/// The `diagnostic` kind: operators' smoke test and benchmarkers' no-op job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticInput {
    /// Total time to sleep, spread over the steps (0–3,600,000 ms).
    #[serde(default)]
    pub sleep_ms: u64,
    #[serde(default)]
    pub fail: DiagnosticFail,
    /// Abort the worker process mid-job. Honoured only by a worker started with `--allow-crash`.
    #[serde(default)]
    pub crash: bool,
    /// Progress steps (1–10,000).
    #[serde(default = "one")]
    pub steps: u32,
}

fn one() -> u32 {
    1
}

impl DiagnosticInput {
    pub const MAX_SLEEP_MS: u64 = 3_600_000;
    pub const MAX_STEPS: u32 = 10_000;

    fn validate(&self) -> Result<(), InputError> {
        if self.sleep_ms > Self::MAX_SLEEP_MS {
            return Err(InputError(format!(
                "sleep_ms must be at most {}",
                Self::MAX_SLEEP_MS
            )));
        }
        if self.steps == 0 || self.steps > Self::MAX_STEPS {
            return Err(InputError(format!(
                "steps must be between 1 and {}",
                Self::MAX_STEPS
            )));
        }
        Ok(())
    }
}

impl JobKind {
    /// How long one attempt of this kind may reasonably run. A job still `running` past it
    /// is reported stuck by the task health view (nothing kills it: the worker's
    /// `--job-timeout-seconds` does that where set).
    pub fn max_runtime(self) -> std::time::Duration {
        let mins = match self {
            Self::Transcribe | Self::Diarize => 4 * 60,
            Self::ExtractEmbeddings => 2 * 60,
            Self::Reindex | Self::IntegrityCheck | Self::EmbeddingRepair | Self::Retention => {
                12 * 60
            }
            Self::EmbeddingMigration => 24 * 60,
            Self::CollectStats => 5,
            Self::Diagnostic => 60,
        };
        std::time::Duration::from_secs(mins * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_round_trip_and_route() {
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert!("transcribe_all".parse::<JobKind>().is_err());
        assert_eq!(JobKind::Transcribe.default_queue(), QueueName::gpu());
        assert_eq!(JobKind::Retention.default_queue(), QueueName::cpu());
    }

    #[test]
    fn diagnostic_payloads_are_checked() {
        let k = JobKind::Diagnostic;
        let JobInput::Diagnostic(d) = k.parse_input(&json!({})).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(
            (d.sleep_ms, d.fail, d.crash, d.steps),
            (0, DiagnosticFail::Never, false, 1)
        );
        assert!(k.parse_input(&json!({"sleep_ms": "ten"})).is_err());
        assert!(k.parse_input(&json!({"steps": 0})).is_err());
        assert!(k.parse_input(&json!({"fail": "sometimes"})).is_err());
        assert!(k.parse_input(&json!({"bogus": 1})).is_err());
        assert!(k.parse_input(&json!([1, 2])).is_err());
    }

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

    #[test]
    fn diarize_payloads_are_checked() {
        let k = JobKind::Diarize;
        let id = Uuid::nil();
        assert!(k.parse_input(&json!({"file_id": id})).is_ok());
        assert!(
            k.parse_input(
                &json!({"file_id": id, "min_speakers": 2, "max_speakers": 4, "num_speakers": 3})
            )
            .is_ok()
        );
        for bad in [
            json!({"file_id": id, "num_speakers": 0}),
            json!({"file_id": id, "max_speakers": 33}),
            json!({"file_id": id, "min_speakers": 3, "max_speakers": 2}),
            json!({"file_id": id, "min_speakers": 3, "num_speakers": 2}),
            json!({"file_id": id, "profiles": ["v5"]}),
            json!({"file_id": id, "known_speakers": [{"name": " ", "file_id": id}]}),
            json!({"file_id": id, "known_speakers": [{"name": "A", "file_id": id}, {"name": "A", "file_id": id}]}),
        ] {
            assert!(k.parse_input(&bad).is_err(), "{bad}");
        }
        let e = JobKind::ExtractEmbeddings;
        assert!(
            e.parse_input(&json!({"file_id": id, "profile": "v3"}))
                .is_ok()
        );
        assert!(
            e.parse_input(&json!({"file_id": id, "profile": "v9"}))
                .is_err()
        );
    }

    #[test]
    fn reindex_payloads_are_checked() {
        let k = JobKind::Reindex;
        let JobInput::Reindex(r) = k.parse_input(&json!({})).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(
            r,
            ReindexInput {
                mode: ReindexMode::Pending,
                file_ids: None,
                recreate: false,
            }
        );
        let JobInput::Reindex(r) = k
            .parse_input(&json!({"mode": "all", "recreate": true}))
            .unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(
            (r.mode, r.file_ids, r.recreate),
            (ReindexMode::All, None, true)
        );
        let id = Uuid::from_u128(7);
        let JobInput::Reindex(r) = k.parse_input(&json!({"file_ids": [id]})).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!((r.mode, r.file_ids), (ReindexMode::Pending, Some(vec![id])));

        // exactly the limit is fine, one more is refused
        let at_limit: Vec<Uuid> = (0..ReindexInput::MAX_FILES as u128)
            .map(Uuid::from_u128)
            .collect();
        assert_eq!(ReindexInput::MAX_FILES, 10_000);
        let JobInput::Reindex(r) = k.parse_input(&json!({"file_ids": at_limit})).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(r.file_ids.map(|f| f.len()), Some(10_000));
        let over: Vec<Uuid> = (0..=ReindexInput::MAX_FILES as u128)
            .map(Uuid::from_u128)
            .collect();
        let err = k.parse_input(&json!({ "file_ids": over })).unwrap_err();
        assert!(err.0.contains("10000"), "{err}");

        for bad in [
            json!({"bogus": 1}),
            json!({"mode": "some"}),
            json!({"recreate": "yes"}),
            json!({"file_ids": ["nope"]}),
        ] {
            assert!(k.parse_input(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integrity_and_repair_payloads_are_checked() {
        let k = JobKind::IntegrityCheck;
        assert_eq!(
            k.parse_input(&json!({})).unwrap(),
            JobInput::IntegrityCheck(IntegrityCheckInput { dry_run: false })
        );
        assert_eq!(
            k.parse_input(&json!({"dry_run": true})).unwrap(),
            JobInput::IntegrityCheck(IntegrityCheckInput { dry_run: true })
        );
        assert!(k.parse_input(&json!({"dry_run": 1})).is_err());
        assert!(k.parse_input(&json!({"bogus": true})).is_err());

        let k = JobKind::EmbeddingRepair;
        assert_eq!(
            k.parse_input(&json!({})).unwrap(),
            JobInput::EmbeddingRepair(EmbeddingRepairInput { profile: None })
        );
        assert_eq!(
            k.parse_input(&json!({"profile": "v3"})).unwrap(),
            JobInput::EmbeddingRepair(EmbeddingRepairInput {
                profile: Some("v3".into())
            })
        );
        assert_eq!(
            k.parse_input(&json!({"profile": "v4"})).unwrap(),
            JobInput::EmbeddingRepair(EmbeddingRepairInput {
                profile: Some("v4".into())
            })
        );
        let err = k.parse_input(&json!({"profile": "v5"})).unwrap_err();
        assert!(err.0.contains("unknown embedding profile `v5`"), "{err}");
        assert!(k.parse_input(&json!({"profile": ""})).is_err());
        assert!(k.parse_input(&json!({"bogus": 1})).is_err());
    }

    #[test]
    fn migration_payloads_are_checked() {
        let k = JobKind::EmbeddingMigration;
        assert_eq!(
            k.parse_input(&json!({})).unwrap(),
            JobInput::EmbeddingMigration(EmbeddingMigrationInput {
                action: MigrationAction::Start,
                from_profile: "v3".into(),
                to_profile: "v4".into(),
            })
        );
        for (action, want) in [
            ("start", MigrationAction::Start),
            ("retry_failed", MigrationAction::RetryFailed),
            ("force_reextract", MigrationAction::ForceReextract),
        ] {
            let JobInput::EmbeddingMigration(m) =
                k.parse_input(&json!({ "action": action })).unwrap()
            else {
                panic!("wrong variant")
            };
            assert_eq!(
                (m.action, m.from_profile.as_str(), m.to_profile.as_str()),
                (want, "v3", "v4")
            );
        }
        // the other direction is a migration too
        let JobInput::EmbeddingMigration(m) = k
            .parse_input(&json!({"from_profile": "v4", "to_profile": "v3"}))
            .unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(
            (m.from_profile.as_str(), m.to_profile.as_str()),
            ("v4", "v3")
        );

        let err = k
            .parse_input(&json!({"from_profile": "v4", "to_profile": "v4"}))
            .unwrap_err();
        assert!(err.0.contains("must differ"), "{err}");
        // the default `to_profile` is v4, so naming only v4 as the source is the same mistake
        assert!(k.parse_input(&json!({"from_profile": "v4"})).is_err());
        for bad in [
            json!({"from_profile": "v2"}),
            json!({"to_profile": "v5"}),
            json!({"action": "finalize"}),
            json!({"bogus": 1}),
        ] {
            assert!(k.parse_input(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn maintenance_kinds_are_implemented_and_run_on_cpu() {
        for k in [
            JobKind::Reindex,
            JobKind::IntegrityCheck,
            JobKind::EmbeddingRepair,
            JobKind::EmbeddingMigration,
        ] {
            assert!(k.is_implemented(), "{k}");
            assert!(k.admin_only(), "{k}");
            assert_eq!(k.default_queue(), QueueName::cpu(), "{k}");
        }
        assert!(JobKind::ALL.into_iter().all(JobKind::is_implemented));
        for k in [JobKind::Retention, JobKind::CollectStats] {
            assert!(k.admin_only(), "{k}");
            assert_eq!(k.default_queue(), QueueName::cpu(), "{k}");
        }
    }
}
