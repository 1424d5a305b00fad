//! voxfleet-audio: turns an uploaded audio file into what Whisper eats — mono f32 samples at
//! 16 kHz in [-1, 1] — or into a coded [`AudioError`] that says whether retrying can help.
//!
//! Modules:
//! - `source`: recognises the container with symphonia (by content; the file extension is only
//!   a hint), picks the default audio track and reads the header facts ([`Probe`]).
//! - `decode`: the decode loop. Packets are decoded one at a time, downmixed to mono (mean of
//!   the channels) and handed to the resampler at once, so memory stays near the size of the
//!   16 kHz output even for hours of multichannel audio. It skips a few undecodable packets,
//!   stops at `max_duration` while decoding (a header cannot talk us into decoding hours), and
//!   runs under `catch_unwind` so a symphonia panic on malformed input becomes `corrupt_audio`.
//! - `resample`: streaming rubato resampler (FFT for the usual rates, sinc for odd ones; see
//!   that module for why) with exact output length `ceil(frames · 16000 / rate)`.
//! - `error`: [`AudioError`] with its stable codes.
//!
//! ```no_run
//! let audio = voxfleet_audio::decode_file("call.m4a".as_ref(), &Default::default())?;
//! assert!(audio.samples.len() as f64 == audio.duration_s * 16_000.0);
//! # Ok::<(), voxfleet_audio::AudioError>(())
//! ```

mod decode;
mod error;
mod resample;
mod source;

use std::path::Path;
use std::time::Duration;

pub use error::AudioError;

use source::Input;

/// The sample rate of decoded output, in Hz (what Whisper expects).
pub const TARGET_RATE: u32 = 16_000;

/// Options for [`decode_file`] and [`decode_bytes`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Longest audio accepted; longer input fails with [`AudioError::TooLong`], from the header
    /// when it states a duration, otherwise as soon as decoding passes the limit.
    /// `None` accepts any length. Default: 4 hours (≈ 0.9 GB of 16 kHz f32 output).
    pub max_duration: Option<Duration>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_duration: Some(Duration::from_secs(4 * 3600)),
        }
    }
}

/// What the headers of an input say.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Container: "wav", "flac", "mp3", "ogg", "mp4" (also .m4a), "adts" (raw AAC).
    pub container: String,
    /// Codec as symphonia names it, e.g. "pcm_s16le", "flac", "mp3", "vorbis", "aac".
    pub codec: String,
    /// Source sample rate in Hz.
    pub sample_rate: u32,
    /// Source channel count.
    pub channels: u16,
    /// Duration in seconds: stated by the container, estimated by symphonia from the bitrate
    /// (MP3/ADTS without an index), or, for a probe, counted from packets. For MP3 and AAC it
    /// may include encoder padding (tens of milliseconds).
    pub duration_s: Option<f64>,
}

/// Decoded audio: mono, [`TARGET_RATE`] Hz, samples in [-1, 1].
#[derive(Clone, PartialEq)]
pub struct Audio {
    /// The samples.
    pub samples: Vec<f32>,
    /// `samples.len() / 16000`, in seconds.
    pub duration_s: f64,
    /// The source's header facts (with rate, channels and duration filled in from decoding
    /// where the header lacked them).
    pub source: Probe,
}

/// Shows the sample count, not the samples (a minute is a million of them).
impl std::fmt::Debug for Audio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audio")
            .field("samples", &format_args!("[{} × f32]", self.samples.len()))
            .field("duration_s", &self.duration_s)
            .field("source", &self.source)
            .finish()
    }
}

/// Reads the headers of a file. Where the container does not state the duration (e.g. a WAV
/// streamed with unknown length), the packets are counted without decoding them.
pub fn probe_file(path: &Path) -> Result<Probe, AudioError> {
    let input = Input::from_path(path)?;
    decode::guarded(|| decode::probe(input))
}

/// [`probe_file`] for bytes in memory; `hint_ext` (e.g. "mp3") helps only when the content is
/// ambiguous.
pub fn probe_bytes(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<Probe, AudioError> {
    let input = Input::from_bytes(bytes, hint_ext)?;
    decode::guarded(|| decode::probe(input))
}

/// Decodes a whole file to 16 kHz mono. Never panics on any input.
pub fn decode_file(path: &Path, opts: &DecodeOptions) -> Result<Audio, AudioError> {
    let input = Input::from_path(path)?;
    decode::guarded(|| decode::decode(input, opts))
}

/// [`decode_file`] for bytes in memory.
pub fn decode_bytes(
    bytes: Vec<u8>,
    hint_ext: Option<&str>,
    opts: &DecodeOptions,
) -> Result<Audio, AudioError> {
    let input = Input::from_bytes(bytes, hint_ext)?;
    decode::guarded(|| decode::decode(input, opts))
}

/// Containers and the codecs inside them that this crate decodes (and tests), for the README
/// and the API's format listing.
pub fn supported_formats() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "wav",
            "pcm (8/16/24/32-bit integer, 32/64-bit float, a-law, µ-law), adpcm (ms, ima)",
        ),
        ("flac", "flac"),
        ("mp3", "mp3"),
        ("ogg", "vorbis"),
        ("mp4", "aac-lc (.m4a, .mp4)"),
        ("adts", "aac-lc (.aac)"),
    ]
}
