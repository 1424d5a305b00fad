//! Silence gives no text (with and without VAD), and VAD finds speech where it is.

mod common;

use std::ops::ControlFlow;
use std::time::Instant;

use common::*;
use voxfleet_asr::TranscribeOptions;

fn low_noise(n: usize) -> Vec<f32> {
    // Deterministic white noise around −60 dBFS.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.002
        })
        .collect()
}

#[test]
fn silence_and_noise_give_no_segments() {
    let engine = tiny_en();
    let vad = vad();
    for (name, pcm) in [("zeros", vec![0.0; 30 * SR]), ("noise", low_noise(30 * SR))] {
        for use_vad in [false, true] {
            let opts = TranscribeOptions {
                vad: use_vad,
                ..Default::default()
            };
            let mut windows = 0;
            let t0 = Instant::now();
            let t = engine
                .transcribe(&pcm, &opts, Some(&vad), &mut |p| {
                    windows = p.windows_done;
                    ControlFlow::Continue(())
                })
                .unwrap();
            eprintln!(
                "{name} vad={use_vad}: {windows} windows in {:?}",
                t0.elapsed()
            );
            assert!(
                t.segments.is_empty(),
                "{name} vad={use_vad}: {:?}",
                t.segments
            );
            if use_vad {
                assert_eq!(windows, 0, "{name}: VAD should skip the decoder entirely");
            }
        }
    }
}

#[test]
fn vad_regions_match_speech() {
    let (pcm, spans) = speak_with_gaps(&LONG[..3], 3.0);
    let regions = vad().speech_regions(&pcm).unwrap();
    eprintln!("spans {spans:?}\nregions {regions:?}");
    for &(a, b) in &spans {
        let covered: f64 = regions
            .iter()
            .map(|&(s, e)| (e.min(b) - s.max(a)).max(0.0))
            .sum();
        assert!(
            covered >= 0.8 * (b - a),
            "sentence {a:.2}–{b:.2} covered {covered:.2} s"
        );
    }
    for w in spans.windows(2) {
        // The middle of each 3 s pause is silence.
        let (quiet_from, quiet_to) = (w[0].1 + 0.5, w[1].0 - 0.5);
        assert!(
            regions
                .iter()
                .all(|&(s, e)| e <= quiet_from || s >= quiet_to),
            "speech found in the pause {quiet_from:.2}–{quiet_to:.2}"
        );
    }
    let first = regions.first().expect("some speech");
    assert!(
        (first.0 - spans[0].0).abs() < 0.3,
        "{first:?} vs {:?}",
        spans[0]
    );
}

#[test]
fn vad_skips_leading_silence_but_keeps_timestamps() {
    // 40 s of silence, then a sentence: with VAD the first window starts near 40 s.
    let mut pcm = vec![0.0; 40 * SR];
    let lead = pcm.len() as f64 / SR as f64;
    pcm.extend(speak(SHORT));
    pcm.extend(vec![0.0; SR]);
    let engine = tiny_en();
    let opts = TranscribeOptions::default();
    let mut windows = 0;
    let t = engine
        .transcribe(&pcm, &opts, Some(&vad()), &mut |p| {
            windows = p.windows_done;
            ControlFlow::Continue(())
        })
        .unwrap();
    eprintln!("{:?}", t.segments);
    assert_eq!(windows, 1);
    let wer = word_error_rate(SHORT, &t.text());
    assert!(wer <= 0.3, "WER {wer:.3}: {}", t.text());
    let first = &t.segments[0];
    assert!(
        (first.start - lead).abs() < 1.0,
        "first segment at {}",
        first.start
    );
}
