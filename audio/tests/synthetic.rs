//! Sines written as WAV in code: length, frequency, amplitude and downmix survive decoding.

mod common;

use common::{WavFormat, mid_peak, sines, wav_bytes, zero_crossing_hz};
use voxfleet_audio::{DecodeOptions, TARGET_RATE, decode_bytes, probe_bytes};

fn decode(bytes: Vec<u8>) -> voxfleet_audio::Audio {
    decode_bytes(bytes, Some("wav"), &DecodeOptions::default()).expect("decodes")
}

#[test]
fn sine_440_at_44k1_stereo_keeps_length_pitch_and_level() {
    for format in [WavFormat::Pcm16, WavFormat::Float32] {
        let frames = 44_100 * 2 + 123;
        let audio = decode(wav_bytes(
            44_100,
            2,
            &sines(44_100, frames, &[440.0, 440.0], &[0.5, 0.5]),
            format,
        ));
        let expected = frames as f64 * 16_000.0 / 44_100.0;
        assert!(
            (audio.samples.len() as f64 - expected).abs() <= 2.0,
            "{format:?}: {} samples, expected {expected}",
            audio.samples.len()
        );
        assert!((audio.duration_s - frames as f64 / 44_100.0).abs() < 1e-3);
        let hz = zero_crossing_hz(&audio.samples, TARGET_RATE);
        assert!((hz - 440.0).abs() < 1.0, "{format:?}: {hz} Hz");
        let peak = mid_peak(&audio.samples);
        assert!((peak - 0.5).abs() < 0.5 * 0.02, "{format:?}: peak {peak}");
        assert_eq!(audio.source.container, "wav");
        assert_eq!(
            (audio.source.sample_rate, audio.source.channels),
            (44_100, 2)
        );
    }
}

#[test]
fn sine_440_at_8k_mono_is_upsampled() {
    let frames = 8_000 * 3;
    let audio = decode(wav_bytes(
        8_000,
        1,
        &sines(8_000, frames, &[440.0], &[0.8]),
        WavFormat::Pcm16,
    ));
    assert_eq!(audio.samples.len(), frames * 2);
    let hz = zero_crossing_hz(&audio.samples, TARGET_RATE);
    assert!((hz - 440.0).abs() < 1.0, "{hz} Hz");
    let peak = mid_peak(&audio.samples);
    assert!((peak - 0.8).abs() < 0.8 * 0.02, "peak {peak}");
}

#[test]
fn sixteen_k_mono_passes_through_unchanged() {
    let input = sines(16_000, 16_000, &[1000.0], &[0.25]);
    let audio = decode(wav_bytes(16_000, 1, &input, WavFormat::Float32));
    assert_eq!(audio.samples, input);
}

#[test]
fn stereo_with_different_channels_is_their_mean() {
    // Left 0.6 · sin(440), right 0.2 · sin(440): the mean is 0.4 · sin(440).
    let audio = decode(wav_bytes(
        48_000,
        2,
        &sines(48_000, 48_000, &[440.0, 440.0], &[0.6, 0.2]),
        WavFormat::Float32,
    ));
    let peak = mid_peak(&audio.samples);
    assert!((peak - 0.4).abs() < 0.4 * 0.02, "peak {peak}");
    // Opposite-phase channels cancel.
    let mut cancel = sines(48_000, 48_000, &[440.0, 440.0], &[0.5, 0.5]);
    cancel.iter_mut().skip(1).step_by(2).for_each(|s| *s = -*s);
    let audio = decode(wav_bytes(48_000, 2, &cancel, WavFormat::Float32));
    assert!(mid_peak(&audio.samples) < 1e-3);
}

#[test]
fn silence_is_not_empty() {
    let audio = decode(wav_bytes(16_000, 1, &vec![0.0; 16_000], WavFormat::Pcm16));
    assert_eq!(audio.samples.len(), 16_000);
    assert!(audio.samples.iter().all(|s| *s == 0.0));
}

#[test]
fn full_scale_input_stays_within_unit_range() {
    // A square wave makes the resampler ring past full scale; output is clamped to [-1, 1].
    let square: Vec<f32> = (0..44_100)
        .map(|n| if (n / 50) % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let audio = decode(wav_bytes(44_100, 1, &square, WavFormat::Float32));
    assert!(audio.samples.iter().all(|s| (-1.0..=1.0).contains(s)));
}

#[test]
fn probe_reads_the_header() {
    let bytes = wav_bytes(
        22_050,
        2,
        &sines(22_050, 22_050 * 3, &[440.0, 440.0], &[0.5, 0.5]),
        WavFormat::Pcm16,
    );
    let probe = probe_bytes(bytes, None).expect("probes");
    assert_eq!(probe.container, "wav");
    assert_eq!(probe.codec, "pcm_s16le");
    assert_eq!((probe.sample_rate, probe.channels), (22_050, 2));
    assert!((probe.duration_s.expect("stated") - 3.0).abs() < 1e-9);
}
