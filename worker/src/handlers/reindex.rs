//! `reindex`: rebuilds files' search documents from PostgreSQL — transcript chunks (about 200
//! words with 40 of overlap, embedded with the search setting's text model) and the speakers'
//! voiceprints under every profile — in batches of files. Each file's old documents are
//! replaced in the same write, so stale chunks of a re-transcribed file go. Mode `all` covers
//! every file, `pending` the files whose documents are missing or older than their rows;
//! `file_ids` is what a finished transcription or diarization queues for its file.
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use voxfleet_jobs::{
    EMBEDDING_PROFILES, HandlerError, ReindexInput, ReindexMode, RunState, Section,
};
use voxfleet_search::{ChunkDoc, SearchIndex, SpeakerDoc, chunk_id};
use voxfleet_store::search::IndexFile;
use voxfleet_textembed::{ChunkOptions, TextEmbedder, TimedText, chunk_transcript};

use crate::context::JobContext;
use crate::steps::blocking::run_blocking;
use crate::steps::errors::join_error;
use crate::steps::section_run::{Run, finish_or_record};
use crate::steps::voiceprints::active_profile;

/// Files per index write.
const BATCH_FILES: usize = 8;
/// Texts per embedding call (the stop flag is checked between calls).
const EMBED_BATCH: usize = 32;

#[derive(Default)]
struct Counts {
    files: u64,
    done: u64,
    indexed: u64,
    chunks: u64,
    speakers: u64,
    failed: Vec<Value>,
}

impl Counts {
    fn report(&self, mode: &str, model: &str) -> Value {
        json!({
            "mode": mode,
            "model": model,
            "files_total": self.files,
            "files_done": self.done,
            "files_indexed": self.indexed,
            "chunks": self.chunks,
            "speakers": self.speakers,
            "failed": self.failed,
        })
    }
}

pub async fn run(ctx: &JobContext, input: ReindexInput) -> Result<Value, HandlerError> {
    let pool = &ctx.rt.pool;
    let settings = voxfleet_store::settings::get_search_settings(pool).await?;
    let model = settings.model;
    let mode = match (&input.file_ids, input.mode) {
        (Some(_), _) => "files",
        (None, ReindexMode::All) => "all",
        (None, ReindexMode::Pending) => "pending",
    };
    let section = input.file_ids.is_none().then_some(Section::Reindex);
    let run = Run::start(ctx, section, &Counts::default().report(mode, &model)).await?;
    let mut counts = Counts::default();
    let res = reindex(ctx, &run, &input, mode, &model, &mut counts).await;
    finish_or_record(&run, res, || counts.report(mode, &model)).await
}

async fn reindex(
    ctx: &JobContext,
    run: &Run<'_>,
    input: &ReindexInput,
    mode: &str,
    model: &str,
    counts: &mut Counts,
) -> Result<Value, HandlerError> {
    let pool = &ctx.rt.pool;
    let search = ctx.rt.search.clone();
    let name = model.to_owned();
    let s = search.clone();
    let text = tokio::task::spawn_blocking(move || s.text_model(&name))
        .await
        .map_err(join_error)??;
    let index = &search.index;
    if input.recreate {
        index.recreate_chunks(text.dim()).await?;
        voxfleet_store::search::mark_all_pending(pool).await?;
    } else {
        index.ensure_chunks(text.dim()).await?;
    }
    let files = match (&input.file_ids, input.mode) {
        (Some(ids), _) => voxfleet_store::search::files_by_id(pool, ids).await,
        (None, m) => voxfleet_store::search::indexable_files(pool, m == ReindexMode::Pending).await,
    }?;
    let active = active_profile(ctx).await?;
    counts.files = files.len() as u64;
    let total = counts.files;
    run.progress(0, total, &counts.report(mode, model)).await;
    let mut speaker_indices: HashSet<String> = HashSet::new();
    for batch in files.chunks(BATCH_FILES) {
        if run.stop_requested() {
            return Err(run
                .stopped(counts.done, total, counts.report(mode, model))
                .await);
        }
        let prepared = prepare(ctx, batch).await?;
        let texts: Vec<String> = prepared
            .iter()
            .flat_map(|p| p.chunks.iter().map(|c| c.text.clone()))
            .collect();
        let vectors = match embed(ctx, text.clone(), texts).await {
            Ok(v) => v,
            Err(HandlerError::Cancelled) => {
                return Err(run
                    .stopped(counts.done, total, counts.report(mode, model))
                    .await);
            }
            Err(e) => return Err(e),
        };
        let mut vectors = vectors.into_iter();
        let mut chunk_docs = Vec::new();
        for p in &prepared {
            let docs: Vec<ChunkDoc> = p
                .chunks
                .iter()
                .zip(vectors.by_ref())
                .map(|(c, v)| ChunkDoc {
                    id: chunk_id(p.file.id, c.seq),
                    file_id: p.file.id,
                    owner: p.file.owner,
                    seq: c.seq,
                    start_s: c.start_s,
                    end_s: c.end_s,
                    speakers: c.speakers.clone(),
                    text: c.text.clone(),
                    model: model.to_owned(),
                    vector: v,
                })
                .collect();
            counts.chunks += docs.len() as u64;
            chunk_docs.push((p.file.id, docs));
        }
        index.replace_chunks(chunk_docs).await?;
        for profile in EMBEDDING_PROFILES {
            let mut per_file = Vec::new();
            for p in &prepared {
                let docs: Vec<SpeakerDoc> = p
                    .speakers
                    .iter()
                    .filter(|d| d.profile == profile)
                    .cloned()
                    .collect();
                if let Some(d) = docs.first()
                    && speaker_indices.insert(profile.to_owned())
                {
                    index
                        .ensure_speakers(profile, d.vector.len(), &active)
                        .await?;
                }
                counts.speakers += docs.len() as u64;
                per_file.push((p.file.id, docs));
            }
            if speaker_indices.contains(profile) {
                index.replace_speakers(profile, per_file).await?;
            }
        }
        for p in &prepared {
            voxfleet_store::search::mark_indexed(
                pool,
                p.file.id,
                p.file.index_version,
                model,
                p.chunks.len(),
            )
            .await?;
            counts.indexed += 1;
        }
        counts.done += batch.len() as u64;
        run.progress(counts.done, total, &counts.report(mode, model))
            .await;
    }
    let mut report = counts.report(mode, model);
    let secs = run.started.elapsed().as_secs_f64().max(1e-6);
    report["chunks_per_s"] = json!(counts.chunks as f64 / secs);
    tracing::info!(job.id = %ctx.job.job.id, mode, files = counts.indexed, chunks = counts.chunks, "reindexed");
    Ok(run.finish(RunState::Completed, report).await)
}

