//! `embedding_migration`: voiceprints of one profile extracted for every speaker (v3 → v4).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::spec::{DefaultQueue, InputError, JobKind, Kind, Section, check_profile};

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

impl Kind for EmbeddingMigrationInput {
    const KIND: JobKind = JobKind::EmbeddingMigration;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 1440;
    const SECTION: Option<Section> = Some(Section::Migration);
    fn check(&self) -> Result<(), InputError> {
        check_profile(&self.from_profile)?;
        check_profile(&self.to_profile)?;
        if self.from_profile == self.to_profile {
            return Err(InputError("from_profile and to_profile must differ".into()));
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
}
