//! Job handlers, one module per kind, named as the kind; this file is the registry that knows
//! them. A payload is parsed into its kind's type here, once. Handlers share code through
//! [`crate::steps`] and never import each other.
use serde_json::Value;
use voxfleet_jobs::{HandlerError, JobInput};

use crate::context::JobContext;

mod collect_stats;
mod delete_user;
mod diagnostic;
mod diarize;
mod embedding_migration;
mod embedding_repair;
mod extract_embeddings;
mod integrity_check;
mod reindex;
mod retention;
mod transcribe;

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
        JobInput::ExtractEmbeddings(e) => extract_embeddings::run(ctx, e).await,
        JobInput::Reindex(r) => reindex::run(ctx, r).await,
        JobInput::IntegrityCheck(i) => integrity_check::run(ctx, i).await,
        JobInput::EmbeddingRepair(r) => embedding_repair::run(ctx, r).await,
        JobInput::EmbeddingMigration(m) => embedding_migration::run(ctx, m).await,
        JobInput::Retention(r) => retention::run(ctx, r).await,
        JobInput::CollectStats(c) => collect_stats::run(ctx, c).await,
        JobInput::DeleteUser(d) => delete_user::run(ctx, d).await,
    }
}
