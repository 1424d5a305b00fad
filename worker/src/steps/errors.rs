//! Job errors for failures outside voxfleet's own error vocabulary. The crates' errors
//! (audio, models, Whisper, speakers, search, text embeddings, PostgreSQL, storage, Redis)
//! become job errors with `?` (`voxfleet_errors::Classified`, see `voxfleet_jobs::HandlerError`);
//! what is left is a model thread that panicked or could not be joined.
use voxfleet_jobs::HandlerError;

pub fn join_error(e: tokio::task::JoinError) -> HandlerError {
    if e.is_panic() {
        HandlerError::permanent("handler_panic", "a model thread panicked")
    } else {
        HandlerError::retryable("internal", e.to_string())
    }
}
