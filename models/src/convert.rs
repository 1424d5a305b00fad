//! CTranslate2 Whisper (`model.bin`) → HF/candle-named `model.safetensors` + `config.json`.
//!
//! Tensors keep their stored dtype (f16 here; candle converts on load) and are borrowed from the
//! source buffer: the fused projections are split along rows, which for row-major data are
//! contiguous byte ranges. The result is checked against [`expected_tensors`], the list of names
//! and shapes candle-transformers' `whisper::model::Whisper::load` reads, before it is written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ct2::{Ct2Model, DType, Variable};
use crate::error::FormatError;

/// `config.json` as candle-transformers' `whisper::Config` reads it, plus the HF name for the
/// begin-suppress list (candle ignores unknown fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperConfig {
    pub model_type: String,
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub d_model: usize,
    pub encoder_attention_heads: usize,
    pub encoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub vocab_size: usize,
    pub max_target_positions: usize,
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
}

impl WhisperConfig {
    /// Multilingual checkpoints have 51865+ tokens; English-only ones 51864.
    pub fn multilingual(&self) -> bool {
        self.vocab_size >= 51865
    }
}

/// The `config.json` shipped next to a CTranslate2 Whisper model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Ct2WhisperExtras {
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
}

/// One output tensor, borrowing the source bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutTensor<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct ConvertedWhisper<'a> {
    pub config: WhisperConfig,
    pub tensors: Vec<OutTensor<'a>>,
}

/// How one CTranslate2 variable becomes HF tensors.
enum Target {
    One(String),
    /// Split along rows into equal parts; `None` parts are dropped.
    Split(Vec<Option<String>>),
}

/// HF name(s) for a CTranslate2 variable name; `None` when it is not a weight we map.
fn target(name: &str) -> Option<Target> {
    let (side, rest) = name.split_once('/')?;
    if side != "encoder" && side != "decoder" {
        return None;
    }
    let pre = format!("model.{side}");
    let wb = |leaf: &str| match leaf {
        "gamma" | "weight" => Some("weight"),
        "beta" | "bias" => Some("bias"),
        _ => None,
    };
    let one = |s: String| Some(Target::One(s));
    match rest {
        "embeddings/weight" if side == "decoder" => {
            return one(format!("{pre}.embed_tokens.weight"));
        }
        "position_encodings/encodings" => return one(format!("{pre}.embed_positions.weight")),
        _ => {}
    }
    if let Some(leaf) = rest.strip_prefix("layer_norm/") {
        return one(format!("{pre}.layer_norm.{}", wb(leaf)?));
    }
    if let Some(c) = rest.strip_prefix("conv") {
        let (n, leaf) = c.split_once('/')?;
        if side == "encoder" && (n == "1" || n == "2") {
            return one(format!("{pre}.conv{n}.{}", wb(leaf)?));
        }
        return None;
    }
    let rest = rest.strip_prefix("layer_")?;
    let (i, rest) = rest.split_once('/')?;
    let i: usize = i.parse().ok()?;
    let l = format!("{pre}.layers.{i}");
    let (block, rest) = rest.split_once('/')?;
    let (module, leaf) = rest.rsplit_once('/')?;
    let leaf = wb(leaf)?;
    let is_bias = leaf == "bias";
    let attn = match block {
        "self_attention" => "self_attn",
        "attention" if side == "decoder" => "encoder_attn",
        "ffn" => {
            return match module {
                "layer_norm" => one(format!("{l}.final_layer_norm.{leaf}")),
                "linear_0" => one(format!("{l}.fc1.{leaf}")),
                "linear_1" => one(format!("{l}.fc2.{leaf}")),
                _ => None,
            };
        }
        _ => return None,
    };
    let p = |proj: &str| format!("{l}.{attn}.{proj}.{leaf}");
    // The key projection has no bias in HF/candle: CTranslate2 stores zeros there (and a
    // constant key bias would not change the softmax anyway), so the part is dropped.
    let k = if is_bias { None } else { Some(p("k_proj")) };
    match (block, module) {
        (_, "layer_norm") => one(format!("{l}.{attn}_layer_norm.{leaf}")),
        ("self_attention", "linear_0") => {
            Some(Target::Split(vec![Some(p("q_proj")), k, Some(p("v_proj"))]))
        }
        ("self_attention", "linear_1") => one(p("out_proj")),
        ("attention", "linear_0") => one(p("q_proj")),
        ("attention", "linear_1") => Some(Target::Split(vec![k, Some(p("v_proj"))])),
        ("attention", "linear_2") => one(p("out_proj")),
        _ => None,
    }
}

