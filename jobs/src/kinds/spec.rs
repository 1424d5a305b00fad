//! What every kind declares: its name ([`JobKind`]), and through [`Kind`] its payload's checks,
//! default queue, who may submit it, how long it may run and the maintenance [`Section`] it
//! reports under.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::QueueName;

/// The job kinds. Each has its own file in [`crate::kinds`] with its payload type.
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
    DeleteUser,
    Diagnostic,
}

impl JobKind {
    pub const ALL: [JobKind; 11] = [
        Self::Transcribe,
        Self::Diarize,
        Self::ExtractEmbeddings,
        Self::Reindex,
        Self::IntegrityCheck,
        Self::EmbeddingRepair,
        Self::EmbeddingMigration,
        Self::Retention,
        Self::CollectStats,
        Self::DeleteUser,
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
            Self::DeleteUser => "delete_user",
            Self::Diagnostic => "diagnostic",
        }
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

/// The queue a kind goes to unless its submission names another: model work on `gpu`,
/// maintenance on `cpu`, so transcription keeps going while a reindex or a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultQueue {
    Gpu,
    Cpu,
}

impl DefaultQueue {
    pub fn name(self) -> QueueName {
        match self {
            Self::Gpu => QueueName::gpu(),
            Self::Cpu => QueueName::cpu(),
        }
    }
}

/// A maintenance section of the admin panel: one run of it at a time, its progress and report
/// kept in PostgreSQL (`maintenance_runs`) under [`Section::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Reindex,
    Integrity,
    Repair,
    Migration,
    Retention,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Self::Reindex,
        Self::Integrity,
        Self::Repair,
        Self::Migration,
        Self::Retention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reindex => "reindex",
            Self::Integrity => "integrity",
            Self::Repair => "repair",
            Self::Migration => "migration",
            Self::Retention => "retention",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Section {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown maintenance section `{s}`"))
    }
}

/// The state of a maintenance section's run, as `maintenance_runs.state` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Its job waits in the queue (shown, never stored).
    Queued,
    Running,
    Completed,
    /// Stopped on request (or cancelled before it started).
    Stopped,
    Failed,
    /// A migration that ended with speakers it could not migrate.
    Stalled,
    /// A migration whose alias now points at the new profile.
    Finalized,
    /// A migration whose alias was pointed back.
    RolledBack,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Stopped,
        Self::Failed,
        Self::Stalled,
        Self::Finalized,
        Self::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Stalled => "stalled",
            Self::Finalized => "finalized",
            Self::RolledBack => "rolled_back",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown run state `{s}`"))
    }
}

/// A kind's payload type and what the system needs to know about the kind. Implemented once,
/// in the kind's own file.
pub trait Kind: Serialize + DeserializeOwned {
    const KIND: JobKind;
    const QUEUE: DefaultQueue;
    /// Only admins may submit it.
    const ADMIN_ONLY: bool;
    /// How long one attempt may reasonably run: a job still `running` past it is reported
    /// stuck by the task health view (nothing kills it: the worker's `--job-timeout-seconds`
    /// does that where set).
    const MAX_RUNTIME_MINUTES: u64;
    /// The maintenance section a run of it (without a file list) reports under.
    const SECTION: Option<Section>;

    /// Checks beyond the type (ranges, combinations), done once at submission.
    fn check(&self) -> Result<(), InputError> {
        Ok(())
    }

    fn max_runtime() -> Duration {
        Duration::from_secs(Self::MAX_RUNTIME_MINUTES * 60)
    }
}

/// A payload that does not match its kind's type.
#[derive(Debug, thiserror::Error)]
#[error("invalid input: {0}")]
pub struct InputError(pub String);

/// Embedding profiles: `v3` (legacy voiceprints) and `v4` (WeSpeaker-interface voiceprints,
/// also the model diarization clusters with).
pub const EMBEDDING_PROFILES: [&str; 2] = ["v3", "v4"];

pub(crate) fn check_profile(p: &str) -> Result<(), InputError> {
    if EMBEDDING_PROFILES.contains(&p) {
        Ok(())
    } else {
        Err(InputError(format!(
            "unknown embedding profile `{p}` (known: {})",
            EMBEDDING_PROFILES.join(", ")
        )))
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
