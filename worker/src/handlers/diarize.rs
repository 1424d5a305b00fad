//! `diarize`: who speaks when. Fetch and decode the file (as `transcribe` does), run the
//! segmentation → embedding → clustering pipeline (`voxfleet_speakers::Diarizer`, clustering
//! on the `v4` profile's model) in a blocking thread with progress and cancellation, compute
//! each speaker's voiceprint under every requested profile, name the speakers whose voices
//! match the known-speaker references, and write speakers, turns and voiceprints to PostgreSQL
//! in one transaction (PostgreSQL is where voiceprints live; the search index is derived).
//!
//! `extract_embeddings`: (re-)computes the voiceprints of an already diarized file's speakers
//! under one profile, from the stored turns.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use voxfleet_jobs::{DiarizeInput, ExtractEmbeddingsInput, HandlerError};
use voxfleet_speakers::{
    DiarizeOptions, Progress, SpeakersError, Turn, known_speaker_min_similarity, match_known,
    subsegment::is_narrowband,
};
use voxfleet_store::speakers::{DiarizationWrite, NewEmbedding, NewSpeaker, NewTurn};

use crate::handlers::shared::{
    fetch_audio, join_error, load_file, run_blocking, store_error, superseded,
};
use crate::runtime::JobContext;

/// The profile whose model diarization clusters with (its voiceprints come for free).
const CLUSTER_PROFILE: &str = "v4";

fn speakers_error(e: SpeakersError) -> HandlerError {
    match e {
        SpeakersError::Cancelled => HandlerError::Cancelled,
        SpeakersError::InvalidOptions(m) => HandlerError::permanent("invalid_input", m),
        // A missing or broken model is the operator's to fix (`models fetch`): failing now
        // with its code beats retrying into the same error.
        e => HandlerError::permanent(e.code(), e.to_string()),
    }
}

/// The active embedding profile (the setting), `v4` when unset.
async fn active_profile(ctx: &JobContext) -> Result<String, HandlerError> {
    Ok(
        voxfleet_store::settings::get_embedding_settings(&ctx.rt.pool)
            .await
            .map_err(store_error)?
            .active_profile,
    )
}

/// The parts of `speaker`'s turns where no other speaker talks: what a voiceprint is taken from
/// (overlapped speech would blend two voices). Falls back to all of its turns when nothing is
/// left.
pub fn exclusive_regions(turns: &[Turn], speaker: usize) -> Vec<(f64, f64)> {
    let others: Vec<&Turn> = turns.iter().filter(|t| t.speaker != speaker).collect();
    let own: Vec<(f64, f64)> = turns
        .iter()
        .filter(|t| t.speaker == speaker)
        .map(|t| (t.start, t.end))
        .collect();
    let mut out = Vec::new();
    for &(start, end) in &own {
        let mut pieces = vec![(start, end)];
        for o in &others {
            pieces = pieces
                .into_iter()
                .flat_map(|(s, e)| {
                    if o.end <= s || o.start >= e {
                        vec![(s, e)]
                    } else {
                        [(s, o.start.max(s)), (o.end.min(e), e)]
                            .into_iter()
                            .filter(|(a, b)| b - a > 0.0)
                            .collect()
                    }
                })
                .collect();
        }
        out.extend(pieces);
    }
    if out.iter().map(|(s, e)| e - s).sum::<f64>() < 0.5 {
        return own;
    }
    out
}

/// [`run_blocking`] for speaker work: its progress (a share of the work) is scaled to
/// `total_ms`, its errors mapped to job errors.
async fn blocking_with_progress<T: Send + 'static>(
    ctx: &JobContext,
    total_ms: u64,
    work: impl FnOnce(&mut dyn FnMut(Progress), &AtomicBool) -> Result<T, SpeakersError>
    + Send
    + 'static,
) -> Result<T, HandlerError> {
    run_blocking(ctx, total_ms, move |progress, stop| {
        let mut scaled = |p: Progress| {
            if p.total_ms > 0 {
                progress((p.done_ms as f64 / p.total_ms as f64 * total_ms as f64) as u64);
            }
        };
        work(&mut scaled, stop).map_err(speakers_error)
    })
    .await
}

