//! Job handlers, one module per kind, named as the kind; this file is the registry that knows
//! them. A payload is parsed into its kind's type here, once. Handlers share code through
//! [`crate::steps`] and never import each other.
use std::future::Future;
use std::pin::Pin;

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
    // Each kind's future is boxed. Their state machines differ in size by orders of magnitude
    // (a transcription keeps its decoding state across awaits); unboxed, the largest would be
    // the size of every attempt's task, copied whole by each `tokio::spawn` (on no-op jobs that
    // memcpy was the worker's largest cost: 14 % of its samples under perf).
    let fut: Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send + '_>> = match input {
        JobInput::Diagnostic(d) => Box::pin(diagnostic::run(ctx, d)),
        JobInput::Transcribe(t) => Box::pin(transcribe::run(ctx, t)),
        JobInput::Diarize(d) => Box::pin(diarize::run(ctx, d)),
        JobInput::ExtractEmbeddings(e) => Box::pin(extract_embeddings::run(ctx, e)),
        JobInput::Reindex(r) => Box::pin(reindex::run(ctx, r)),
        JobInput::IntegrityCheck(i) => Box::pin(integrity_check::run(ctx, i)),
        JobInput::EmbeddingRepair(r) => Box::pin(embedding_repair::run(ctx, r)),
        JobInput::EmbeddingMigration(m) => Box::pin(embedding_migration::run(ctx, m)),
        JobInput::Retention(r) => Box::pin(retention::run(ctx, r)),
        JobInput::CollectStats(c) => Box::pin(collect_stats::run(ctx, c)),
        JobInput::DeleteUser(d) => Box::pin(delete_user::run(ctx, d)),
    };
    fut.await
}
