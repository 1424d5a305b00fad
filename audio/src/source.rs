//! Opening an input with symphonia: container detection, track choice and the header facts
//! that make up a [`Probe`].

use std::fs::File;
use std::io::Cursor;
use std::path::Path;

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known as codec_ids;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::TimeBase;

use crate::{AudioError, Probe};

/// Sample rates outside this range are taken as a damaged header: no real recording uses them,
/// and an absurd rate would make the resampler allocate without bound.
pub(crate) const PLAUSIBLE_RATES: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// A recognised container with its chosen audio track.
pub(crate) struct Opened {
    pub reader: Box<dyn FormatReader>,
    pub track_id: u32,
    pub params: AudioCodecParameters,
    /// What the headers say; `duration_s` is `None` when the container does not state it.
    pub probe: Probe,
    /// The track's time base (packet durations are in its units).
    pub time_base: Option<TimeBase>,
}

/// An input before probing: a file or an owned byte buffer.
pub(crate) enum Input {
    File(File, Option<String>),
    Bytes(Vec<u8>, Option<String>),
}

impl Input {
    pub(crate) fn from_path(path: &Path) -> Result<Self, AudioError> {
        let file = File::open(path).map_err(AudioError::Io)?;
        let len = file.metadata().map_err(AudioError::Io)?.len();
        if len == 0 {
            return Err(AudioError::Empty);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        Ok(Input::File(file, ext))
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<Self, AudioError> {
        if bytes.is_empty() {
            return Err(AudioError::Empty);
        }
        let ext = hint_ext.map(|e| e.trim_start_matches('.').to_ascii_lowercase());
        Ok(Input::Bytes(bytes, ext))
    }
}

/// Recognises the container and picks its default audio track.
pub(crate) fn open(input: Input) -> Result<Opened, AudioError> {
    let (source, ext): (Box<dyn MediaSource>, Option<String>) = match input {
        Input::File(file, ext) => (Box::new(file), ext),
        Input::Bytes(bytes, ext) => (Box::new(Cursor::new(bytes)), ext),
    };
    let mut hint = Hint::new();
    if let Some(ext) = &ext {
        hint.with_extension(ext);
    }
    let mss = MediaSourceStream::new(source, Default::default());
    let reader = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|err| match err {
            // The probe found no container signature at all.
            SymphoniaError::Unsupported(_) => {
                AudioError::unsupported("not a recognised audio container")
            }
            other => AudioError::from_symphonia(other),
        })?;
    let container = container_name(reader.format_info().short_name);

    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::unsupported(format!("{container}: no audio track")))?;
    let params = match &track.codec_params {
        Some(CodecParameters::Audio(params)) => params.clone(),
        _ => {
            return Err(AudioError::unsupported(format!(
                "{container}: no audio codec parameters"
            )));
        }
    };
    let codec = codec_name(&params);
    if symphonia::default::get_codecs()
        .get_audio_decoder(params.codec)
        .is_none()
    {
        return Err(AudioError::unsupported(format!(
            "{container}: codec {codec} is not supported"
        )));
    }
    let sample_rate = params.sample_rate.unwrap_or(0);
    if sample_rate != 0 && !PLAUSIBLE_RATES.contains(&sample_rate) {
        return Err(AudioError::corrupt(format!(
            "implausible sample rate {sample_rate} Hz"
        )));
    }
    let channels = params.channels.as_ref().map_or(0, |c| c.count()) as u16;
    let probe = Probe {
        container: container.to_owned(),
        codec,
        sample_rate,
        channels,
        duration_s: stated_duration(track, sample_rate),
    };
    let (track_id, time_base) = (track.id, track.time_base);
    Ok(Opened {
        reader,
        track_id,
        params,
        probe,
        time_base,
    })
}

pub(crate) fn make_decoder(
    params: &AudioCodecParameters,
) -> Result<Box<dyn AudioDecoder>, AudioError> {
    symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(AudioError::from_symphonia)
}

/// The duration the container states for the track, if any.
fn stated_duration(track: &Track, sample_rate: u32) -> Option<f64> {
    if let (Some(frames), true) = (track.num_frames, sample_rate > 0) {
        return Some(frames as f64 / f64::from(sample_rate));
    }
    let (tb, dur) = (track.time_base?, track.duration?);
    tb.calc_duration(dur).map(|t| t.as_secs_f64())
}

/// Our names for symphonia's containers (the `container` field of [`Probe`]).
fn container_name(short: &str) -> &'static str {
    match short {
        "wave" => "wav",
        "isomp4" => "mp4",
        "aac" => "adts",
        "flac" => "flac",
        "mp3" => "mp3",
        "mp2" => "mp2",
        "mp1" => "mp1",
        "ogg" => "ogg",
        "aiff" => "aiff",
        "caf" => "caf",
        "mkv" => "mkv",
        _ => "other",
    }
}

/// A readable codec name, also for codecs we cannot decode (so the error can say which).
pub(crate) fn codec_name(params: &AudioCodecParameters) -> String {
    if let Some(registered) = symphonia::default::get_codecs().get_audio_decoder(params.codec) {
        return registered.codec.info.short_name.to_owned();
    }
    let known = [
        (codec_ids::CODEC_ID_OPUS, "opus"),
        (codec_ids::CODEC_ID_SPEEX, "speex"),
        (codec_ids::CODEC_ID_ALAC, "alac"),
        (codec_ids::CODEC_ID_AC3, "ac3"),
        (codec_ids::CODEC_ID_EAC3, "eac3"),
        (codec_ids::CODEC_ID_MP1, "mp1"),
        (codec_ids::CODEC_ID_MP2, "mp2"),
        (codec_ids::CODEC_ID_WMA, "wma"),
        (codec_ids::CODEC_ID_WAVPACK, "wavpack"),
    ];
    known
        .iter()
        .find(|(id, _)| *id == params.codec)
        .map_or_else(
            || format!("unknown ({})", params.codec),
            |(_, name)| (*name).to_owned(),
        )
}
