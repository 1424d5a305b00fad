//! Speaker processing for voxfleet.
//!
//! It holds the front end of WeSpeaker-format speaker-embedding models (WeSpeaker ResNet,
//! 3D-Speaker CAM++), a Kaldi-compatible log-mel filterbank, and the model-free logic of speaker
//! diarization: segmentation outputs go through `powerset` → `aggregate` → `binarize` into
//! speaker turns, embeddings are grouped by `cluster`, turns are attached to transcript segments
//! by `assign`, and `der` scores the result.
//!
//! Modules:
//! - [`fbank`]: [`FbankOptions`] (defaults = CAM++ settings; `FbankOptions::wespeaker()` for
//!   WeSpeaker's Hamming-window variant), [`Fbank`] (precomputed
//!   window, mel banks and FFT plan; `compute` turns 16 kHz f32 PCM into [`Features`]) and
//!   [`mean_normalize`] (per-utterance cepstral mean normalisation, which those models expect).
//! - `mel` (private): Kaldi's mel scale and triangular mel filter banks.
//! - [`powerset`]: decoding of pyannote segmentation-3.0's 7-class powerset output into
//!   per-frame activations of 3 local speakers (hard argmax or soft probability mass).
//! - [`aggregate`]: averages overlapping chunks, with local speakers mapped to global clusters,
//!   into a global frame [`Timeline`] plus a per-frame speaker count; `Timeline::discrete` keeps
//!   the top-`count` speakers per frame (overlap kept).
//! - [`binarize`]: hysteresis (onset/offset), padding and minimum on/off durations turning score
//!   curves into sorted [`Turn`]s.
//! - [`background`]: [`Background`] means of many voices' embeddings (wideband and telephone
//!   band), subtracted before clustering.
//! - [`cluster`]: deterministic agglomerative clustering of embeddings on cosine distance
//!   (centroid or average linkage, threshold with `num_speakers`/`min_speakers`/`max_speakers`
//!   hints) and `cluster::assign` of an embedding to its nearest centroid.
//! - [`assign`]: [`label_segments`] gives each transcript segment the speaker it overlaps most.
//! - [`der`]: diarization error rate with a collar and optimal (Hungarian) speaker mapping.
//! - [`onnx`]: the ONNX models on the process's ONNX Runtime (`voxfleet_models::onnx`):
//!   [`Segmenter`] (pyannote segmentation-3.0) and [`Embedder`] (speaker embeddings through the
//!   [`FrontEnd`] the model's input asks for: fbank80, GE2E mel40 or waveform), with
//!   `embed_clips` and `voiceprint`.
//! - [`ge2e`]: Resemblyzer's GE2E mel front end and 1.6 s partials.
//! - [`subsegment`]: short single-speaker stretches on the frame grid (cutting, small-cluster
//!   folding, frame labels) for [`Method::SubSegments`].
//! - [`diarize`]: [`Diarizer`], the whole pipeline (segmentation → embeddings → clustering →
//!   aggregation → turns) with [`DiarizeOptions`], progress and cancellation.
//! - [`error`]: [`SpeakersError`] with stable `code()`s.

pub mod aggregate;
pub mod assign;
pub mod background;
pub mod binarize;
pub mod cluster;
pub mod der;
pub mod diarize;
pub mod error;
pub mod fbank;
pub mod ge2e;
mod mel;
pub mod onnx;
pub mod powerset;
pub mod subsegment;

pub use aggregate::{AggregateOptions, Chunk, Timeline};
pub use assign::{
    KNOWN_SPEAKER_MIN_SIMILARITY, KNOWN_SPEAKER_MIN_SIMILARITY_NARROWBAND, Piece,
    known_speaker_min_similarity, label_segments, match_known, split_at_speaker_changes,
};
pub use background::Background;
pub use binarize::{BinarizeOptions, Turn};
pub use cluster::{
    ClusterError, ClusterOptions, Clustering, Linkage, cluster_embeddings, cosine_similarity,
};
pub use der::{DerReport, diarization_error_rate};
pub use diarize::{
    Diarization, DiarizeOptions, DiarizedSpeaker, Diarizer, Method, Progress, WindowEmbedding,
};
pub use error::SpeakersError;
pub use fbank::{Fbank, FbankError, FbankOptions, Features, WindowType, mean_normalize};
pub use onnx::{Embedder, FrontEnd, Segmenter};