pub async fn run(ctx: &JobContext, input: DiarizeInput) -> Result<Value, HandlerError> {
    let started = Instant::now();
    let file = load_file(ctx, input.file_id).await?;
    ctx.checkpoint()?;
    let audio = fetch_audio(ctx, &file.file).await?;

    let mut profiles = match &input.profiles {
        Some(p) => p.clone(),
        None => vec![CLUSTER_PROFILE.to_owned(), active_profile(ctx).await?],
    };
    profiles.dedup();
    profiles.sort();
    profiles.dedup();

    // Known speakers' reference clips, decoded now (each a stored file of the caller). The
    // API checked that the submitter may read them; a reference that belongs neither to the
    // job's owner nor to the file's owner is refused here too, with the same answer as one
    // that does not exist.
    let mut references = Vec::new();
    for k in &input.known_speakers {
        let not_found = || {
            HandlerError::permanent(
                "reference_not_found",
                format!(
                    "the reference recording of `{}` ({}) does not exist",
                    k.name, k.file_id
                ),
            )
        };
        let f = load_file(ctx, k.file_id).await.map_err(|e| match e {
            HandlerError::Failed { code, .. } if code == "file_not_found" => not_found(),
            e => e,
        })?;
        if f.file.owner != ctx.job.job.owner && f.file.owner != file.file.owner {
            return Err(not_found());
        }
        let a = fetch_audio(ctx, &f.file).await?;
        references.push((k.name.trim().to_owned(), a.samples));
    }

    let models = ctx.rt.speech.speaker_models.clone();
    let (segmenter, cluster_model) = {
        let models = models.clone();
        tokio::task::spawn_blocking(move || {
            Ok::<_, SpeakersError>((models.segmenter()?, models.profile(CLUSTER_PROFILE)?))
        })
        .await
        .map_err(join_error)?
        .map_err(speakers_error)?
    };
    let opts = DiarizeOptions {
        num_speakers: input.num_speakers.map(|n| n as usize),
        min_speakers: input.min_speakers.map(|n| n as usize),
        max_speakers: input.max_speakers.map(|n| n as usize),
        ..DiarizeOptions::default()
    };
    let total_ms = (audio.duration_s * 1000.0).round() as u64;
    ctx.progress(0, total_ms).await;

    let samples = audio.samples;
    let wanted = profiles.clone();
    let (diarization, prints, names) =
        blocking_with_progress(ctx, total_ms, move |progress, stop| {
            let diarizer =
                voxfleet_speakers::Diarizer::new(segmenter, cluster_model.embedder.clone());
            let d = diarizer.run(&samples, &opts, progress, stop)?;
            // Voiceprints: the clustering model's centroids, and the other profiles' models
            // over each speaker's own (not overlapped) speech.
            let mut prints: Vec<(usize, String, String, Vec<f32>)> = Vec::new();
            for profile in &wanted {
                if profile == CLUSTER_PROFILE {
                    for (i, s) in d.speakers.iter().enumerate() {
                        prints.push((
                            i,
                            profile.clone(),
                            cluster_model.model.clone(),
                            s.embedding.clone(),
                        ));
                    }
                    continue;
                }
                let m = models.profile(profile)?;
                for i in 0..d.speakers.len() {
                    if stop.load(Ordering::Relaxed) {
                        return Err(SpeakersError::Cancelled);
                    }
                    let regions = exclusive_regions(&d.turns, i);
                    if let Some(v) = m.embedder.voiceprint(&samples, &regions)? {
                        prints.push((i, profile.clone(), m.model.clone(), v));
                    }
                }
            }
            let mut known = Vec::new();
            for (name, pcm) in &references {
                let whole = [(0.0, pcm.len() as f64 / 16_000.0)];
                if let Some(v) = cluster_model.embedder.voiceprint(pcm, &whole)? {
                    known.push((name.clone(), v));
                }
            }
            let centroids: Vec<Vec<f32>> = d.speakers.iter().map(|s| s.embedding.clone()).collect();
            // Telephone-band audio (the recording's or a reference's) makes every voice look
            // alike: a stricter bar there.
            let narrowband = !known.is_empty()
                && (is_narrowband(&samples)
                    || references.iter().any(|(_, pcm)| is_narrowband(pcm)));
            let names = match_known(&centroids, &known, known_speaker_min_similarity(narrowband));
            Ok((d, prints, names))
        })
        .await?;
    let processing_s = started.elapsed().as_secs_f64();

    let speakers: Vec<NewSpeaker> = diarization
        .speakers
        .iter()
        .map(|s| NewSpeaker {
            label: s.label.clone(),
            speech_s: s.speech_s,
        })
        .collect();
    let turns: Vec<NewTurn> = diarization
        .turns
        .iter()
        .map(|t| NewTurn {
            start_s: t.start,
            end_s: t.end,
            speaker: t.speaker,
        })
        .collect();
    let embeddings: Vec<NewEmbedding<'_>> = prints
        .iter()
        .map(|(i, profile, model, v)| NewEmbedding {
            speaker: *i,
            profile,
            model,
            vector: v,
        })
        .collect();
    let saved = voxfleet_store::speakers::save_diarization(
        &ctx.rt.pool,
        &DiarizationWrite {
            file_id: file.file.id,
            job_id: ctx.job.job.id.0,
            owner: file.file.owner,
            model: "pyannote-segmentation-3.0",
            speakers: &speakers,
            turns: &turns,
            embeddings: &embeddings,
            names: &names,
            audio_seconds: diarization.duration_s,
            processing_seconds: processing_s,
        },
    )
    .await
    .map_err(store_error)?;
    let Some(ids) = saved else {
        return Err(superseded(file.file.id, "re-diarized"));
    };
    super::reindex::queue_files(ctx, &[file.file.id]).await;
    ctx.progress(total_ms, total_ms).await;
    let rtf = processing_s / diarization.duration_s.max(0.001);
    tracing::info!(job.id = %ctx.job.job.id, file.id = %file.file.id,
        audio_s = diarization.duration_s, speakers = ids.len(), turns = turns.len(), rtf, "diarized");
    let named: Vec<Value> = names
        .iter()
        .map(|(i, n)| json!({"label": speakers[*i].label, "name": n}))
        .collect();
    Ok(json!({
        "file_id": file.file.id,
        "duration_s": diarization.duration_s,
        "speakers": diarization.speakers.iter().zip(&ids).map(|(s, id)| json!({
            "id": id, "label": s.label, "speech_s": s.speech_s,
        })).collect::<Vec<_>>(),
        "turns": turns.len(),
        "profiles": profiles,
        "named": named,
        "processing_s": processing_s,
        "real_time_factor": rtf,
    }))
}

