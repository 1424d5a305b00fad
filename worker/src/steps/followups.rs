//! Jobs a handler queues after its own work: a reindex of the files whose transcript or
//! speakers it changed, built from the typed payload and submitted through the system's one
//! submission path (`voxfleet_store::submit`).
use uuid::Uuid;
use voxfleet_jobs::{JobInput, ReindexInput, ReindexMode};

use crate::context::JobContext;

/// Queues a reindex of `files` (after their transcript or speakers changed). Best effort: if
/// it cannot be queued the files stay pending, and "reindex pending" picks them up.
pub async fn queue_reindex(ctx: &JobContext, files: &[Uuid]) {
    let input = JobInput::Reindex(ReindexInput {
        mode: ReindexMode::Pending,
        file_ids: Some(files.to_vec()),
        recreate: false,
    });
    let job = voxfleet_store::submit::new_job(&input, ctx.job.job.owner);
    let res = voxfleet_store::submit::record_and_queue(&ctx.rt.pool, &ctx.rt.queue, &[job]).await;
    if let Err(e) = res {
        tracing::warn!(error = %e, ?files, "reindex not queued; the files stay pending");
    }
}
