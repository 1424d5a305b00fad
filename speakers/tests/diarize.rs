//! The diarization pipeline on the real models: generated espeak-ng conversations with exactly
//! known turns (DER with a 0.25 s collar), speaker-count hints, bad input, cancellation.
//!
//! No three-speaker conversation: on CAM++ every espeak-ng voice tried except the `+f3` variant
//! (en-us, en-us+m3, en-gb, en-gb+f4, de, es, fr) lies at cosine 0.76–0.92 from the others, as
//! close as two sentences of one voice (0.81–0.94), so no threshold can separate a third one.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use common::{SR, conversation};
use voxfleet_errors::Classified;
use voxfleet_speakers::{
    Diarization, DiarizeOptions, Diarizer, Method, Progress, Turn, diarization_error_rate,
};

fn diarizer() -> Diarizer {
    Diarizer::new(common::segmenter(), common::campplus())
}

fn run(d: &Diarizer, pcm: &[f32], opts: &DiarizeOptions) -> Diarization {
    let stop = AtomicBool::new(false);
    let mut last = None;
    let t = Instant::now();
    let r = d
        .run(pcm, opts, &mut |p: Progress| last = Some(p), &stop)
        .expect("diarize");
    eprintln!(
        "diarized {:.1} s in {:.2} s",
        pcm.len() as f64 / SR as f64,
        t.elapsed().as_secs_f64()
    );
    if let Some(p) = last {
        assert_eq!(p.done_ms, p.total_ms);
    }
    r
}

fn check(name: &str, r: &Diarization, reference: &[Turn], speakers: usize, bound: f64) {
    let report = diarization_error_rate(reference, &r.turns, 0.25);
    eprintln!(
        "{name}: DER {:.4} (missed {:.2} s, false alarm {:.2} s, confusion {:.2} s of {:.2} s), \
         {} speakers {:?}",
        report.der,
        report.missed,
        report.false_alarm,
        report.confusion,
        report.total,
        r.speakers.len(),
        r.speakers.iter().map(|s| s.speech_s).collect::<Vec<_>>()
    );
    assert_eq!(r.speakers.len(), speakers, "{name}: {:?}", r.turns);
    assert!(report.der < bound, "{name}: DER {}", report.der);
    for (i, s) in r.speakers.iter().enumerate() {
        assert_eq!(s.label, format!("SPEAKER_{i:02}"));
        let n: f32 = s.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-3, "{name}: norm {n}");
    }
    // Sorted, in range, speakers numbered by first appearance.
    let mut seen = 0;
    for w in r.turns.windows(2) {
        assert!(w[0].start <= w[1].start);
    }
    for t in &r.turns {
        assert!(t.start >= 0.0 && t.end <= r.duration_s + 1e-9 && t.end > t.start);
        assert!(
            t.speaker <= seen,
            "{name}: speaker {} before {seen}",
            t.speaker
        );
        seen = seen.max(t.speaker + 1);
    }
}

#[test]
fn two_voices() {
    let (pcm, reference) = conversation(&["en-us", "en-us+f3"], 50.0, 7);
    let d = diarizer();
    let r = run(&d, &pcm, &DiarizeOptions::default());
    check("two voices", &r, &reference, 2, 0.15);
    let r = run(
        &d,
        &pcm,
        &DiarizeOptions {
            num_speakers: Some(2),
            ..DiarizeOptions::default()
        },
    );
    check("two voices, num_speakers=2", &r, &reference, 2, 0.15);
}

