//! [`TextEmbedder`]: sentence-transformers' all-MiniLM-L6-v2 pipeline (WordPiece tokens
//! truncated to 256 with `[CLS]`/`[SEP]`, the BERT encoder, mean pooling over the attention
//! mask, L2 normalisation) on one of two backends: candle (f32 safetensors) or ONNX Runtime
//! (the int8 export).
//!
//! Texts are tokenized together, sorted by token count and run in batches of
//! [`EmbedOptions::batch_size`], each padded only to its own longest text; results come back
//! in the callers' order. A [`TextEmbedder`] is `Send + Sync`: share it in an `Arc`. The candle
//! model runs calls concurrently; the ONNX session sits behind a `Mutex` (calls are serialised
//! and ONNX Runtime parallelises inside each run).

use std::path::Path;

use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};
use voxfleet_models::{ModelsDir, TextModelFormat};

use crate::batch::Batch;
pub use crate::batch::DIM;
use crate::error::TextEmbedError;

/// Word pieces a text is cut to, `[CLS]` and `[SEP]` included (sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2).
pub const MAX_TOKENS: usize = 256;

/// Options for [`TextEmbedder::load_with`].
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Texts per forward pass. Default 32.
    pub batch_size: usize,
    /// Where the candle backend runs. Default CPU; `cuda` needs this crate's `cuda` feature.
    /// The ONNX backend always runs on the CPU.
    pub device: candle_core::Device,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            device: candle_core::Device::Cpu,
        }
    }
}

enum Backend {
    Candle(Box<crate::bert_candle::CandleBert>),
    Onnx(crate::bert_onnx::OnnxBert),
}

/// A loaded text-embedding model (see the module docs).
pub struct TextEmbedder {
    name: String,
    tokenizer: Tokenizer,
    backend: Backend,
    batch_size: usize,
}

impl std::fmt::Debug for TextEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEmbedder")
            .field("name", &self.name)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl TextEmbedder {
    /// Loads `name` (`all-minilm-l6-v2` on candle, `all-minilm-l6-v2-int8` on ONNX Runtime, or
    /// their aliases) from the models directory, with the default options. The ONNX model
    /// starts the process's ONNX Runtime from the models directory if it is not up yet.
    pub fn load(models: &ModelsDir, name: &str) -> Result<Self, TextEmbedError> {
        Self::load_with(models, name, &EmbedOptions::default())
    }

    /// [`TextEmbedder::load`] with options.
    pub fn load_with(
        models: &ModelsDir,
        name: &str,
        opts: &EmbedOptions,
    ) -> Result<Self, TextEmbedError> {
        if opts.batch_size == 0 {
            return Err(TextEmbedError::InvalidOptions(
                "batch_size must be at least 1".into(),
            ));
        }
        let files = models.text_model(name)?;
        let tokenizer = load_tokenizer(&files.tokenizer)?;
        let backend = match files.format {
            TextModelFormat::BertSafetensors => Backend::Candle(Box::new(
                crate::bert_candle::CandleBert::load(&files.weights, &opts.device)?,
            )),
            TextModelFormat::Onnx => {
                voxfleet_models::onnx::ensure_onnxruntime(models)?;
                Backend::Onnx(crate::bert_onnx::OnnxBert::load(&files.weights)?)
            }
        };
        tracing::info!(model = %files.name, "text embedding model loaded");
        Ok(Self {
            name: files.name,
            tokenizer,
            backend,
            batch_size: opts.batch_size,
        })
    }

    /// Registry name of the model (`all-minilm-l6-v2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size of the embeddings (384).
    pub fn dim(&self) -> usize {
        DIM
    }

    /// One unit-length embedding per text, in the order given. Texts longer than
    /// [`MAX_TOKENS`] word pieces are truncated; an empty text embeds `[CLS] [SEP]`.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, TextEmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| TextEmbedError::inference("tokenizing", e))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for group in order.chunks(self.batch_size) {
            let batch = pad(group.iter().map(|&i| &encodings[i]));
            let hidden = match &self.backend {
                Backend::Candle(m) => m.forward(&batch)?,
                Backend::Onnx(m) => m.forward(&batch)?,
            };
            if hidden.len() != batch.rows * batch.len * DIM {
                return Err(TextEmbedError::inference(
                    "text embedding output",
                    format!(
                        "expected {}×{}×{DIM} values, got {}",
                        batch.rows,
                        batch.len,
                        hidden.len()
                    ),
                ));
            }
            for (row, &i) in group.iter().enumerate() {
                out[i] = mean_pool_normalise(&hidden, &batch, row);
            }
        }
        Ok(out)
    }
}

/// The tokenizer as sentence-transformers runs it: truncation to [`MAX_TOKENS`] (the file says
/// 128), no padding (batches are padded here, each to its own longest text).
fn load_tokenizer(path: &Path) -> Result<Tokenizer, TextEmbedError> {
    const WHAT: &str = "tokenizer";
    let mut tok = Tokenizer::from_file(path).map_err(|e| TextEmbedError::format(WHAT, path, e))?;
    tok.with_padding(None);
    tok.with_truncation(Some(TruncationParams {
        direction: TruncationDirection::Right,
        max_length: MAX_TOKENS,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
    }))
    .map_err(|e| TextEmbedError::format(WHAT, path, e))?;
    Ok(tok)
}

/// Right-pads encodings with id 0 and mask 0 to the longest of them.
fn pad<'e>(encodings: impl Iterator<Item = &'e Encoding> + Clone) -> Batch {
    let len = encodings.clone().map(Encoding::len).max().unwrap_or(0);
    let rows = encodings.clone().count();
    let mut b = Batch {
        rows,
        len,
        ids: vec![0; rows * len],
        mask: vec![0; rows * len],
        type_ids: vec![0; rows * len],
    };
    for (r, e) in encodings.enumerate() {
        let at = r * len;
        let n = e.len();
        b.ids[at..at + n].copy_from_slice(e.get_ids());
        b.mask[at..at + n].copy_from_slice(e.get_attention_mask());
        b.type_ids[at..at + n].copy_from_slice(e.get_type_ids());
    }
    b
}

/// Mean of row `row`'s hidden states (`[rows, len, DIM]`) over its attention mask, scaled to
/// unit length (sentence-transformers' Pooling + Normalize).
fn mean_pool_normalise(hidden: &[f32], batch: &Batch, row: usize) -> Vec<f32> {
    let mut sum = vec![0f64; DIM];
    let mut count = 0f64;
    for t in 0..batch.len {
        let m = batch.mask[row * batch.len + t];
        if m == 0 {
            continue;
        }
        count += f64::from(m);
        let h = &hidden[(row * batch.len + t) * DIM..][..DIM];
        for (s, &v) in sum.iter_mut().zip(h) {
            *s += f64::from(m) * f64::from(v);
        }
    }
    let count = count.max(1e-9);
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    mean.iter().map(|v| (v / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        let batch = Batch {
            rows: 1,
            len: 3,
            ids: vec![101, 7, 0],
            mask: vec![1, 1, 0],
            type_ids: vec![0; 3],
        };
        let mut hidden = vec![0f32; 3 * DIM];
        hidden[0] = 3.0; // token 0, dim 0
        hidden[DIM + 1] = 4.0; // token 1, dim 1
        hidden[2 * DIM + 2] = 100.0; // padding: ignored
        let v = mean_pool_normalise(&hidden, &batch, 0);
        assert!(
            (v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6,
            "{:?}",
            &v[..3]
        );
        assert_eq!(v[2], 0.0);
    }
}
