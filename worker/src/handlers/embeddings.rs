//! Speaker-embedding maintenance.
//!
//! - `embedding_repair`: puts every speaker missing from a profile's index back: from its
//!   voiceprint in PostgreSQL when one is stored (no audio needed), else re-extracted from
//!   the file's audio. Speakers whose audio is gone are counted as unrepairable.
//! - `embedding_migration` (v3 → v4): extracts a `to` voiceprint for every speaker that lacks
//!   one, file by file, writing each to PostgreSQL (next to the `from` voiceprint, which is
//!   kept) and to the `to` index. It resumes after a stop or a crash: what is done is what
//!   PostgreSQL holds, so a retried or restarted run only does the rest. Speakers that cannot
//!   be migrated are recorded in `embedding_failures` ("retry failed" retries them).
//!   Finalizing (the alias swap) is the control plane's, not a job.
use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};
use uuid::Uuid;
use voxfleet_jobs::{
    EmbeddingMigrationInput, EmbeddingRepairInput, ErrorClass, HandlerError, MigrationAction,
};
use voxfleet_search::{SearchError, SearchIndex, SpeakerDoc, speakers_index};
use voxfleet_store::search::SpeakerRef;

use crate::handlers::diarize::extract_prints;
use crate::handlers::maint::{Run, finish_or_record};
use crate::handlers::shared::store_error;
use crate::runtime::JobContext;
use crate::search_ctx::index_error;

/// The speakers present in `speakers_{profile}` (none when the index does not exist).
async fn indexed_speakers(ctx: &JobContext, profile: &str) -> Result<HashSet<Uuid>, HandlerError> {
    match voxfleet_search::all_keys(&ctx.rt.search.index, &speakers_index(profile)).await {
        Ok(keys) => Ok(keys.into_iter().filter_map(|k| k.speaker_id).collect()),
        Err(SearchError::NoSuchIndex(_)) => Ok(HashSet::new()),
        Err(e) => Err(index_error(e)),
    }
}

async fn active_profile(ctx: &JobContext) -> Result<String, HandlerError> {
    Ok(
        voxfleet_store::settings::get_embedding_settings(&ctx.rt.pool)
            .await
            .map_err(store_error)?
            .active_profile,
    )
}

fn doc(s: &SpeakerRef, profile: &str, model: &str, vector: Vec<f32>) -> SpeakerDoc {
    SpeakerDoc {
        speaker_id: s.id,
        file_id: s.file_id,
        owner: s.owner,
        label: s.label.clone(),
        name: s.name.clone(),
        profile: profile.to_owned(),
        model: model.to_owned(),
        vector,
    }
}

/// Writes speaker documents to `speakers_{profile}`, creating the index if needed.
async fn index_docs(
    ctx: &JobContext,
    profile: &str,
    docs: Vec<SpeakerDoc>,
) -> Result<(), HandlerError> {
    let Some(dim) = docs.first().map(|d| d.vector.len()) else {
        return Ok(());
    };
    let index = &ctx.rt.search.index;
    let active = active_profile(ctx).await?;
    index
        .ensure_speakers(profile, dim, &active)
        .await
        .map_err(index_error)?;
    index
        .upsert_speakers(profile, docs)
        .await
        .map_err(index_error)
}

/// Indexes the stored voiceprints of `speakers`; returns how many.
async fn index_from_db(
    ctx: &JobContext,
    profile: &str,
    speakers: &[&SpeakerRef],
) -> Result<u64, HandlerError> {
    if speakers.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = speakers.iter().map(|s| s.id).collect();
    let prints = voxfleet_store::search::voiceprints(&ctx.rt.pool, profile, &ids)
        .await
        .map_err(store_error)?;
    let docs: Vec<SpeakerDoc> = prints
        .into_iter()
        .filter_map(|v| {
            let s = speakers.iter().find(|s| s.id == v.speaker_id)?;
            Some(doc(s, profile, &v.model, v.vector))
        })
        .collect();
    let n = docs.len() as u64;
    index_docs(ctx, profile, docs).await?;
    Ok(n)
}

