//! Job handlers, one module per kind. A payload is parsed into its kind's type here, once.
use serde_json::Value;
use voxfleet_jobs::{HandlerError, JobInput};

use crate::runtime::JobContext;

mod diagnostic;
pub mod diarize;
mod embeddings;
mod integrity;
mod maint;
pub mod reindex;
mod retention;
mod shared;
mod stats;
pub mod transcribe;

/// Runs one attempt of the job in `ctx`.
pub async fn run(ctx: &JobContext) -> Result<Value, HandlerError> {
    let job = &ctx.job.job;
    let input = job
        .kind
        .parse_input(&job.input)
        .map_err(|e| HandlerError::permanent("invalid_input", e.to_string()))?;
    match input {
        JobInput::Diagnostic(d) => diagnostic::run(ctx, d).await,
        JobInput::Transcribe(t) => transcribe::run(ctx, t).await,
        JobInput::Diarize(d) => diarize::run(ctx, d).await,
        JobInput::ExtractEmbeddings(e) => diarize::extract(ctx, e).await,
        JobInput::Reindex(r) => reindex::run(ctx, r).await,
        JobInput::IntegrityCheck(i) => integrity::run(ctx, i).await,
        JobInput::EmbeddingRepair(r) => embeddings::repair(ctx, r).await,
        JobInput::EmbeddingMigration(m) => embeddings::migrate(ctx, m).await,
        JobInput::Retention(r) => retention::run(ctx, r).await,
        JobInput::CollectStats(c) => stats::collect(ctx, c).await,
    }
}
