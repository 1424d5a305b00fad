//! `extract_embeddings`: (re)compute one voiceprint profile of a diarized file's speakers.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::spec::{DefaultQueue, InputError, JobKind, Kind, Section, check_profile};

/// (Re-)extract the voiceprints of a diarized file's speakers under one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractEmbeddingsInput {
    pub file_id: Uuid,
    /// Embedding profile (`v3`, `v4`); the active one when absent.
    #[serde(default)]
    pub profile: Option<String>,
}

impl Kind for ExtractEmbeddingsInput {
    const KIND: JobKind = JobKind::ExtractEmbeddings;
    const QUEUE: DefaultQueue = DefaultQueue::Gpu;
    const ADMIN_ONLY: bool = false;
    const MAX_RUNTIME_MINUTES: u64 = 120;
    const SECTION: Option<Section> = None;
    fn check(&self) -> Result<(), InputError> {
        self.profile.as_deref().map_or(Ok(()), check_profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::JobKind;
    use serde_json::json;

    #[test]
    fn extract_embeddings_payloads_are_checked() {
        let id = Uuid::nil();
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
}
