//! Voiceprints into a profile's speaker index, for the embedding repair and migration jobs:
//! which speakers an index holds, indexing stored voiceprints, and re-extracting a file's
//! speakers from its audio when none is stored.
use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;
use voxfleet_jobs::{ErrorClass, HandlerError};
use voxfleet_search::{SearchError, SearchIndex, SpeakerDoc, speakers_index};
use voxfleet_store::search::SpeakerRef;

use crate::context::JobContext;
use crate::steps::voiceprints::{active_profile, extract_prints};

/// The speakers present in `speakers_{profile}` (none when the index does not exist).
pub async fn indexed_speakers(
    ctx: &JobContext,
    profile: &str,
) -> Result<HashSet<Uuid>, HandlerError> {
    match voxfleet_search::all_keys(&ctx.rt.search.index, &speakers_index(profile)).await {
        Ok(keys) => Ok(keys.into_iter().filter_map(|k| k.speaker_id).collect()),
        Err(SearchError::NoSuchIndex(_)) => Ok(HashSet::new()),
        Err(e) => Err(e.into()),
    }
}

pub fn doc(s: &SpeakerRef, profile: &str, model: &str, vector: Vec<f32>) -> SpeakerDoc {
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
pub async fn index_docs(
    ctx: &JobContext,
    profile: &str,
    docs: Vec<SpeakerDoc>,
) -> Result<(), HandlerError> {
    let Some(dim) = docs.first().map(|d| d.vector.len()) else {
        return Ok(());
    };
    let index = &ctx.rt.search.index;
    let active = active_profile(ctx).await?;
    index.ensure_speakers(profile, dim, &active).await?;
    index
        .upsert_speakers(profile, docs)
        .await
        .map_err(HandlerError::from)
}

/// Indexes the stored voiceprints of `speakers`; returns how many.
pub async fn index_from_db(
    ctx: &JobContext,
    profile: &str,
    speakers: &[&SpeakerRef],
) -> Result<u64, HandlerError> {
    if speakers.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = speakers.iter().map(|s| s.id).collect();
    let prints = voxfleet_store::search::voiceprints(&ctx.rt.pool, profile, &ids).await?;
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
pub enum FileOutcome {
    /// Voiceprints written and indexed; the speakers with too little speech for one.
    Done { written: u64, no_speech: Vec<Uuid> },
    /// The audio cannot give voiceprints (gone or undecodable): a permanent error.
    Unusable { code: String, message: String },
}

/// Re-extracts `profile` voiceprints of `speakers` (all of one file) from its audio, stores
/// and indexes them. Retryable errors and cancellation are returned as errors.
pub async fn reextract(
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
    let Some(file) = voxfleet_store::files::get_file(&ctx.rt.pool, first.file_id).await? else {
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
        .await? as u64;
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

pub fn by_file<'a>(
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
