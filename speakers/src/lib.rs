//! Speaker processing for voxfleet.
//!
//! Today this crate holds the front end of WeSpeaker-format speaker-embedding models
//! (WeSpeaker ResNet, 3D-Speaker CAM++): a Kaldi-compatible log-mel filterbank.
//! Diarization will live here later.
//!
//! Modules:
//! - [`fbank`]: [`FbankOptions`] (defaults = CAM++ settings; `FbankOptions::wespeaker()` for
//!   WeSpeaker's Hamming-window variant), [`Fbank`] (precomputed
//!   window, mel banks and FFT plan; `compute` turns 16 kHz f32 PCM into [`Features`]) and
//!   [`mean_normalize`] (per-utterance cepstral mean normalisation, which those models expect).
//! - `mel` (private): Kaldi's mel scale and triangular mel filter banks.

pub mod fbank;
mod mel;

pub use fbank::{Fbank, FbankError, FbankOptions, Features, WindowType, mean_normalize};