pub async fn extract(
    ctx: &JobContext,
    input: ExtractEmbeddingsInput,
) -> Result<Value, HandlerError> {
    let started = Instant::now();
    let file = load_file(ctx, input.file_id).await?;
    let profile = match input.profile.clone() {
        Some(p) => p,
        None => active_profile(ctx).await?,
    };
    let x = extract_prints(ctx, &file.file, &profile, None, true).await?;
    let rows = x.rows(&profile);
    let written = voxfleet_store::speakers::put_embeddings(&ctx.rt.pool, ctx.job.job.id.0, &rows)
        .await
        .map_err(store_error)?;
    // The speaker index is derived from these rows: bring the file's documents up to date.
    super::reindex::queue_files(ctx, &[file.file.id]).await;
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

/// Voiceprints of one profile extracted from a file's audio.
pub(crate) struct Extracted {
    pub model: String,
    pub dim: usize,
    /// Per speaker; `None` when it has too little clean speech.
    pub prints: Vec<(uuid::Uuid, Option<Vec<f32>>)>,
}

impl Extracted {
    /// `put_embeddings` rows.
    pub fn rows<'a>(&'a self, profile: &'a str) -> Vec<(uuid::Uuid, &'a str, &'a str, &'a [f32])> {
        self.prints
            .iter()
            .filter_map(|(id, v)| v.as_deref().map(|v| (*id, profile, self.model.as_str(), v)))
            .collect()
    }
}

