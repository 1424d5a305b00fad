//! The ONNX Runtime backend: an exported BERT taking `input_ids`, `attention_mask` and
//! `token_type_ids` (int64 `[B, S]`) and giving `last_hidden_state` `[B, S, 384]`. Runs on the
//! process's ONNX Runtime environment (`voxfleet_models::onnx`).

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::batch::{Batch, DIM};
use crate::error::TextEmbedError;

const INPUTS: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];
const OUTPUT: &str = "last_hidden_state";

pub(crate) struct OnnxBert {
    session: Mutex<Session>,
    /// Whether the model takes `token_type_ids` (some exports drop it).
    type_ids: bool,
}

impl OnnxBert {
    pub fn load(path: &Path) -> Result<Self, TextEmbedError> {
        const WHAT: &str = "ONNX text embedding model";
        let env = voxfleet_models::onnx::onnx_environment()
            .ok_or(TextEmbedError::RuntimeNotInitialised)?;
        let fail = |e: String| TextEmbedError::format(WHAT, path, e);
        let session = Session::builder(env)
            .map_err(|e| fail(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| fail(e.to_string()))?;
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        if !INPUTS[..2].iter().all(|n| inputs.iter().any(|i| i == n))
            || !outputs.iter().any(|o| o == OUTPUT)
        {
            return Err(fail(format!(
                "expected inputs {INPUTS:?} and output {OUTPUT}, found {inputs:?} -> {outputs:?}"
            )));
        }
        Ok(Self {
            type_ids: inputs.iter().any(|i| i == INPUTS[2]),
            session: Mutex::new(session),
        })
    }

    /// Last hidden states, `[rows, len, DIM]` row-major.
    pub fn forward(&self, b: &Batch) -> Result<Vec<f32>, TextEmbedError> {
        let err = |context| move |e: ort::Error| TextEmbedError::inference(context, e);
        let tensor = |v: &[u32]| {
            Tensor::from_array((
                [b.rows, b.len],
                v.iter().map(|&x| i64::from(x)).collect::<Vec<i64>>(),
            ))
            .map_err(err("text embedding input"))
        };
        let ids = tensor(&b.ids)?;
        let mask = tensor(&b.mask)?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = if self.type_ids {
            let types = tensor(&b.type_ids)?;
            session.run(ort::inputs![
                INPUTS[0] => ids,
                INPUTS[1] => mask,
                INPUTS[2] => types
            ])
        } else {
            session.run(ort::inputs![INPUTS[0] => ids, INPUTS[1] => mask])
        }
        .map_err(err("running the ONNX text embedding model"))?;
        let (shape, data) = out[OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(err("text embedding output"))?;
        let want = [b.rows as i64, b.len as i64, DIM as i64];
        if shape[..] != want {
            return Err(TextEmbedError::inference(
                "text embedding output",
                format!("expected shape {want:?}, got {:?}", &shape[..]),
            ));
        }
        Ok(data.to_vec())
    }
}
