//! `delete_user`: everything a deleted user owns removed, crash-safe (the worker's
//! `handlers/delete_user.rs`; the account was marked by `DELETE /v1/users/{id}` first).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::spec::{DefaultQueue, JobKind, Kind, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteUserInput {
    pub user_id: Uuid,
    /// A drill for crash safety: after this many files, the worker stops in the middle of the
    /// next file (its object deleted, its rows not yet) and waits to be killed. Honoured only
    /// by a worker started with `--allow-crash`.
    #[serde(default)]
    pub stall_after: Option<u32>,
}

impl Kind for DeleteUserInput {
    const KIND: JobKind = JobKind::DeleteUser;
    const QUEUE: DefaultQueue = DefaultQueue::Cpu;
    const ADMIN_ONLY: bool = true;
    const MAX_RUNTIME_MINUTES: u64 = 720;
    const SECTION: Option<Section> = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::JobInput;

    #[test]
    fn a_user_deletion_names_its_user_and_is_admin_only() {
        let id = Uuid::now_v7();
        let input = JobKind::DeleteUser
            .parse_input(&serde_json::json!({"user_id": id}))
            .unwrap();
        assert_eq!(
            input,
            JobInput::DeleteUser(DeleteUserInput {
                user_id: id,
                stall_after: None
            })
        );
        assert!(JobKind::DeleteUser.admin_only());
        assert!(
            JobKind::DeleteUser
                .parse_input(&serde_json::json!({"user": id}))
                .is_err()
        );
    }
}
