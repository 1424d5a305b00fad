//! `transcribe`: fetch the file from media storage, decode it to 16 kHz mono (off the async
//! runtime), run Whisper from the process's model cache (loaded once, reused by every job),
//! and write the segments and the usage to PostgreSQL in one transaction.
//!
//! Progress is audio milliseconds done of the total, reported after each 30 s window (the
//! API turns it into an ETA). Cancellation, a job timeout or a drain stop the decoder between
//! windows: the flag is set by a guard, so even a dropped handler future stops its thread.
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{Value, json};
use voxfleet_asr::{AsrError, Progress, TranscribeOptions};
use voxfleet_jobs::{HandlerError, Task, TranscribeInput};
use voxfleet_store::files::{SegmentRow, TranscriptWrite, WordRow};

use crate::context::JobContext;
use crate::steps::audio::{fetch_audio, load_file, superseded};
use crate::steps::blocking::run_blocking;
use crate::steps::errors::join_error;
use crate::steps::followups::queue_reindex;

pub async fn run(ctx: &JobContext, input: TranscribeInput) -> Result<Value, HandlerError> {
    let sp = &ctx.rt.speech;
    let started = Instant::now();
    let file = load_file(ctx, input.file_id).await?;
    ctx.checkpoint()?;

    let audio = fetch_audio(ctx, &file.file).await?;

    let model_name = input
        .model
        .clone()
        .unwrap_or_else(|| sp.default_model.clone());
    let use_vad = input.vad.unwrap_or(true);
    let models = sp.models.clone();
    let name = model_name.clone();
    let (engine, vad) = tokio::task::spawn_blocking(move || {
        let engine = models.whisper(&name)?;
        let vad = if use_vad { Some(models.vad()?) } else { None };
        Ok::<_, AsrError>((engine, vad))
    })
    .await
    .map_err(join_error)??;

    let opts = TranscribeOptions {
        language: input.language.clone(),
        beam_size: input.beam_size.unwrap_or(1) as usize,
        temperature: input.temperature,
        initial_prompt: input.prompt.clone(),
        vad: use_vad,
        batched: input.batched.unwrap_or(sp.batched),
        word_timestamps: input.word_timestamps.unwrap_or(false),
        translate: input.task == Some(Task::Translate),
        ..TranscribeOptions::default()
    };
    let total_ms = (audio.duration_s * 1000.0).round() as u64;
    if let Err(e) = ctx.rt.queue.reset_text(&ctx.job).await {
        tracing::debug!(error = %e, "resetting the partial transcript failed");
    }
    ctx.progress(0, total_ms).await;

    // Each window's finished text goes to Redis in order, for clients that stream it.
    let (text_tx, mut text_rx) = tokio::sync::mpsc::unbounded_channel::<(String, u64)>();
    let (queue, claimed) = (ctx.rt.queue.clone(), ctx.job.clone());
    let text_writer = tokio::spawn(async move {
        while let Some((text, done)) = text_rx.recv().await {
            if let Err(e) = queue.append_text(&claimed, &text, done, total_ms).await {
                tracing::debug!(error = %e, "appending to the partial transcript failed");
            }
        }
    });

    let samples = audio.samples;
    let transcript = run_blocking(ctx, total_ms, move |progress, stop| {
        let mut on_progress = |p: &Progress| {
            let done = (p.processed_s * 1000.0).round() as u64;
            if !p.new_text.is_empty() {
                let _ = text_tx.send((p.new_text.clone(), done));
            }
            progress(done);
            if stop.load(Ordering::Relaxed) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        engine
            .transcribe(&samples, &opts, vad.as_deref(), &mut on_progress)
            .map_err(HandlerError::from)
    })
    .await;
    // The sender went with the closure: the writer ends once its queue is written.
    let _ = text_writer.await;
    let transcript = transcript?;
    let processing_s = started.elapsed().as_secs_f64();

    let rows: Vec<SegmentRow> = transcript
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| SegmentRow {
            idx: i as i32,
            start_s: s.start,
            end_s: s.end,
            text: s.text.trim().to_owned(),
            avg_logprob: s.avg_logprob,
            no_speech_prob: s.no_speech_prob,
            temperature: s.temperature,
            compression_ratio: s.compression_ratio,
            language: transcript.language.clone(),
            words: (!s.words.is_empty()).then(|| {
                s.words
                    .iter()
                    .map(|w| WordRow {
                        word: w.word.clone(),
                        start: w.start,
                        end: w.end,
                        probability: w.probability,
                    })
                    .collect()
            }),
        })
        .collect();
    let saved = voxfleet_store::files::save_transcript(
        &ctx.rt.pool,
        &TranscriptWrite {
            file: file.file.id,
            job: ctx.job.job.id.0,
            owner: file.file.owner,
            model: &model_name,
            language: &transcript.language,
            duration_s: transcript.duration_s,
            processing_s,
            segments: &rows,
        },
    )
    .await?;
    if !saved {
        return Err(superseded(file.file.id, "re-transcribed"));
    }
    queue_reindex(ctx, &[file.file.id]).await;
    ctx.progress(total_ms, total_ms).await;
    let text = transcript.text();
    let preview: String = text.chars().take(200).collect();
    tracing::info!(job.id = %ctx.job.job.id, file.file.id = %file.file.id, model = %model_name,
        audio_s = transcript.duration_s, segments = rows.len(),
        rtf = processing_s / transcript.duration_s.max(0.001), "transcribed");
    Ok(json!({
        "file_id": file.file.id,
        "model": model_name,
        "language": transcript.language,
        "duration_s": transcript.duration_s,
        "segments": rows.len(),
        "processing_s": processing_s,
        "real_time_factor": processing_s / transcript.duration_s.max(0.001),
        "text_preview": preview,
    }))
}
