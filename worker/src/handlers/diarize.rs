//! `diarize`: who speaks when. Fetch and decode the file (as `transcribe` does), run the
//! segmentation → embedding → clustering pipeline (`voxfleet_speakers::Diarizer`, clustering
//! on the `v4` profile's model) in a blocking thread with progress and cancellation, compute
//! each speaker's voiceprint under every requested profile, name the speakers whose voices
//! match the known-speaker references, and write speakers, turns and voiceprints to PostgreSQL
//! in one transaction (PostgreSQL is where voiceprints live; the search index is derived).
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{Value, json};
use voxfleet_jobs::{DiarizeInput, HandlerError};
use voxfleet_speakers::{
    DiarizeOptions, SpeakersError, known_speaker_min_similarity, match_known,
    subsegment::is_narrowband,
};
use voxfleet_store::speakers::{DiarizationWrite, NewEmbedding, NewSpeaker, NewTurn};

use crate::context::JobContext;
use crate::steps::audio::{fetch_audio, load_file, superseded};
use crate::steps::errors::join_error;
use crate::steps::followups::queue_reindex;
use crate::steps::voiceprints::{active_profile, blocking_with_progress, exclusive_regions};

/// The profile whose model diarization clusters with (its voiceprints come for free).
const CLUSTER_PROFILE: &str = "v4";

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
        .map_err(join_error)??
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
    .await?;
    let Some(ids) = saved else {
        return Err(superseded(file.file.id, "re-diarized"));
    };
    queue_reindex(ctx, &[file.file.id]).await;
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
