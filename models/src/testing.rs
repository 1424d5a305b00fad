//! Builders for small synthetic inputs, shared by unit and integration tests.

use crate::ct2::{self, DType};

/// A CTranslate2 `model.bin` shaped like Whisper with `d_model` = `d`, `layers` encoder and
/// decoder layers, `mels` mel bins, `vocab` tokens, 2 heads, f16 weights. Each tensor's
/// elements are `index as f16` plus a per-tensor offset of 1000 × its position in the file,
/// so tests can tell which source rows ended up where (values saturate at f16's range, which
/// does not matter for name and shape checks).
pub fn whisper_ct2(d: usize, layers: usize, mels: usize, vocab: usize) -> Vec<u8> {
    let mut vars: Vec<(String, Vec<usize>, DType, Vec<u8>)> = Vec::new();
    let mut add = |name: String, dims: Vec<usize>| {
        let n: usize = dims.iter().product();
        let base = vars.len() as f32 * 1000.0;
        let data = (0..n)
            .flat_map(|i| half::f16::from_f32(base + i as f32).to_le_bytes())
            .collect();
        vars.push((name, dims, DType::F16, data));
    };
    for side in ["encoder", "decoder"] {
        for i in 0..layers {
            let l = format!("{side}/layer_{i}");
            let blocks: &[&str] = if side == "decoder" {
                &["self_attention", "attention"]
            } else {
                &["self_attention"]
            };
            for b in blocks {
                add(format!("{l}/{b}/layer_norm/gamma"), vec![d]);
                add(format!("{l}/{b}/layer_norm/beta"), vec![d]);
                if *b == "self_attention" {
                    add(format!("{l}/{b}/linear_0/weight"), vec![3 * d, d]);
                    add(format!("{l}/{b}/linear_0/bias"), vec![3 * d]);
                    add(format!("{l}/{b}/linear_1/weight"), vec![d, d]);
                    add(format!("{l}/{b}/linear_1/bias"), vec![d]);
                } else {
                    add(format!("{l}/{b}/linear_0/weight"), vec![d, d]);
                    add(format!("{l}/{b}/linear_0/bias"), vec![d]);
                    add(format!("{l}/{b}/linear_1/weight"), vec![2 * d, d]);
                    add(format!("{l}/{b}/linear_1/bias"), vec![2 * d]);
                    add(format!("{l}/{b}/linear_2/weight"), vec![d, d]);
                    add(format!("{l}/{b}/linear_2/bias"), vec![d]);
                }
            }
            add(format!("{l}/ffn/layer_norm/gamma"), vec![d]);
            add(format!("{l}/ffn/layer_norm/beta"), vec![d]);
            add(format!("{l}/ffn/linear_0/weight"), vec![4 * d, d]);
            add(format!("{l}/ffn/linear_0/bias"), vec![4 * d]);
            add(format!("{l}/ffn/linear_1/weight"), vec![d, 4 * d]);
            add(format!("{l}/ffn/linear_1/bias"), vec![d]);
        }
        add(format!("{side}/layer_norm/gamma"), vec![d]);
        add(format!("{side}/layer_norm/beta"), vec![d]);
    }
    add("encoder/conv1/weight".into(), vec![d, mels, 3]);
    add("encoder/conv1/bias".into(), vec![d]);
    add("encoder/conv2/weight".into(), vec![d, d, 3]);
    add("encoder/conv2/bias".into(), vec![d]);
    add("encoder/position_encodings/encodings".into(), vec![15, d]);
    add("decoder/position_encodings/encodings".into(), vec![8, d]);
    add("decoder/embeddings/weight".into(), vec![vocab, d]);
    let heads = 2i16.to_le_bytes().to_vec();
    vars.push((
        "encoder/num_heads".into(),
        vec![],
        DType::I16,
        heads.clone(),
    ));
    vars.push(("decoder/num_heads".into(), vec![], DType::I16, heads));
    vars.push(("decoder/pre_norm".into(), vec![], DType::I8, vec![1]));
    let refs: Vec<(&str, &[usize], DType, &[u8])> = vars
        .iter()
        .map(|(n, d, t, b)| (n.as_str(), d.as_slice(), *t, b.as_slice()))
        .collect();
    ct2::write(
        "WhisperSpec",
        3,
        &refs,
        &[("decoder/projection/weight", "decoder/embeddings/weight")],
    )
}
