//! Job errors for the failures of the crates the handlers call (audio, storage, PostgreSQL, a
//! blocking thread): each with its stable code and retry class.
use voxfleet_audio::AudioError;
use voxfleet_jobs::HandlerError;
use voxfleet_store::media::MediaError;

pub fn audio_error(e: AudioError) -> HandlerError {
    if e.is_permanent() {
        HandlerError::permanent(e.code(), e.to_string())
    } else {
        HandlerError::retryable(e.code(), e.to_string())
    }
}

/// Storage failed (retryable). Its detail, which may name host paths or bucket URLs, goes to
/// the log; the job's error says only what happened.
pub fn storage_error(e: MediaError) -> HandlerError {
    tracing::warn!(error = %e, "media storage error");
    HandlerError::retryable("storage_unavailable", "media storage is unavailable")
}

pub fn store_error(e: voxfleet_store::StoreError) -> HandlerError {
    HandlerError::retryable("database_unavailable", e.to_string())
}

pub fn join_error(e: tokio::task::JoinError) -> HandlerError {
    if e.is_panic() {
        HandlerError::permanent("handler_panic", "a model thread panicked")
    } else {
        HandlerError::retryable("internal", e.to_string())
    }
}
