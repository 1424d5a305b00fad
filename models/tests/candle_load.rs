//! The converter's output loads in candle-transformers' Whisper (which reads every tensor it
//! needs with its exact shape, so a missing or misnamed tensor fails here).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self, model::Whisper};
use voxfleet_models::convert::{Ct2WhisperExtras, convert_whisper};
use voxfleet_models::ct2::Ct2Model;
use voxfleet_models::testing::whisper_ct2;

#[test]
fn synthetic_conversion_loads_and_runs_in_candle() {
    let buf = whisper_ct2(8, 2, 4, 12);
    let m = Ct2Model::parse(&buf).unwrap();
    let conv = convert_whisper(&m, &Ct2WhisperExtras::default()).unwrap();
    let st = conv.to_safetensors().unwrap();
    let cfg: whisper::Config = serde_json::from_slice(&conv.config_json()).unwrap();
    assert_eq!(cfg.d_model, 8);
    let dev = Device::Cpu;
    let vb = VarBuilder::from_buffered_safetensors(st, DType::F32, &dev).unwrap();
    let mut model = Whisper::load(&vb, cfg.clone()).unwrap();
    // 4 mel bins × 20 frames → 10 encoder positions (≤ max_source_positions 15).
    let mel = Tensor::zeros((1, 4, 20), DType::F32, &dev).unwrap();
    let enc = model.encoder.forward(&mel, true).unwrap();
    assert_eq!(enc.dims(), &[1, 10, 8]);
    let tokens = Tensor::new(&[[1u32, 2, 3]], &dev).unwrap();
    let out = model.decoder.forward(&tokens, &enc, true).unwrap();
    let logits = model.decoder.final_linear(&out).unwrap();
    assert_eq!(logits.dims(), &[1, 3, 12]);
}