/// How re-extracting one file's speakers went.
enum FileOutcome {
    /// Voiceprints written and indexed; the speakers with too little speech for one.
    Done { written: u64, no_speech: Vec<Uuid> },
    /// The audio cannot give voiceprints (gone or undecodable): a permanent error.
    Unusable { code: String, message: String },
}

/// Re-extracts `profile` voiceprints of `speakers` (all of one file) from its audio, stores
/// and indexes them. Retryable errors and cancellation are returned as errors.
async fn reextract(
    ctx: &JobContext,
    profile: &str,
    speakers: &[&SpeakerRef],
) -> Result<FileOutcome, HandlerError> {
    let Some(first) = speakers.first() else {
        return Ok(FileOutcome::Done {
            written: 0,
            no_speech: vec![],
        });
    };
    let Some(file) = voxfleet_store::files::get_file(&ctx.rt.pool, first.file_id)
        .await
        .map_err(store_error)?
    else {
        return Ok(FileOutcome::Unusable {
            code: "file_not_found".into(),
            message: format!("file {} is gone", first.file_id),
        });
    };
    let wanted: HashSet<Uuid> = speakers.iter().map(|s| s.id).collect();
    let x = match extract_prints(ctx, &file.file, profile, Some(&wanted), false).await {
        Ok(x) => x,
        Err(HandlerError::Failed {
            class: ErrorClass::Permanent,
            code,
            message,
        }) => return Ok(FileOutcome::Unusable { code, message }),
        Err(e) => return Err(e),
    };
    let rows = x.rows(profile);
    let written = voxfleet_store::speakers::put_embeddings(&ctx.rt.pool, ctx.job.job.id.0, &rows)
        .await
        .map_err(store_error)? as u64;
    let mut docs = Vec::new();
    let mut no_speech = Vec::new();
    for (id, v) in &x.prints {
        match (v, speakers.iter().find(|s| s.id == *id)) {
            (Some(v), Some(s)) => docs.push(doc(s, profile, &x.model, v.clone())),
            (None, _) => no_speech.push(*id),
            _ => {}
        }
    }
    index_docs(ctx, profile, docs).await?;
    Ok(FileOutcome::Done { written, no_speech })
}

fn by_file<'a>(
    speakers: impl IntoIterator<Item = &'a SpeakerRef>,
) -> BTreeMap<(usize, Uuid), Vec<&'a SpeakerRef>> {
    // Keyed by first appearance, so files are done in the order they were listed.
    let mut order: Vec<Uuid> = Vec::new();
    let mut out: BTreeMap<(usize, Uuid), Vec<&SpeakerRef>> = BTreeMap::new();
    for s in speakers {
        let pos = order
            .iter()
            .position(|f| *f == s.file_id)
            .unwrap_or_else(|| {
                order.push(s.file_id);
                order.len() - 1
            });
        out.entry((pos, s.file_id)).or_default().push(s);
    }
    out
}

#[derive(Default)]
struct RepairCounts {
    speakers: u64,
    indexed_before: u64,
    missing: u64,
    done: u64,
    restored_from_db: u64,
    reextracted: u64,
    unrepairable: u64,
}

impl RepairCounts {
    fn report(&self, profile: &str) -> Value {
        json!({
            "profile": profile,
            "speakers": self.speakers,
            "indexed_before": self.indexed_before,
            "missing": self.missing,
            "done": self.done,
            "restored_from_db": self.restored_from_db,
            "reextracted": self.reextracted,
            "unrepairable": self.unrepairable,
        })
    }
}

pub async fn repair(ctx: &JobContext, input: EmbeddingRepairInput) -> Result<Value, HandlerError> {
    let profile = match input.profile {
        Some(p) => p,
        None => active_profile(ctx).await?,
    };
    let mut c = RepairCounts::default();
    let run = Run::start(ctx, Some("repair"), &c.report(&profile)).await?;
    let res = do_repair(ctx, &run, &profile, &mut c).await;
    finish_or_record(&run, res, || c.report(&profile)).await
}

