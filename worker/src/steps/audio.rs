//! The stored file a job names and its audio: loaded, fetched to a spool file and decoded to
//! 16 kHz mono off the async runtime.
use voxfleet_audio::{Audio, DecodeOptions};
use voxfleet_jobs::HandlerError;
use voxfleet_store::files::{FileRecord, StoredFile};
use voxfleet_store::media::MediaError;

use crate::context::JobContext;
use crate::steps::errors::join_error;

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
        Err(e) => return Err(e.into()),
    }
    ctx.checkpoint()?;
    let opts = DecodeOptions {
        max_duration: Some(sp.max_audio),
    };
    let path = local.to_path_buf();
    let audio = tokio::task::spawn_blocking(move || voxfleet_audio::decode_file(&path, &opts))
        .await
        .map_err(join_error)??;
    drop(local);
    ctx.checkpoint()?;
    Ok(audio)
}

/// The stored file a job names (`file_not_found` when it is gone).
pub async fn load_file(ctx: &JobContext, id: uuid::Uuid) -> Result<FileRecord, HandlerError> {
    voxfleet_store::files::get_file(&ctx.rt.pool, id)
        .await?
        .ok_or_else(|| {
            HandlerError::permanent("file_not_found", format!("file {id} does not exist"))
        })
}

/// A result that must not be written: the file was deleted, or a newer job of the same kind
/// took it over, while this one ran (`what`: "re-transcribed", "re-diarized").
pub fn superseded(file: uuid::Uuid, what: &str) -> HandlerError {
    HandlerError::permanent(
        "superseded",
        format!("file {file} was deleted or {what} by a newer job meanwhile"),
    )
}