/// Extracts `profile` voiceprints from a diarized file's audio, for its speakers (or only
/// those in `only`), from each speaker's non-overlapped turns. `not_diarized` when the file
/// has no turns; the audio errors of [`fetch_audio`]. With `report`, progress is reported in
/// speakers.
pub(crate) async fn extract_prints(
    ctx: &JobContext,
    file: &voxfleet_store::files::StoredFile,
    profile: &str,
    only: Option<&std::collections::HashSet<uuid::Uuid>>,
    report: bool,
) -> Result<Extracted, HandlerError> {
    let rows = voxfleet_store::speakers::turns(&ctx.rt.pool, file.id)
        .await
        .map_err(store_error)?;
    if rows.is_empty() {
        return Err(HandlerError::permanent(
            "not_diarized",
            format!("file {} has no speakers yet: diarize it first", file.id),
        ));
    }
    ctx.checkpoint()?;
    let audio = fetch_audio(ctx, file).await?;
    // Speakers numbered in order of first turn.
    let mut ids: Vec<uuid::Uuid> = Vec::new();
    let turns: Vec<Turn> = rows
        .iter()
        .map(|r| {
            let speaker = ids
                .iter()
                .position(|&i| i == r.speaker_id)
                .unwrap_or_else(|| {
                    ids.push(r.speaker_id);
                    ids.len() - 1
                });
            Turn {
                start: r.start_s,
                end: r.end_s,
                speaker,
            }
        })
        .collect();
    let wanted: Vec<usize> = (0..ids.len())
        .filter(|&i| only.is_none_or(|o| o.contains(&ids[i])))
        .collect();
    let models = ctx.rt.speech.speaker_models.clone();
    let total = wanted.len() as u64;
    if report {
        ctx.progress(0, total).await;
    }
    let samples = audio.samples;
    let name = profile.to_owned();
    let picked = wanted.clone();
    let (model, dim, prints) = blocking_with_progress(ctx, total, move |progress, stop| {
        let m = models.profile(&name)?;
        let mut prints = Vec::new();
        for (n, &i) in picked.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Err(SpeakersError::Cancelled);
            }
            let regions = exclusive_regions(&turns, i);
            prints.push(m.embedder.voiceprint(&samples, &regions)?);
            if report {
                progress(Progress {
                    done_ms: n as u64 + 1,
                    total_ms: picked.len() as u64,
                });
            }
        }
        Ok((m.model.clone(), m.embedder.dim(), prints))
    })
    .await?;
    Ok(Extracted {
        model,
        dim,
        prints: wanted.iter().map(|&i| ids[i]).zip(prints).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: f64, end: f64, speaker: usize) -> Turn {
        Turn {
            start,
            end,
            speaker,
        }
    }

    #[test]
    fn overlap_is_cut_out_of_voiceprint_regions() {
        let turns = [t(0.0, 5.0, 0), t(4.0, 8.0, 1), t(9.0, 12.0, 0)];
        assert_eq!(exclusive_regions(&turns, 0), [(0.0, 4.0), (9.0, 12.0)]);
        assert_eq!(exclusive_regions(&turns, 1), [(5.0, 8.0)]);
        // All overlapped: the turns themselves.
        let turns = [t(0.0, 2.0, 0), t(0.0, 2.0, 1)];
        assert_eq!(exclusive_regions(&turns, 1), [(0.0, 2.0)]);
    }
}
