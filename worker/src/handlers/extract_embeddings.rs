//! `extract_embeddings`: (re-)computes the voiceprints of an already diarized file's speakers
//! under one profile, from the stored turns, and queues the file's reindex.
use std::time::Instant;

use serde_json::{Value, json};
use voxfleet_jobs::{ExtractEmbeddingsInput, HandlerError};

use crate::context::JobContext;
use crate::steps::audio::load_file;
use crate::steps::followups::queue_reindex;
use crate::steps::voiceprints::{active_profile, extract_prints};

pub async fn run(ctx: &JobContext, input: ExtractEmbeddingsInput) -> Result<Value, HandlerError> {
    let started = Instant::now();
    let file = load_file(ctx, input.file_id).await?;
    let profile = match input.profile.clone() {
        Some(p) => p,
        None => active_profile(ctx).await?,
    };
    let x = extract_prints(ctx, &file.file, &profile, None, true).await?;
    let rows = x.rows(&profile);
    let written =
        voxfleet_store::speakers::put_embeddings(&ctx.rt.pool, ctx.job.job.id.0, &rows).await?;
    // The speaker index is derived from these rows: bring the file's documents up to date.
    queue_reindex(ctx, &[file.file.id]).await;
    Ok(json!({
        "file_id": file.file.id,
        "profile": profile,
        "model": x.model,
        "dim": x.dim,
        "speakers": x.prints.len(),
        "written": written,
        "too_little_speech": x.prints.iter().filter(|(_, p)| p.is_none()).count(),
        "processing_s": started.elapsed().as_secs_f64(),
    }))
}
