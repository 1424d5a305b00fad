//! Each supported container, encoded by ffmpeg from one espeak-ng sentence, decodes to the same
//! duration and energy envelope as the PCM original.
//!
//! Duration tolerance: ±50 ms against the original. Lossless formats match to the sample;
//! MP3 and AAC carry encoder delay/padding (LAME's is trimmed by symphonia's gapless support,
//! AAC's in MP4 is not), which stays well under 50 ms (one or two 1024-sample frames at
//! 44.1 kHz is 23–46 ms).

mod common;

use std::path::Path;

use common::{best_lag_correlation, envelope, fixtures, read};
use voxfleet_audio::{Audio, DecodeOptions, decode_bytes, decode_file, probe_file};
use voxfleet_errors::{Classified, ErrorClass};

fn reference() -> Audio {
    decode_file(&fixtures().path("ref.wav"), &DecodeOptions::default()).expect("reference decodes")
}

fn check_like_reference(name: &str, container: &str, codec: &str, min_corr: f64) {
    let reference = reference();
    let path = fixtures().path(name);
    let audio =
        decode_file(&path, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(audio.source.container, container, "{name}");
    assert_eq!(audio.source.codec, codec, "{name}");
    assert_eq!(
        (audio.source.sample_rate, audio.source.channels),
        (44_100, 2),
        "{name}"
    );
    let dt = audio.duration_s - reference.duration_s;
    assert!(
        dt.abs() <= 0.050,
        "{name}: {:.3} s vs {:.3} s",
        audio.duration_s,
        reference.duration_s
    );
    // Envelopes in 20 ms frames; AAC's encoder delay (1024 samples, 23 ms) that the MP4 edit
    // list would remove is not trimmed, so allow a shift of up to 3 frames.
    let (lag, corr) =
        best_lag_correlation(&envelope(&audio.samples), &envelope(&reference.samples), 3);
    assert!(
        corr >= min_corr,
        "{name}: envelope correlation {corr:.4} at lag {lag}"
    );
    // The same bytes decode the same from memory, with or without an extension hint.
    let from_bytes =
        decode_bytes(read(&path), None, &DecodeOptions::default()).expect("from bytes");
    assert_eq!(from_bytes.samples.len(), audio.samples.len(), "{name}");
    eprintln!(
        "{name}: {:.3} s (Δ {:+.1} ms), envelope correlation {corr:.4} at a lag of {} ms",
        audio.duration_s,
        dt * 1e3,
        lag * 20
    );
}

#[test]
fn reference_is_the_spoken_sentence() {
    let reference = reference();
    assert!(reference.duration_s > 3.0, "{} s", reference.duration_s);
    let loud = envelope(&reference.samples)
        .iter()
        .filter(|e| **e > 0.01)
        .count();
    assert!(loud > 50, "only {loud} voiced 20 ms frames");
}

#[test]
fn wav_float() {
    check_like_reference("float.wav", "wav", "pcm_f32le", 0.9999);
}

#[test]
fn flac_is_sample_exact() {
    check_like_reference("x.flac", "flac", "flac", 0.9999);
    let flac = decode_file(&fixtures().path("x.flac"), &DecodeOptions::default()).unwrap();
    assert_eq!(flac.samples, reference().samples);
}

#[test]
fn mp3() {
    check_like_reference("x.mp3", "mp3", "mp3", 0.98);
}

#[test]
fn ogg_vorbis() {
    check_like_reference("x.ogg", "ogg", "vorbis", 0.98);
}

#[test]
fn m4a_aac() {
    check_like_reference("x.m4a", "mp4", "aac", 0.95);
}

#[test]
fn adts_aac() {
    check_like_reference("x.aac", "adts", "aac", 0.95);
}

#[test]
fn probe_is_consistent_with_decode() {
    for name in [
        "ref.wav",
        "float.wav",
        "x.flac",
        "x.mp3",
        "x.ogg",
        "x.m4a",
        "x.aac",
    ] {
        let probe = probe_file(&fixtures().path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let duration = probe
            .duration_s
            .unwrap_or_else(|| panic!("{name}: no duration"));
        // ADTS has no index: symphonia estimates from the bitrate, hence the looser bound.
        let tolerance = if name == "x.aac" { 0.5 } else { 0.060 };
        assert!(
            (duration - reference().duration_s).abs() <= tolerance,
            "{name}: {duration} s"
        );
        assert_eq!((probe.sample_rate, probe.channels), (44_100, 2), "{name}");
    }
}

#[test]
fn opus_in_ogg_is_unsupported() {
    let err = decode_file(&fixtures().path("x.opus"), &DecodeOptions::default()).unwrap_err();
    assert_eq!(err.code(), "unsupported_format", "{err}");
    assert!(err.to_string().contains("opus"), "{err}");
    assert_eq!(
        probe_file(&fixtures().path("x.opus")).unwrap_err().code(),
        "unsupported_format"
    );
}

#[test]
fn video_only_mp4_is_unsupported() {
    let err = decode_file(&fixtures().path("video.mp4"), &DecodeOptions::default()).unwrap_err();
    assert_eq!(err.code(), "unsupported_format", "{err}");
}

#[test]
fn missing_file_is_an_io_error() {
    let err = decode_file(
        Path::new("/nonexistent/voxfleet.wav"),
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "io_error");
    assert!(err.class() != ErrorClass::Permanent);
}
