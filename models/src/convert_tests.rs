use super::*;
use crate::testing::whisper_ct2;

fn f16s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

#[test]
fn synthetic_model_maps_to_every_candle_tensor() {
    let buf = whisper_ct2(4, 2, 3, 10);
    let m = Ct2Model::parse(&buf).unwrap();
    let extras = Ct2WhisperExtras {
        suppress_ids: vec![1, 2],
        suppress_ids_begin: vec![9],
    };
    let c = convert_whisper(&m, &extras).unwrap();
    let cfg = &c.config;
    assert_eq!(
        (
            cfg.d_model,
            cfg.encoder_layers,
            cfg.decoder_layers,
            cfg.num_mel_bins,
            cfg.vocab_size
        ),
        (4, 2, 2, 3, 10)
    );
    assert_eq!(
        (cfg.encoder_attention_heads, cfg.decoder_attention_heads),
        (2, 2)
    );
    assert_eq!(
        (cfg.max_source_positions, cfg.max_target_positions),
        (15, 8)
    );
    assert_eq!(cfg.suppress_tokens, vec![1, 2]);
    assert_eq!(cfg.begin_suppress_tokens, vec![9]);
    assert!(!cfg.multilingual());
    let names: BTreeSet<&str> = c.tensors.iter().map(|t| t.name.as_str()).collect();
    let expected = expected_tensors(cfg);
    assert_eq!(names, expected.keys().map(String::as_str).collect());
    assert!(!names.contains("model.encoder.layers.0.self_attn.k_proj.bias"));
    assert!(names.contains("model.decoder.layers.1.encoder_attn.k_proj.weight"));
}

#[test]
fn fused_projections_split_by_rows() {
    let d = 4;
    let buf = whisper_ct2(d, 1, 3, 10);
    let m = Ct2Model::parse(&buf).unwrap();
    let c = convert_whisper(&m, &Ct2WhisperExtras::default()).unwrap();
    let get = |n: &str| c.tensors.iter().find(|t| t.name == n).unwrap();
    let fused = f16s(
        m.get("encoder/layer_0/self_attention/linear_0/weight")
            .unwrap()
            .data,
    );
    let p = "model.encoder.layers.0.self_attn";
    for (k, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
        let t = get(&format!("{p}.{proj}.weight"));
        assert_eq!(t.shape, vec![d, d]);
        assert_eq!(f16s(t.data), fused[k * d * d..(k + 1) * d * d], "{proj}");
    }
    let fused_b = f16s(
        m.get("encoder/layer_0/self_attention/linear_0/bias")
            .unwrap()
            .data,
    );
    assert_eq!(
        f16s(get(&format!("{p}.v_proj.bias")).data),
        fused_b[2 * d..]
    );
    let kv = f16s(
        m.get("decoder/layer_0/attention/linear_1/weight")
            .unwrap()
            .data,
    );
    let x = "model.decoder.layers.0.encoder_attn";
    assert_eq!(f16s(get(&format!("{x}.k_proj.weight")).data), kv[..d * d]);
    assert_eq!(f16s(get(&format!("{x}.v_proj.weight")).data), kv[d * d..]);
    let ln = get("model.decoder.layers.0.encoder_attn_layer_norm.weight");
    assert_eq!(
        ln.data,
        m.get("decoder/layer_0/attention/layer_norm/gamma")
            .unwrap()
            .data
    );
}

#[test]
fn safetensors_round_trip() {
    let buf = whisper_ct2(4, 1, 3, 10);
    let m = Ct2Model::parse(&buf).unwrap();
    let c = convert_whisper(&m, &Ct2WhisperExtras::default()).unwrap();
    let bytes = c.to_safetensors().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names().len(), c.tensors.len());
    let t = st.tensor("model.decoder.embed_tokens.weight").unwrap();
    assert_eq!(t.shape(), &[10, 4]);
    assert_eq!(t.dtype(), safetensors::Dtype::F16);
    let cfg: WhisperConfig = serde_json::from_slice(&c.config_json()).unwrap();
    assert_eq!(cfg, c.config);
}

#[test]
fn missing_or_unexpected_variables_are_errors() {
    let mut buf = whisper_ct2(4, 1, 3, 10);
    // Rename a needed variable: `fc1` disappears and an unknown name appears.
    let pat = b"encoder/layer_0/ffn/linear_0/bias";
    let at = buf.windows(pat.len()).position(|w| w == pat).unwrap();
    buf[at + 20..at + 26].copy_from_slice(b"lineaX");
    let m = Ct2Model::parse(&buf).unwrap();
    let e = convert_whisper(&m, &Ct2WhisperExtras::default()).unwrap_err();
    assert!(e.message.contains("unexpected variable"), "{e}");

    let buf = crate::ct2::write("TransformerSpec", 1, &[], &[]);
    let m = Ct2Model::parse(&buf).unwrap();
    let e = convert_whisper(&m, &Ct2WhisperExtras::default()).unwrap_err();
    assert!(e.message.contains("WhisperSpec"), "{e}");
}
