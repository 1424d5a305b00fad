//! `embedding_repair`: every speaker's voiceprint of one profile put back into its index.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{DefaultQueue, InputError, JobKind, Kind, Section, check_profile};

/// Puts every speaker's voiceprint of `profile` (default: the active one) back into its
/// index: from PostgreSQL when stored there, else re-extracted from the audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRepairInput {
    #[serde(default)]
    pub profile: Option<String>,
}

impl Kind for EmbeddingRepairInput {
    const KIND: JobKind = JobKind::EmbeddingRepair;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 720;
    const SECTION: Option<Section> = Some(Section::Repair);
    fn check(&self) -> Result<(), InputError> {
        self.profile.as_deref().map_or(Ok(()), check_profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{JobInput, JobKind};
    use serde_json::json;

    #[test]
    fn repair_payloads_are_checked() {
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
}
