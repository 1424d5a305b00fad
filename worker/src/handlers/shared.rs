//! What the model-job handlers share: loading the stored file a job names, fetching and
//! decoding its audio, running model work in a blocking thread with progress and a stop flag,
//! and the error codes these steps fail with.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use voxfleet_audio::{Audio, AudioError, DecodeOptions};
use voxfleet_jobs::HandlerError;
use voxfleet_store::files::{FileRecord, StoredFile};
use voxfleet_store::media::MediaError;

use crate::runtime::JobContext;

pub(crate) fn audio_error(e: AudioError) -> HandlerError {
    if e.is_permanent() {
        HandlerError::permanent(e.code(), e.to_string())
    } else {
        HandlerError::retryable(e.code(), e.to_string())
    }
}

/// Storage failed (retryable). Its detail, which may name host paths or bucket URLs, goes to
/// the log; the job's error says only what happened.
pub(crate) fn storage_error(e: MediaError) -> HandlerError {
    tracing::warn!(error = %e, "media storage error");
    HandlerError::retryable("storage_unavailable", "media storage is unavailable")
}

pub(crate) fn store_error(e: voxfleet_store::StoreError) -> HandlerError {
    HandlerError::retryable("database_unavailable", e.to_string())
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> HandlerError {
    if e.is_panic() {
        HandlerError::permanent("handler_panic", "a model thread panicked")
    } else {
        HandlerError::retryable("internal", e.to_string())
    }
}

/// Sets the stop flag when dropped: the blocking work sees it at its next check.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Fetches a stored file to a spool file and decodes it to 16 kHz mono off the runtime
/// (`file_missing` when its object is gone; the decoder's codes for bad audio).
pub async fn fetch_audio(ctx: &JobContext, file: &StoredFile) -> Result<Audio, HandlerError> {
    let sp = &ctx.rt.speech;
    // Removed when `local` drops.
    let local = tempfile::NamedTempFile::new_in(&sp.spool_dir)
        .map_err(|e| HandlerError::retryable("spool_failed", e.to_string()))?
        .into_temp_path();
    match sp.media.download_to(&file.storage_key, &local).await {
        Ok(_) => {}
        Err(MediaError::NotFound(k)) => {
            // The store's own path (for local storage, an absolute host path) goes to the
            // log, not into the job's error, which its owner reads.
            tracing::warn!(file.id = %file.id, object = %k, "a file's storage object is gone");
            return Err(HandlerError::permanent(
                "file_missing",
                format!(
                    "the stored recording of file {} is gone from storage",
                    file.id
                ),
            ));
        }
        Err(e) => return Err(storage_error(e)),
    }
    ctx.checkpoint()?;
    let opts = DecodeOptions {
        max_duration: Some(sp.max_audio),
    };
    let path = local.to_path_buf();
    let audio = tokio::task::spawn_blocking(move || voxfleet_audio::decode_file(&path, &opts))
        .await
        .map_err(join_error)?
        .map_err(audio_error)?;
    drop(local);
    ctx.checkpoint()?;
    Ok(audio)
}

/// The stored file a job names (`file_not_found` when it is gone).
pub async fn load_file(ctx: &JobContext, id: uuid::Uuid) -> Result<FileRecord, HandlerError> {
    voxfleet_store::files::get_file(&ctx.rt.pool, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            HandlerError::permanent("file_not_found", format!("file {id} does not exist"))
        })
}

/// Runs model work in a blocking thread. `work` gets a progress sink (audio milliseconds done;
/// reported to the job, clamped to `total_ms`, for the API's ETA) and a stop flag that is set
/// when the job is cancelled or this future is dropped (a job timeout, a drain): it checks the
/// flag between steps.
pub(crate) async fn run_blocking<T: Send + 'static>(
    ctx: &JobContext,
    total_ms: u64,
    work: impl FnOnce(&dyn Fn(u64), &AtomicBool) -> Result<T, HandlerError> + Send + 'static,
) -> Result<T, HandlerError> {
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let (ptx, mut prx) = watch::channel::<Option<u64>>(None);
    let flag = stop.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let progress = |done_ms: u64| {
            let _ = ptx.send(Some(done_ms));
        };
        work(&progress, &flag)
    });
    loop {
        tokio::select! {
            res = &mut task => return res.map_err(join_error)?,
            changed = prx.changed() => {
                if changed.is_ok() {
                    let done = *prx.borrow_and_update();
                    if let Some(done) = done {
                        ctx.progress(done.min(total_ms), total_ms).await;
                    }
                }
            }
            _ = ctx.cancel.cancelled(), if !stop.load(Ordering::Relaxed) => {
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// A result that must not be written: the file was deleted, or a newer job of the same kind
/// took it over, while this one ran (`what`: "re-transcribed", "re-diarized").
pub(crate) fn superseded(file: uuid::Uuid, what: &str) -> HandlerError {
    HandlerError::permanent(
        "superseded",
        format!("file {file} was deleted or {what} by a newer job meanwhile"),
    )
}
