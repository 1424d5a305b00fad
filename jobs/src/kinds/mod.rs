//! Job kinds: one file per kind holds its payload type, the checks on it, its default queue,
//! who may submit it, how long it may run, the maintenance section it reports under and its
//! unit tests. A kind is parsed from its string once, at the edge; a payload is checked against
//! its kind's type at submission, so a worker never sees one that does not parse.
//!
//! Adding a kind touches this short list:
//! 1. `kinds/<kind>.rs`: the payload type and `impl Kind` (queue, admin-only, run time,
//!    section, checks) with its unit tests;
//! 2. [`spec::JobKind`]: the variant, in `ALL` and `as_str`; here: the `mod` line and one line
//!    of `kinds!` (which gives [`JobInput`] its variant and every dispatch);
//! 3. the worker: `worker/src/handlers/<kind>.rs` and its line in the handler registry
//!    (`worker/src/handlers/mod.rs`);
//! 4. the SQL of the data it writes in that data's `store` module (`jobs.kind` is plain
//!    text: no migration for the kind itself), and the README's API table; ARCHITECTURE.md
//!    has the whole walk-through.
pub mod collect_stats;
pub mod delete_user;
pub mod diagnostic;
pub mod diarize;
pub mod embedding_migration;
pub mod embedding_repair;
pub mod extract_embeddings;
pub mod integrity_check;
pub mod reindex;
pub mod retention;
pub mod spec;
pub mod transcribe;

use std::time::Duration;

pub use collect_stats::CollectStatsInput;
pub use delete_user::DeleteUserInput;
pub use diagnostic::{DiagnosticFail, DiagnosticInput};
pub use diarize::{DiarizeInput, KnownSpeaker};
pub use embedding_migration::{EmbeddingMigrationInput, MigrationAction};
pub use embedding_repair::EmbeddingRepairInput;
pub use extract_embeddings::ExtractEmbeddingsInput;
pub use integrity_check::IntegrityCheckInput;
pub use reindex::{ReindexInput, ReindexMode};
pub use retention::RetentionInput;
pub use spec::{
    DefaultQueue, EMBEDDING_PROFILES, InputError, JobKind, Kind, RunState, Section, holds_nul,
};
pub use transcribe::{Task, TranscribeInput};

use crate::model::QueueName;

fn parse<K: Kind>(input: &serde_json::Value) -> Result<K, InputError> {
    let k = K::deserialize(input).map_err(|e| InputError(e.to_string()))?;
    k.check()?;
    Ok(k)
}

/// One line per kind: the [`JobInput`] variant and its payload type. Gives [`JobInput`] and
/// [`JobKind`] everything that dispatches on the kind, from each payload's [`Kind`] impl.
macro_rules! kinds {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A parsed payload, one variant per kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum JobInput {
            $($variant($ty),)*
        }

        $(impl From<$ty> for JobInput {
            fn from(v: $ty) -> Self {
                Self::$variant(v)
            }
        })*

        impl JobInput {
            pub fn kind(&self) -> JobKind {
                match self {
                    $(Self::$variant(_) => <$ty as Kind>::KIND,)*
                }
            }

            /// The payload as stored with the job (the JSON its kind parses back).
            pub fn to_value(&self) -> serde_json::Value {
                let v = match self {
                    $(Self::$variant(p) => serde_json::to_value(p),)*
                };
                v.expect("payload types serialise to JSON")
            }
        }

        impl JobKind {
            /// Where the kind runs unless a submission names another queue.
            pub fn default_queue(self) -> QueueName {
                match self {
                    $(JobKind::$variant => <$ty as Kind>::QUEUE.name(),)*
                }
            }

            /// Kinds only admins may submit.
            pub fn admin_only(self) -> bool {
                match self {
                    $(JobKind::$variant => <$ty as Kind>::ADMIN_ONLY,)*
                }
            }

            /// See [`Kind::MAX_RUNTIME_MINUTES`].
            pub fn max_runtime(self) -> Duration {
                match self {
                    $(JobKind::$variant => <$ty as Kind>::max_runtime(),)*
                }
            }

            /// The maintenance section a whole-system run of the kind reports under.
            pub fn section(self) -> Option<Section> {
                match self {
                    $(JobKind::$variant => <$ty as Kind>::SECTION,)*
                }
            }

            /// Parses and checks a payload against this kind's type.
            pub fn parse_input(self, input: &serde_json::Value) -> Result<JobInput, InputError> {
                // PostgreSQL's text and jsonb hold no NUL: refuse it here, before anything is
                // written, rather than fail half way through a submission.
                if holds_nul(input) {
                    return Err(InputError(
                        "text must not contain NUL characters (\\u0000)".into(),
                    ));
                }
                Ok(match self {
                    $(JobKind::$variant => JobInput::$variant(parse::<$ty>(input)?),)*
                })
            }
        }
    };
}

kinds! {
    Transcribe(TranscribeInput),
    Diarize(DiarizeInput),
    ExtractEmbeddings(ExtractEmbeddingsInput),
    Reindex(ReindexInput),
    IntegrityCheck(IntegrityCheckInput),
    EmbeddingRepair(EmbeddingRepairInput),
    EmbeddingMigration(EmbeddingMigrationInput),
    Retention(RetentionInput),
    CollectStats(CollectStatsInput),
    DeleteUser(DeleteUserInput),
    Diagnostic(DiagnosticInput),
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
    fn maintenance_kinds_are_admin_only_and_run_on_cpu() {
        for k in [
            JobKind::Reindex,
            JobKind::IntegrityCheck,
            JobKind::EmbeddingRepair,
            JobKind::EmbeddingMigration,
        ] {
            assert!(k.admin_only(), "{k}");
            assert_eq!(k.default_queue(), QueueName::cpu(), "{k}");
        }
        for k in [JobKind::Retention, JobKind::CollectStats] {
            assert!(k.admin_only(), "{k}");
            assert_eq!(k.default_queue(), QueueName::cpu(), "{k}");
        }
    }
    #[test]
    fn every_kind_parses_back_what_it_stores_and_names_its_section() {
        for k in JobKind::ALL {
            // The smallest payload of each kind.
            let min = match k {
                JobKind::Transcribe | JobKind::Diarize | JobKind::ExtractEmbeddings => {
                    json!({"file_id": uuid::Uuid::nil()})
                }
                JobKind::DeleteUser => json!({"user_id": uuid::Uuid::nil()}),
                _ => json!({}),
            };
            let input = k.parse_input(&min).unwrap();
            assert_eq!(input.kind(), k);
            assert_eq!(k.parse_input(&input.to_value()).unwrap(), input, "{k}");
        }
        assert_eq!(JobKind::Reindex.section(), Some(Section::Reindex));
        assert_eq!(
            JobKind::EmbeddingMigration.section(),
            Some(Section::Migration)
        );
        assert_eq!(JobKind::Transcribe.section(), None);
        for s in Section::ALL {
            assert_eq!(s.as_str().parse::<Section>().unwrap(), s);
        }
        for s in RunState::ALL {
            assert_eq!(s.as_str().parse::<RunState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(
            JobKind::Transcribe.max_runtime(),
            Duration::from_secs(4 * 3600)
        );
    }
}