fn dims_of<'v>(m: &'v Ct2Model<'_>, name: &str, rank: usize) -> Result<&'v [usize], FormatError> {
    let v = m
        .get(name)
        .ok_or_else(|| FormatError::new(0, format!("missing variable `{name}`")))?;
    if v.dims.len() != rank {
        return Err(FormatError::new(
            0,
            format!("`{name}` has dims {:?}, expected rank {rank}", v.dims),
        ));
    }
    Ok(&v.dims)
}

fn scalar(m: &Ct2Model<'_>, name: &str) -> Result<usize, FormatError> {
    m.get(name)
        .and_then(Variable::scalar_int)
        .and_then(|x| usize::try_from(x).ok())
        .filter(|&x| x > 0)
        .ok_or_else(|| FormatError::new(0, format!("missing or invalid scalar `{name}`")))
}

fn count_layers(m: &Ct2Model<'_>, side: &str) -> usize {
    let prefix = format!("{side}/layer_");
    let set: BTreeSet<usize> = m
        .variables
        .iter()
        .filter_map(|v| {
            v.name
                .strip_prefix(&prefix)?
                .split('/')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    set.len()
}

/// Derives the candle config from tensor shapes and the `num_heads` scalars.
pub fn whisper_config(
    m: &Ct2Model<'_>,
    extras: &Ct2WhisperExtras,
) -> Result<WhisperConfig, FormatError> {
    if let Some(spec) = &m.spec
        && spec != "WhisperSpec"
    {
        return Err(FormatError::new(
            0,
            format!("spec is `{spec}`, not `WhisperSpec`"),
        ));
    }
    let emb = dims_of(m, "decoder/embeddings/weight", 2)?;
    let conv1 = dims_of(m, "encoder/conv1/weight", 3)?;
    Ok(WhisperConfig {
        model_type: "whisper".into(),
        num_mel_bins: conv1[1],
        max_source_positions: dims_of(m, "encoder/position_encodings/encodings", 2)?[0],
        d_model: emb[1],
        encoder_attention_heads: scalar(m, "encoder/num_heads")?,
        encoder_layers: count_layers(m, "encoder"),
        decoder_attention_heads: scalar(m, "decoder/num_heads")?,
        decoder_layers: count_layers(m, "decoder"),
        vocab_size: emb[0],
        max_target_positions: dims_of(m, "decoder/position_encodings/encodings", 2)?[0],
        suppress_tokens: extras.suppress_ids.clone(),
        begin_suppress_tokens: extras.suppress_ids_begin.clone(),
    })
}

/// Every tensor (name, shape) that candle-transformers 0.11.1 `Whisper::load` reads for
/// `cfg` (from `whisper/model.rs`: conv1d, layer_norm, linear / linear_no_bias for k_proj,
/// embedding, `embed_positions.weight` of the decoder), plus the encoder's stored positions.
pub fn expected_tensors(cfg: &WhisperConfig) -> BTreeMap<String, Vec<usize>> {
    let d = cfg.d_model;
    let mut t = BTreeMap::new();
    let mut put = |n: String, s: Vec<usize>| {
        t.insert(n, s);
    };
    let ln = |put: &mut dyn FnMut(String, Vec<usize>), p: String| {
        put(format!("{p}.weight"), vec![d]);
        put(format!("{p}.bias"), vec![d]);
    };
    let attn = |put: &mut dyn FnMut(String, Vec<usize>), p: String| {
        for proj in ["q_proj", "v_proj", "out_proj"] {
            put(format!("{p}.{proj}.weight"), vec![d, d]);
            put(format!("{p}.{proj}.bias"), vec![d]);
        }
        put(format!("{p}.k_proj.weight"), vec![d, d]);
    };
    let e = "model.encoder";
    put(format!("{e}.conv1.weight"), vec![d, cfg.num_mel_bins, 3]);
    put(format!("{e}.conv1.bias"), vec![d]);
    put(format!("{e}.conv2.weight"), vec![d, d, 3]);
    put(format!("{e}.conv2.bias"), vec![d]);
    put(
        format!("{e}.embed_positions.weight"),
        vec![cfg.max_source_positions, d],
    );
    ln(&mut put, format!("{e}.layer_norm"));
    let dec = "model.decoder";
    put(
        format!("{dec}.embed_tokens.weight"),
        vec![cfg.vocab_size, d],
    );
    put(
        format!("{dec}.embed_positions.weight"),
        vec![cfg.max_target_positions, d],
    );
    ln(&mut put, format!("{dec}.layer_norm"));
    for (side, n, cross) in [
        (e, cfg.encoder_layers, false),
        (dec, cfg.decoder_layers, true),
    ] {
        for i in 0..n {
            let l = format!("{side}.layers.{i}");
            attn(&mut put, format!("{l}.self_attn"));
            ln(&mut put, format!("{l}.self_attn_layer_norm"));
            if cross {
                attn(&mut put, format!("{l}.encoder_attn"));
                ln(&mut put, format!("{l}.encoder_attn_layer_norm"));
            }
            put(format!("{l}.fc1.weight"), vec![4 * d, d]);
            put(format!("{l}.fc1.bias"), vec![4 * d]);
            put(format!("{l}.fc2.weight"), vec![d, 4 * d]);
            put(format!("{l}.fc2.bias"), vec![d]);
            ln(&mut put, format!("{l}.final_layer_norm"));
        }
    }
    t
}

/// Maps every weight of a CTranslate2 Whisper model to HF names and checks the result holds
/// exactly the tensors candle needs, with the right shapes.
pub fn convert_whisper<'a>(
    m: &Ct2Model<'a>,
    extras: &Ct2WhisperExtras,
) -> Result<ConvertedWhisper<'a>, FormatError> {
    let config = whisper_config(m, extras)?;
    let mut tensors = Vec::new();
    for v in &m.variables {
        if v.dims.is_empty() {
            continue; // scalar options (num_heads, activation, pre_norm, …)
        }
        let Some(t) = target(&v.name) else {
            return Err(FormatError::new(
                0,
                format!("unexpected variable `{}`", v.name),
            ));
        };
        match t {
            Target::One(name) => tensors.push(OutTensor {
                name,
                shape: v.dims.clone(),
                dtype: v.dtype,
                data: v.data,
            }),
            Target::Split(parts) => {
                let n = parts.len();
                if v.dims[0] % n != 0 {
                    return Err(FormatError::new(
                        0,
                        format!("`{}` {:?} does not split in {n}", v.name, v.dims),
                    ));
                }
                let mut shape = v.dims.clone();
                shape[0] /= n;
                let chunk = v.data.len() / n;
                for (k, part) in parts.into_iter().enumerate() {
                    if let Some(name) = part {
                        tensors.push(OutTensor {
                            name,
                            shape: shape.clone(),
                            dtype: v.dtype,
                            data: &v.data[k * chunk..(k + 1) * chunk],
                        });
                    }
                }
            }
        }
    }
    let expected = expected_tensors(&config);
    let got: BTreeMap<&str, &[usize]> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    if got.len() != tensors.len() {
        return Err(FormatError::new(
            0,
            "two variables map to the same tensor name",
        ));
    }
    for (name, shape) in &expected {
        match got.get(name.as_str()) {
            None => return Err(FormatError::new(0, format!("no variable for `{name}`"))),
            Some(s) if *s != shape.as_slice() => {
                return Err(FormatError::new(
                    0,
                    format!("`{name}` has shape {s:?}, candle expects {shape:?}"),
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = got.keys().find(|n| !expected.contains_key(**n)) {
        return Err(FormatError::new(0, format!("unexpected tensor `{extra}`")));
    }
    Ok(ConvertedWhisper { config, tensors })
}

impl ConvertedWhisper<'_> {
    /// The `model.safetensors` bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, FormatError> {
        use safetensors::tensor::TensorView;
        let views = self
            .tensors
            .iter()
            .map(|t| {
                let dt = match t.dtype {
                    DType::F32 => safetensors::Dtype::F32,
                    DType::I8 => safetensors::Dtype::I8,
                    DType::I16 => safetensors::Dtype::I16,
                    DType::I32 => safetensors::Dtype::I32,
                    DType::F16 => safetensors::Dtype::F16,
                    DType::BF16 => safetensors::Dtype::BF16,
                };
                TensorView::new(dt, t.shape.clone(), t.data)
                    .map(|v| (t.name.clone(), v))
                    .map_err(|e| FormatError::new(0, format!("tensor `{}`: {e}", t.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = [("format".to_string(), "pt".to_string())].into();
        safetensors::tensor::serialize(views, Some(meta))
            .map_err(|e| FormatError::new(0, format!("serialising safetensors: {e}")))
    }

    /// The `config.json` bytes (pretty-printed).
    pub fn config_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(&self.config).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
