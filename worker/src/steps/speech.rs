//! What model work needs, built once per worker process: media storage, the Whisper model
//! cache and the speaker models.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use voxfleet_asr::ModelCache;
use voxfleet_store::media::MediaStore;

/// What model work needs, built once per worker process.
pub struct Speech {
    pub media: MediaStore,
    pub models: Arc<ModelCache>,
    /// Used when a job names no model (`tiny.en` unless configured).
    pub default_model: String,
    /// Batched decoding for jobs that do not say.
    pub batched: bool,
    /// Longer audio fails with `too_long`.
    pub max_audio: Duration,
    /// Where fetched media is kept while decoding.
    pub spool_dir: PathBuf,
    /// Segmentation and speaker-embedding models (ONNX), loaded once per process.
    pub speaker_models: Arc<crate::speaker_models::SpeakerModels>,
}
