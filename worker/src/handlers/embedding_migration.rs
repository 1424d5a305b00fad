//! `embedding_migration` (v3 → v4): extracts a `to` voiceprint for every speaker that lacks
//! one, file by file, writing each to PostgreSQL (next to the `from` voiceprint, which is
//! kept) and to the `to` index. It resumes after a stop or a crash: what is done is what
//! PostgreSQL holds, so a retried or restarted run only does the rest. Speakers that cannot be
//! migrated are recorded in `embedding_failures` ("retry failed" retries them). Finalizing
//! (the alias swap) is the control plane's, not a job.
use std::collections::HashSet;

use serde_json::{Value, json};
use uuid::Uuid;
use voxfleet_jobs::{EmbeddingMigrationInput, HandlerError, MigrationAction, RunState, Section};
use voxfleet_store::search::SpeakerRef;

use crate::context::JobContext;
use crate::steps::section_run::{Run, finish_or_record};
use crate::steps::voiceprint_index::{
    FileOutcome, by_file, index_from_db, indexed_speakers, reextract,
};

#[derive(Default)]
struct MigrationCounts {
    speakers: u64,
    total: u64,
    processed: u64,
    written: u64,
    failed: u64,
    skipped_failed: u64,
    indexed_from_db: u64,
}

impl MigrationCounts {
    fn report(&self, m: &EmbeddingMigrationInput) -> Value {
        json!({
            "action": m.action,
            "from_profile": m.from_profile,
            "to_profile": m.to_profile,
            "speakers": self.speakers,
            "total": self.total,
            "processed": self.processed,
            "written": self.written,
            "failed": self.failed,
            "skipped_failed": self.skipped_failed,
            "indexed_from_db": self.indexed_from_db,
        })
    }
}

pub async fn run(ctx: &JobContext, input: EmbeddingMigrationInput) -> Result<Value, HandlerError> {
    let mut c = MigrationCounts::default();
    let run = Run::start(ctx, Some(Section::Migration), &c.report(&input)).await?;
    let res = do_migrate(ctx, &run, &input, &mut c).await;
    finish_or_record(&run, res, || c.report(&input)).await
}

async fn do_migrate(
    ctx: &JobContext,
    run: &Run<'_>,
    m: &EmbeddingMigrationInput,
    c: &mut MigrationCounts,
) -> Result<Value, HandlerError> {
    let pool = &ctx.rt.pool;
    let to = m.to_profile.as_str();
    let previously_failed: HashSet<Uuid> = voxfleet_store::search::failures(pool, to)
        .await?
        .into_iter()
        .map(|f| f.speaker_id)
        .collect();
    if m.action != MigrationAction::Start {
        voxfleet_store::search::clear_failures(pool, to, None).await?;
    }
    let speakers = voxfleet_store::search::speakers_for_profile(pool, to).await?;
    c.speakers = speakers.len() as u64;
    let todo: Vec<&SpeakerRef> = speakers
        .iter()
        .filter(|s| match m.action {
            MigrationAction::Start => !s.has_voiceprint && !previously_failed.contains(&s.id),
            MigrationAction::RetryFailed => !s.has_voiceprint,
            MigrationAction::ForceReextract => true,
        })
        .collect();
    if m.action == MigrationAction::Start {
        c.skipped_failed = speakers
            .iter()
            .filter(|s| !s.has_voiceprint && previously_failed.contains(&s.id))
            .count() as u64;
    }
    // Voiceprints already in PostgreSQL but not in the index (a run that died between the two
    // writes, or diarizations made meanwhile) are indexed first, from the database.
    let todo_ids: HashSet<Uuid> = todo.iter().map(|s| s.id).collect();
    let indexed = indexed_speakers(ctx, to).await?;
    let unindexed: Vec<&SpeakerRef> = speakers
        .iter()
        .filter(|s| s.has_voiceprint && !indexed.contains(&s.id) && !todo_ids.contains(&s.id))
        .collect();
    c.indexed_from_db = index_from_db(ctx, to, &unindexed).await?;
    c.total = todo.len() as u64;
    let total = c.total;
    run.progress(0, total, &c.report(m)).await;
    for (_, group) in by_file(todo) {
        if run.stop_requested() {
            return Err(run.stopped(c.processed, total, c.report(m)).await);
        }
        let ids: Vec<Uuid> = group.iter().map(|s| s.id).collect();
        match reextract(ctx, to, &group).await {
            Ok(FileOutcome::Done { written, no_speech }) => {
                c.written += written;
                if !no_speech.is_empty() {
                    c.failed += no_speech.len() as u64;
                    voxfleet_store::search::record_failures(
                        pool,
                        to,
                        &no_speech,
                        "too_little_speech",
                        "under 0.5 s of clean speech: no voiceprint can be computed",
                    )
                    .await?;
                }
            }
            Ok(FileOutcome::Unusable { code, message }) => {
                tracing::info!(file.id = %group[0].file_id, code, message, "speakers not migrated");
                c.failed += ids.len() as u64;
                voxfleet_store::search::record_failures(pool, to, &ids, &code, &message).await?;
            }
            Err(HandlerError::Cancelled) => {
                return Err(run.stopped(c.processed, total, c.report(m)).await);
            }
            Err(e) => return Err(e),
        }
        c.processed += ids.len() as u64;
        run.progress(c.processed, total, &c.report(m)).await;
    }
    let remaining_failures = voxfleet_store::search::failures(pool, to).await?.len();
    let state = if remaining_failures > 0 {
        RunState::Stalled
    } else {
        RunState::Completed
    };
    tracing::info!(job.id = %ctx.job.job.id, to, processed = c.processed, failed = c.failed, state = state.as_str(), "embedding migration run done");
    Ok(run.finish(state, c.report(m)).await)
}
