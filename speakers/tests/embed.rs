//! Speaker embeddings from the real models on espeak-ng voices: dimensions, unit norm, same
//! voice closer than different voices, voiceprints.

mod common;

use common::{SR, speak};
use voxfleet_errors::Classified;
use voxfleet_speakers::{Embedder, FrontEnd, cosine_similarity};

const MALE: &str = "en-us";
const FEMALE: &str = "en-us+f3";

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// (same-voice similarity, worst different-voice similarity) over two sentences per voice.
fn similarities(e: &Embedder) -> (f32, f32) {
    let a1 = speak(
        MALE,
        "The quick brown fox jumps over the lazy dog near the river bank.",
    );
    let a2 = speak(
        MALE,
        "Please send me the quarterly figures before Friday afternoon.",
    );
    let b1 = speak(
        FEMALE,
        "The quick brown fox jumps over the lazy dog near the river bank.",
    );
    let b2 = speak(
        FEMALE,
        "Please send me the quarterly figures before Friday afternoon.",
    );
    let embs = e
        .embed_clips(&[&a1[..], &a2[..], &b1[..], &b2[..]])
        .expect("embed");
    assert_eq!(embs.len(), 4);
    for v in &embs {
        assert_eq!(v.len(), e.dim());
        assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    }
    let same = cosine_similarity(&embs[0], &embs[1]).min(cosine_similarity(&embs[2], &embs[3]));
    let different = [(0, 2), (0, 3), (1, 2), (1, 3)]
        .iter()
        .map(|&(i, j)| cosine_similarity(&embs[i], &embs[j]))
        .fold(f32::MIN, f32::max);
    (same, different)
}

#[test]
fn campplus_separates_voices() {
    let e = common::campplus();
    assert_eq!(e.dim(), 192);
    assert!(matches!(e.front_end(), FrontEnd::Fbank80 { .. }));
    let (same, different) = similarities(&e);
    eprintln!("CAM++: same voice >= {same:.3}, different voices <= {different:.3}");
    assert!(same > different + 0.2, "same {same}, different {different}");
}

#[test]
fn ge2e_separates_voices() {
    let e = common::ge2e();
    assert_eq!(e.dim(), 256);
    assert_eq!(e.front_end(), FrontEnd::Ge2eMel40);
    let (same, different) = similarities(&e);
    eprintln!("GE2E: same voice >= {same:.3}, different voices <= {different:.3}");
    assert!(
        same > different + 0.05,
        "same {same}, different {different}"
    );
}

#[test]
fn batching_does_not_change_embeddings() {
    let e = common::campplus();
    let a = speak(MALE, "One two three four five six seven.");
    let b = speak(FEMALE, "One two three four five six seven.");
    let n = a.len().min(b.len());
    // Equal lengths: one batch of two; alone: two batches of one.
    let together = e.embed_clips(&[&a[..n], &b[..n]]).unwrap();
    let alone = [
        e.embed_clips(&[&a[..n]]).unwrap(),
        e.embed_clips(&[&b[..n]]).unwrap(),
    ];
    for (t, a) in together.iter().zip(&alone) {
        assert!(cosine_similarity(t, &a[0]) > 0.9999);
    }
}

#[test]
fn short_and_empty_clips() {
    for e in [common::campplus(), common::ge2e()] {
        // 0.1 s of tone: embedded (repeated up to the minimum), unit norm.
        let tone: Vec<f32> = (0..SR / 10).map(|i| (i as f32 * 0.2).sin() * 0.3).collect();
        let v = e.embed_clips(&[&tone[..]]).unwrap();
        assert!((norm(&v[0]) - 1.0).abs() < 1e-4);
        assert!(e.embed_clips(&[]).unwrap().is_empty());
        let empty: &[f32] = &[];
        let err = e.embed_clips(&[empty]).unwrap_err();
        assert_eq!(err.code(), "audio_too_short");
    }
}

#[test]
fn voiceprint_matches_the_voice() {
    for e in [common::campplus(), common::ge2e()] {
        let mut pcm = speak(
            MALE,
            "I would like to book a table for four people tonight.",
        );
        let male_end = pcm.len() as f64 / SR as f64;
        pcm.extend(vec![0.0; SR]);
        let female_start = pcm.len() as f64 / SR as f64;
        pcm.extend(speak(
            FEMALE,
            "Certainly, what time would suit you best this evening?",
        ));
        let end = pcm.len() as f64 / SR as f64;
        let male = e.voiceprint(&pcm, &[(0.0, male_end)]).unwrap().unwrap();
        let female = e.voiceprint(&pcm, &[(female_start, end)]).unwrap().unwrap();
        assert!((norm(&male) - 1.0).abs() < 1e-4);
        let probe = speak(MALE, "Thank you, see you at eight o'clock then.");
        let probe = e.embed_clips(&[&probe[..]]).unwrap();
        let to_male = cosine_similarity(&probe[0], &male);
        let to_female = cosine_similarity(&probe[0], &female);
        eprintln!(
            "{:?}: probe vs male {to_male:.3}, vs female {to_female:.3}",
            e.front_end()
        );
        assert!(to_male > to_female, "{to_male} {to_female}");
        // Under 0.5 s of speech, or no usable region: None.
        assert!(e.voiceprint(&pcm, &[(0.0, 0.3)]).unwrap().is_none());
        assert!(
            e.voiceprint(&pcm, &[(end + 5.0, end + 9.0)])
                .unwrap()
                .is_none()
        );
        assert!(e.voiceprint(&pcm, &[]).unwrap().is_none());
        assert!(e.voiceprint(&[], &[(0.0, 3.0)]).unwrap().is_none());
    }
}
