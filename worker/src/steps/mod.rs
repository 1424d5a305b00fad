//! Steps the handlers share; a handler imports steps, never another handler.
//! - [`audio`]: the stored file a job names, fetched and decoded.
//! - [`blocking`]: model work in a blocking thread with progress and a stop flag.
//! - [`errors`]: job errors (code and retry class) for the failures of the crates called.
//! - [`file_removal`]: a tombstoned file's documents, object and rows removed in a
//!   crash-safe order (retention, user deletion).
//! - [`followups`]: jobs queued after a handler's own work (a reindex of changed files).
//! - [`section_run`]: a maintenance section's run row, live report and stop handling.
//! - [`speech`]: what model work needs, built once per process.
//! - [`voiceprints`]: voiceprints from a diarized file's own speech; the active profile.
//! - [`voiceprint_index`]: voiceprints into a profile's speaker index (repair, migration).
pub mod audio;
pub mod blocking;
pub mod errors;
pub mod file_removal;
pub mod followups;
pub mod section_run;
pub mod speech;
pub mod voiceprint_index;
pub mod voiceprints;
