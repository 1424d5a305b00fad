//! The candle backend: `candle_transformers`' BERT with all-MiniLM-L6-v2's configuration,
//! f32 weights from safetensors.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, HiddenAct, PositionEmbeddingType};

use crate::batch::{Batch, DIM};
use crate::error::TextEmbedError;

/// all-MiniLM-L6-v2 (`nreimers/MiniLM-L6-H384-uncased`'s config.json).
fn minilm_l6_config() -> Config {
    Config {
        vocab_size: 30522,
        hidden_size: DIM,
        num_hidden_layers: 6,
        num_attention_heads: 12,
        intermediate_size: 1536,
        hidden_act: HiddenAct::Gelu,
        hidden_dropout_prob: 0.1,
        max_position_embeddings: 512,
        type_vocab_size: 2,
        initializer_range: 0.02,
        layer_norm_eps: 1e-12,
        pad_token_id: 0,
        position_embedding_type: PositionEmbeddingType::Absolute,
        use_cache: true,
        classifier_dropout: None,
        model_type: Some("bert".into()),
    }
}

pub(crate) struct CandleBert {
    model: BertModel,
    device: Device,
}

impl CandleBert {
    pub fn load(weights: &Path, device: &Device) -> Result<Self, TextEmbedError> {
        let bytes = std::fs::read(weights)
            .map_err(|e| TextEmbedError::format("BERT weights", weights, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .map_err(|e| TextEmbedError::format("BERT weights", weights, e))?;
        let model = BertModel::load(vb, &minilm_l6_config())
            .map_err(|e| TextEmbedError::format("BERT weights", weights, e))?;
        Ok(Self {
            model,
            device: device.clone(),
        })
    }

    /// Last hidden states, `[rows, len, DIM]` row-major.
    pub fn forward(&self, b: &Batch) -> Result<Vec<f32>, TextEmbedError> {
        let run = || -> candle_core::Result<Vec<f32>> {
            let shape = (b.rows, b.len);
            let ids = Tensor::from_slice(&b.ids, shape, &self.device)?;
            let types = Tensor::from_slice(&b.type_ids, shape, &self.device)?;
            let mask = Tensor::from_slice(&b.mask, shape, &self.device)?;
            let h = self.model.forward(&ids, &types, Some(&mask))?;
            h.flatten_all()?.to_dtype(DType::F32)?.to_vec1()
        };
        run().map_err(|e| TextEmbedError::inference("running BERT (candle)", e))
    }
}