/// A file's rows, turned into chunk texts and speaker documents.
struct Prepared {
    file: IndexFile,
    chunks: Vec<voxfleet_textembed::Chunk>,
    speakers: Vec<SpeakerDoc>,
}

async fn prepare(ctx: &JobContext, batch: &[IndexFile]) -> Result<Vec<Prepared>, HandlerError> {
    let pool = &ctx.rt.pool;
    let mut out = Vec::with_capacity(batch.len());
    for f in batch {
        let segments = voxfleet_store::files::segments(pool, f.id).await?;
        let turns = voxfleet_store::speakers::turns(pool, f.id).await?;
        let timed: Vec<TimedText> = segments
            .into_iter()
            .map(|s| TimedText {
                start_s: s.start_s,
                end_s: s.end_s,
                text: s.text,
            })
            .collect();
        let turns: Vec<voxfleet_textembed::Turn> = turns
            .into_iter()
            .map(|t| voxfleet_textembed::Turn {
                start_s: t.start_s,
                end_s: t.end_s,
                speaker: t.name.unwrap_or(t.label),
            })
            .collect();
        let chunks = chunk_transcript(&timed, &turns, &ChunkOptions::default())?;
        let speakers = voxfleet_store::speakers::file_speakers(pool, f.id).await?;
        let mut docs = Vec::new();
        for profile in EMBEDDING_PROFILES {
            for v in voxfleet_store::speakers::file_voiceprints(pool, f.id, profile).await? {
                let Some(s) = speakers.iter().find(|s| s.id == v.speaker_id) else {
                    continue;
                };
                docs.push(SpeakerDoc {
                    speaker_id: s.id,
                    file_id: f.id,
                    owner: s.owner,
                    label: s.label.clone(),
                    name: s.name.clone(),
                    profile: v.profile,
                    model: v.model,
                    vector: v.vector,
                });
            }
        }
        out.push(Prepared {
            file: f.clone(),
            chunks,
            speakers: docs,
        });
    }
    Ok(out)
}

/// Embeds texts in a blocking thread, checking the job's stop flag between batches.
async fn embed(
    ctx: &JobContext,
    model: Arc<TextEmbedder>,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, HandlerError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    run_blocking(ctx, 0, move |_, stop: &AtomicBool| {
        let mut out = Vec::with_capacity(texts.len());
        for part in texts.chunks(EMBED_BATCH) {
            if stop.load(Ordering::Relaxed) {
                return Err(HandlerError::Cancelled);
            }
            let refs: Vec<&str> = part.iter().map(String::as_str).collect();
            out.extend(model.embed(&refs)?);
        }
        Ok(out)
    })
    .await
}
