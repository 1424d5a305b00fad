//! `embedding_repair`: puts every speaker missing from a profile's index back: from its
//! voiceprint in PostgreSQL when one is stored (no audio needed), else re-extracted from the
//! file's audio. Speakers whose audio is gone are counted as unrepairable.
use serde_json::{Value, json};
use voxfleet_jobs::{EmbeddingRepairInput, HandlerError, RunState, Section};
use voxfleet_store::search::SpeakerRef;

use crate::context::JobContext;
use crate::steps::section_run::{Run, finish_or_record};
use crate::steps::voiceprint_index::{
    FileOutcome, by_file, index_from_db, indexed_speakers, reextract,
};
use crate::steps::voiceprints::active_profile;

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

pub async fn run(ctx: &JobContext, input: EmbeddingRepairInput) -> Result<Value, HandlerError> {
    let profile = match input.profile {
        Some(p) => p,
        None => active_profile(ctx).await?,
    };
    let mut c = RepairCounts::default();
    let run = Run::start(ctx, Some(Section::Repair), &c.report(&profile)).await?;
    let res = do_repair(ctx, &run, &profile, &mut c).await;
    finish_or_record(&run, res, || c.report(&profile)).await
}

async fn do_repair(
    ctx: &JobContext,
    run: &Run<'_>,
    profile: &str,
    c: &mut RepairCounts,
) -> Result<Value, HandlerError> {
    let speakers = voxfleet_store::search::speakers_for_profile(&ctx.rt.pool, profile).await?;
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
    Ok(run.finish(RunState::Completed, c.report(profile)).await)
}
