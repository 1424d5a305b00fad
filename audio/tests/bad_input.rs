//! Inputs that must fail, and with which code.

mod common;

use std::time::Duration;

use common::{WavFormat, fixtures, read, sines, wav_bytes};
use voxfleet_audio::{DecodeOptions, decode_bytes, decode_file, probe_bytes, probe_file};
use voxfleet_errors::Classified;

fn code_of(bytes: Vec<u8>, ext: Option<&str>) -> &'static str {
    let decoded = decode_bytes(bytes.clone(), ext, &DecodeOptions::default());
    let probed = probe_bytes(bytes, ext);
    match decoded {
        Ok(_) => "ok",
        Err(err) => {
            // Probing never contradicts decoding about the class of a bad input, except that a
            // probe reads only headers and may accept what decoding later finds corrupt.
            if let Err(p) = &probed {
                assert_eq!(
                    p.code(),
                    err.code(),
                    "probe and decode disagree: {p} / {err}"
                );
            }
            err.code()
        }
    }
}

fn tone_wav(seconds: u32) -> Vec<u8> {
    wav_bytes(
        16_000,
        1,
        &sines(16_000, 16_000 * seconds as usize, &[440.0], &[0.5]),
        WavFormat::Pcm16,
    )
}

#[test]
fn empty_input_is_empty_audio() {
    assert_eq!(code_of(Vec::new(), None), "empty_audio");
    let file = tempfile::NamedTempFile::new().unwrap();
    assert_eq!(
        decode_file(file.path(), &DecodeOptions::default())
            .unwrap_err()
            .code(),
        "empty_audio"
    );
    assert_eq!(probe_file(file.path()).unwrap_err().code(), "empty_audio");
}

#[test]
fn container_without_frames_is_empty_audio() {
    assert_eq!(
        code_of(wav_bytes(16_000, 1, &[], WavFormat::Pcm16), None),
        "empty_audio"
    );
}

#[test]
fn text_and_images_are_unsupported() {
    let text = b"Dear support, please transcribe my meeting. Thanks!\n".repeat(100);
    assert_eq!(code_of(text.clone(), Some("wav")), "unsupported_format");
    assert_eq!(code_of(text, None), "unsupported_format");
    // A PNG signature and an IHDR chunk.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0".to_vec();
    png.resize(2048, 0);
    assert_eq!(code_of(png, Some("png")), "unsupported_format");
}

/// Cut inside the header: once the 12-byte `RIFF....WAVE` signature is there the container is
/// recognised and the missing fmt/data chunks make it corrupt; cut before that, nothing
/// identifies the bytes as audio, so it is unsupported.
#[test]
fn wav_truncated_inside_the_header() {
    let wav = tone_wav(1);
    for cut in [12, 20, 30, 43] {
        assert_eq!(
            code_of(wav[..cut].to_vec(), None),
            "corrupt_audio",
            "cut at {cut}"
        );
    }
    for cut in [4, 8, 11] {
        assert_eq!(
            code_of(wav[..cut].to_vec(), None),
            "unsupported_format",
            "cut at {cut}"
        );
    }
}

/// Truncated inside the data: what is there decodes (as ffmpeg does), shorter.
#[test]
fn wav_truncated_inside_the_data_keeps_what_is_there() {
    let wav = tone_wav(2);
    let audio = decode_bytes(wav[..44 + 32_000].to_vec(), None, &DecodeOptions::default()).unwrap();
    assert!(
        (audio.duration_s - 1.0).abs() < 0.01,
        "{} s",
        audio.duration_s
    );
}

/// Any bytes are valid PCM, so a WAV header with a garbage body decodes (as noise) with the
/// length the body implies; garbage after a compressed format's header is corrupt.
#[test]
fn valid_header_with_garbage_body() {
    let mut wav = tone_wav(1);
    let mut x = 0x1234_5678u32;
    for b in &mut wav[44..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let audio = decode_bytes(wav, None, &DecodeOptions::default()).unwrap();
    assert_eq!(audio.samples.len(), 16_000);

    // Headers kept, everything after scrambled: nothing decodes. (FLAC from ffmpeg carries
    // 8 KiB of metadata padding; the Vorbis setup header and the MP3 Xing frame fit in 4 KiB.)
    for (name, keep) in [("x.flac", 8192 + 256), ("x.ogg", 4096), ("x.mp3", 1024)] {
        let mut bytes = read(&fixtures().path(name));
        for b in &mut bytes[keep..] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let result = decode_bytes(bytes, None, &DecodeOptions::default());
        let err = result.expect_err(name);
        assert_eq!(err.code(), "corrupt_audio", "{name}: {err}");
    }
}

#[test]
fn longer_than_max_duration_is_too_long() {
    let opts = DecodeOptions {
        max_duration: Some(Duration::from_secs(2)),
    };
    // The header states 3 s: refused before decoding.
    let err = decode_bytes(tone_wav(3), None, &opts).unwrap_err();
    assert!(
        matches!(err, voxfleet_audio::AudioError::TooLong { duration_s, max_s } if duration_s == 3.0 && max_s == 2.0),
        "{err}"
    );
    // Exactly at the limit is fine.
    assert!(decode_bytes(tone_wav(2), None, &opts).is_ok());
}

/// A streamed WAV (ffmpeg to a pipe) states no length: the limit applies while decoding.
#[test]
fn too_long_is_caught_while_decoding_when_the_header_is_silent() {
    let mut wav = tone_wav(5);
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    wav[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    let probe = probe_bytes(wav.clone(), None).unwrap();
    // Counted from packet durations; the last, partial packet counts whole.
    assert!(
        (probe.duration_s.unwrap() - 5.0).abs() < 0.1,
        "packets counted: {:?}",
        probe.duration_s
    );
    let opts = DecodeOptions {
        max_duration: Some(Duration::from_secs(3)),
    };
    match decode_bytes(wav, None, &opts).unwrap_err() {
        voxfleet_audio::AudioError::TooLong { duration_s, .. } => {
            assert!(
                (3.0..3.5).contains(&duration_s),
                "stopped at {duration_s} s"
            )
        }
        other => panic!("{other}"),
    }
}

/// A FLAC whose STREAMINFO claims 1 s but whose frames hold the whole 6 s sentence: the header
/// passes the limit, decoding stops at it.
#[test]
fn too_long_is_caught_when_the_header_claims_less_than_the_data() {
    let mut flac = read(&fixtures().path("x.flac"));
    assert_eq!(&flac[..4], b"fLaC");
    // STREAMINFO starts at byte 8; its 36-bit total sample count is the low 4 bits of byte 21
    // and bytes 22..26.
    let claimed: u64 = 44_100;
    flac[21] = (flac[21] & 0xF0) | ((claimed >> 32) as u8 & 0x0F);
    flac[22..26].copy_from_slice(&(claimed as u32).to_be_bytes());
    let probe = probe_bytes(flac.clone(), None).unwrap();
    assert!(
        (probe.duration_s.unwrap() - 1.0).abs() < 1e-6,
        "{:?}",
        probe.duration_s
    );
    let opts = DecodeOptions {
        max_duration: Some(Duration::from_secs(3)),
    };
    let err = decode_bytes(flac, None, &opts).unwrap_err();
    assert_eq!(err.code(), "too_long", "{err}");
}