async fn do_repair(
    ctx: &JobContext,
    run: &Run<'_>,
    profile: &str,
    c: &mut RepairCounts,
) -> Result<Value, HandlerError> {
    let speakers = voxfleet_store::search::speakers_for_profile(&ctx.rt.pool, profile)
        .await
        .map_err(store_error)?;
    let indexed = indexed_speakers(ctx, profile).await?;
    let missing: Vec<&SpeakerRef> = speakers
        .iter()
        .filter(|s| !indexed.contains(&s.id))
        .collect();
    c.speakers = speakers.len() as u64;
    c.indexed_before = c.speakers - missing.len() as u64;
    c.missing = missing.len() as u64;
    let total = c.missing;
    run.progress(0, total, &c.report(profile)).await;
    let (stored, from_audio): (Vec<&SpeakerRef>, Vec<&SpeakerRef>) =
        missing.into_iter().partition(|s| s.has_voiceprint);
    c.restored_from_db = index_from_db(ctx, profile, &stored).await?;
    c.done = stored.len() as u64;
    run.progress(c.done, total, &c.report(profile)).await;
    for (_, group) in by_file(from_audio) {
        if run.stop_requested() {
            return Err(run.stopped(c.done, total, c.report(profile)).await);
        }
        match reextract(ctx, profile, &group).await {
            Ok(FileOutcome::Done { written, no_speech }) => {
                c.reextracted += written;
                c.unrepairable += no_speech.len() as u64;
            }
            Ok(FileOutcome::Unusable { code, message }) => {
                tracing::info!(file.id = %group[0].file_id, code, message, "speakers unrepairable");
                c.unrepairable += group.len() as u64;
            }
            Err(HandlerError::Cancelled) => {
                return Err(run.stopped(c.done, total, c.report(profile)).await);
            }
            Err(e) => return Err(e),
        }
        c.done += group.len() as u64;
        run.progress(c.done, total, &c.report(profile)).await;
    }
    tracing::info!(job.id = %ctx.job.job.id, profile, missing = c.missing, restored = c.restored_from_db, reextracted = c.reextracted, unrepairable = c.unrepairable, "embedding repair done");
    Ok(run.finish("completed", c.report(profile)).await)
}

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

pub async fn migrate(
    ctx: &JobContext,
    input: EmbeddingMigrationInput,
) -> Result<Value, HandlerError> {
    let mut c = MigrationCounts::default();
    let run = Run::start(ctx, Some("migration"), &c.report(&input)).await?;
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
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|f| f.speaker_id)
        .collect();
    if m.action != MigrationAction::Start {
        voxfleet_store::search::clear_failures(pool, to, None)
            .await
            .map_err(store_error)?;
    }
    let speakers = voxfleet_store::search::speakers_for_profile(pool, to)
        .await
        .map_err(store_error)?;
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
                    .await
                    .map_err(store_error)?;
                }
            }
            Ok(FileOutcome::Unusable { code, message }) => {
                tracing::info!(file.id = %group[0].file_id, code, message, "speakers not migrated");
                c.failed += ids.len() as u64;
                voxfleet_store::search::record_failures(pool, to, &ids, &code, &message)
                    .await
                    .map_err(store_error)?;
            }
            Err(HandlerError::Cancelled) => {
                return Err(run.stopped(c.processed, total, c.report(m)).await);
            }
            Err(e) => return Err(e),
        }
        c.processed += ids.len() as u64;
        run.progress(c.processed, total, &c.report(m)).await;
    }
    let remaining_failures = voxfleet_store::search::failures(pool, to)
        .await
        .map_err(store_error)?
        .len();
    let state = if remaining_failures > 0 {
        "stalled"
    } else {
        "completed"
    };
    tracing::info!(job.id = %ctx.job.job.id, to, processed = c.processed, failed = c.failed, state, "embedding migration run done");
    Ok(run.finish(state, c.report(m)).await)
}
