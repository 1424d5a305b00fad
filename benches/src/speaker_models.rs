//! The speaker models' files and ONNX Runtime, shared by `voxfleet-bench-speakers` and
//! `voxfleet-bench-diarize` (included with `#[path]`).
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// `VOXFLEET_MODELS_DIR`, else the default models directory.
pub fn models_dir() -> voxfleet_models::ModelsDir {
    voxfleet_models::ModelsDir::new(
        std::env::var_os("VOXFLEET_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(voxfleet_models::default_models_dir),
    )
}

/// `~/.cache/voxfleet/staging-onnx`: hand-converted models and ONNX Runtime, used when the
/// models directory has none.
pub fn staging() -> Result<PathBuf> {
    Ok(PathBuf::from(std::env::var("HOME").context("HOME")?).join(".cache/voxfleet/staging-onnx"))
}

/// ONNX Runtime: ORT_DYLIB_PATH or the models directory, else the staging copy.
pub fn start_onnxruntime(models: &voxfleet_models::ModelsDir) -> Result<String> {
    match voxfleet_models::onnx::ensure_onnxruntime(models) {
        Ok(()) => Ok(voxfleet_models::onnx::onnxruntime_path(models)
            .map(|(p, o)| format!("{} ({o})", p.display()))
            .unwrap_or_default()),
        Err(e) => {
            let lib = staging()?.join("libonnxruntime.so.1.23.2");
            if !lib.is_file() {
                bail!("ONNX Runtime: {e}; set ORT_DYLIB_PATH or run `models fetch`");
            }
            voxfleet_models::onnx::init_onnxruntime(&lib, "staging copy")?;
            Ok(format!("{} (staging copy; {e})", lib.display()))
        }
    }
}