/// A diarizer with a memo (the bench's parameter sweeps) gives what a fresh one gives, on a
/// second run of the same audio and with other clustering options.
#[test]
fn memo_changes_nothing() {
    let (pcm, _) = conversation(&["en-us", "en-us+f3"], 30.0, 11);
    let fresh = diarizer();
    let memo = diarizer().with_memo();
    for opts in [
        DiarizeOptions::default(),
        DiarizeOptions {
            threshold: Some(0.1),
            min_cluster_size: 3,
            ..DiarizeOptions::default()
        },
        DiarizeOptions {
            method: Method::SubSegments,
            ..DiarizeOptions::default()
        },
    ] {
        let want = run(&fresh, &pcm, &opts);
        assert_eq!(run(&memo, &pcm, &opts), want, "{opts:?}");
        assert_eq!(run(&memo, &pcm, &opts), want, "{opts:?}, again");
    }
    memo.forget();
    assert_eq!(
        run(&memo, &pcm, &DiarizeOptions::default()),
        run(&fresh, &pcm, &DiarizeOptions::default())
    );
}

/// The methods that are not the default (`voxfleet-bench-diarize --method`) run the whole way
/// on the same conversation: sub-segment labels, overlapped-frame votes and the hybrid's count.
#[test]
fn sub_segment_and_hybrid_methods_two_voices() {
    let (pcm, reference) = conversation(&["en-us", "en-us+f3"], 50.0, 7);
    let d = diarizer();
    for method in [Method::SubSegments, Method::Hybrid] {
        for num_speakers in [None, Some(2)] {
            let r = run(
                &d,
                &pcm,
                &DiarizeOptions {
                    method,
                    num_speakers,
                    ..DiarizeOptions::default()
                },
            );
            check(
                &format!("two voices, {method:?}, num_speakers={num_speakers:?}"),
                &r,
                &reference,
                2,
                0.15,
            );
        }
    }
}

#[test]
fn ge2e_two_voices() {
    let (pcm, reference) = conversation(&["en-us", "en-us+f3"], 40.0, 3);
    let d = Diarizer::new(common::segmenter(), common::ge2e());
    let r = run(&d, &pcm, &DiarizeOptions::default());
    check("two voices (GE2E)", &r, &reference, 2, 0.2);
}

#[test]
fn short_silent_and_empty_input() {
    let d = diarizer();
    let speech = common::speak("en-us", "Hello there.");
    let inputs: Vec<(&str, Vec<f32>)> = vec![
        ("empty", vec![]),
        (
            "0.3 s speech",
            speech[..(SR * 3 / 10).min(speech.len())].to_vec(),
        ),
        ("1 s speech", speech[..SR.min(speech.len())].to_vec()),
        ("10 s silence", vec![0.0; 10 * SR]),
        ("1 sample", vec![0.5]),
    ];
    for (name, pcm) in inputs {
        let r = run(&d, &pcm, &DiarizeOptions::default());
        eprintln!(
            "{name}: {} speakers, {} turns",
            r.speakers.len(),
            r.turns.len()
        );
        assert!(r.speakers.len() <= 1, "{name}: {:?}", r.speakers.len());
        assert!((r.duration_s - pcm.len() as f64 / SR as f64).abs() < 1e-9);
        if name.contains("silence") || name == "empty" {
            assert!(r.turns.is_empty(), "{name}: {:?}", r.turns);
        }
    }
}

#[test]
fn cancellation_and_bad_options() {
    let d = diarizer();
    let pcm = vec![0.0f32; 30 * SR];
    let stop = AtomicBool::new(true);
    let e = d
        .run(&pcm, &DiarizeOptions::default(), &mut |_| {}, &stop)
        .unwrap_err();
    assert_eq!(e.code(), "cancelled");
    // Stopped from the progress callback, mid-run.
    let stop = AtomicBool::new(false);
    let (speech, _) = conversation(&["en-us", "en-us+f3"], 25.0, 5);
    let e = d
        .run(
            &speech,
            &DiarizeOptions::default(),
            &mut |_| stop.store(true, std::sync::atomic::Ordering::Relaxed),
            &stop,
        )
        .unwrap_err();
    assert_eq!(e.code(), "cancelled");
    let bad = DiarizeOptions {
        min_speakers: Some(3),
        max_speakers: Some(2),
        ..DiarizeOptions::default()
    };
    let e = d
        .run(&pcm, &bad, &mut |_| {}, &AtomicBool::new(false))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_options");
}
