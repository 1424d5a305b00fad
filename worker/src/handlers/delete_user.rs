//! `delete_user`: removes everything a deleted user owns, in the crash-safe order of
//! `voxfleet_store::users` (the account was marked, and its tokens revoked, by
//! `DELETE /v1/users/{id}` before this job was queued).
//!
//! Every file of theirs is tombstoned at once (hidden from the API from then on), then each is
//! removed (index documents, storage object, rows, with its transcript, speakers and
//! voiceprints); last, the tokens and the account go and usage rows and jobs are detached
//! from the person. Every step can run again: a retry after a crash, or the job queued again,
//! finishes what an interrupted attempt left.
use serde_json::{Value, json};
use voxfleet_jobs::{DeleteUserInput, HandlerError};
use voxfleet_store::retention;

use crate::context::JobContext;
use crate::steps::file_removal::remove_file;

pub async fn run(ctx: &JobContext, input: DeleteUserInput) -> Result<Value, HandlerError> {
    let pool = &ctx.rt.pool;
    if !voxfleet_store::users::is_deleting(pool, input.user_id).await? {
        return Err(HandlerError::permanent(
            "not_deleting",
            format!(
                "user {} is not marked for deletion (DELETE /v1/users/{{id}} marks it), or is gone",
                input.user_id
            ),
        ));
    }
    let doomed = retention::tombstone_owner(pool, input.user_id).await?;
    let total = doomed.len() as u64;
    ctx.progress(0, total).await;
    let (mut deleted, mut bytes_freed) = (0u64, 0u64);
    for (i, d) in doomed.iter().enumerate() {
        let stall = input.stall_after.is_some_and(|n| deleted == u64::from(n));
        if remove_file(ctx, d, stall, "user deletion").await? {
            deleted += 1;
            bytes_freed += d.size_bytes.max(0) as u64;
        }
        ctx.progress(i as u64 + 1, total).await;
    }
    let finished = voxfleet_store::users::finish_delete(pool, input.user_id)
        .await?
        .unwrap_or_default();
    tracing::info!(user.id = %input.user_id, files = deleted, "user deleted");
    Ok(json!({
        "user_id": input.user_id,
        "files_deleted": deleted,
        "bytes_freed": bytes_freed,
        "tokens_deleted": finished.tokens_deleted,
        "usage_rows_detached": finished.usage_rows_detached,
        "jobs_detached": finished.jobs_detached,
    }))
}
