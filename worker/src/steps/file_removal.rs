//! Removing a tombstoned file (retention, user deletion): its index documents, its storage
//! object when the record owns it and no other record uses it, then its rows (transcript,
//! speakers and voiceprints go with them), in that order, so a crash anywhere leaves the file
//! hidden and the next attempt finishes it.
use voxfleet_jobs::HandlerError;
use voxfleet_store::retention::{self, Doomed};

use crate::context::JobContext;

/// Removes `d`; true when this call deleted its rows (false: someone else finished it).
/// `stall` is the crash drill: stop between the object and the rows (see [`stall`]); `who`
/// names the job in its log line.
pub async fn remove_file(
    ctx: &JobContext,
    d: &Doomed,
    stall_here: bool,
    who: &str,
) -> Result<bool, HandlerError> {
    voxfleet_search::SearchIndex::delete_file(&ctx.rt.search.index, d.id).await?;
    if d.delete_object {
        ctx.rt.speech.media.delete(&d.storage_key).await?;
    }
    if stall_here {
        stall(ctx, who, d).await;
    }
    Ok(retention::finish_delete(&ctx.rt.pool, d.id).await?)
}

/// The crash drill: with `--allow-crash`, wait here (object gone, rows not yet) until the
/// process is killed. Without it the request is ignored.
async fn stall(ctx: &JobContext, who: &str, d: &Doomed) {
    if !ctx.rt.allow_crash {
        tracing::warn!("`stall_after` is honoured only by a worker started with --allow-crash");
        return;
    }
    tracing::warn!(file.id = %d.id, "{who} stalled on request (crash drill): waiting to be killed");
    std::future::pending::<()>().await;
}
