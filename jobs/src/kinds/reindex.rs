//! `reindex`: search documents rebuilt from PostgreSQL (the admin panel's reindex section).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::spec::{DefaultQueue, InputError, JobKind, Kind, Section};

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
}

impl Kind for ReindexInput {
    const KIND: JobKind = JobKind::Reindex;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 720;
    const SECTION: Option<Section> = Some(Section::Reindex);
    fn check(&self) -> Result<(), InputError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{JobInput, JobKind};
    use serde_json::json;

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
}
