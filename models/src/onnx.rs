//! ONNX Runtime start-up, shared by every crate that runs ONNX models (`asr`'s Silero VAD, the
//! `speakers` segmentation and embedding models).
//!
//! `ort` is built with `load-dynamic`: the runtime is `libonnxruntime.so`, loaded at run time
//! from `ORT_DYLIB_PATH` or from the models directory's `onnxruntime` entry ([`onnxruntime_path`]).
//! ort allows one environment per process: [`init_onnxruntime`] builds it once, and
//! [`onnx_environment`] hands it to whoever builds sessions. [`ensure_onnxruntime`] does both
//! steps for a [`ModelsDir`]. A missing library is an error (`model_missing`), never the panic
//! ort's first call would give.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::dir::ModelsDir;
use crate::error::ModelError;

/// The process's environment, or why it could not be built (kept: a failed load is not retried).
static ORT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `lib` once per process. `origin` says where the path came from
/// (`"ORT_DYLIB_PATH"`, `"models directory"`) for the error message. A missing file gives
/// [`ModelError::OnnxRuntimeMissing`]; a library that does not load gives
/// [`ModelError::OnnxRuntime`]. Once one call has tried to load a library, later calls (with an
/// existing `lib`) return that outcome: the runtime is never loaded twice.
pub fn init_onnxruntime(lib: &Path, origin: &'static str) -> Result<(), ModelError> {
    if !lib.is_file() {
        return Err(ModelError::OnnxRuntimeMissing {
            path: lib.to_path_buf(),
            origin,
        });
    }
    let r = ORT.get_or_init(|| {
        let builder = ort::init_from(lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        builder
            .with_name("voxfleet")
            .build()
            .map_err(|e| format!("{}: {e}", lib.display()))
    });
    r.as_ref()
        .map(|_| ())
        .map_err(|detail| ModelError::OnnxRuntime {
            detail: detail.clone(),
        })
}

/// The process's ONNX Runtime environment (ort allows one per process), once
/// [`init_onnxruntime`] has succeeded: every crate in the process builds its sessions on it.
pub fn onnx_environment() -> Option<&'static ort::environment::Environment> {
    ORT.get().and_then(|r| r.as_ref().ok())
}

/// Where ONNX Runtime comes from: `ORT_DYLIB_PATH` when set (and not empty), else the models
/// directory's verified copy. Returns the path and its origin, for [`init_onnxruntime`].
pub fn onnxruntime_path(models: &ModelsDir) -> Result<(PathBuf, &'static str), ModelError> {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => Ok((PathBuf::from(p), "ORT_DYLIB_PATH")),
        _ => Ok((models.onnxruntime()?, "models directory")),
    }
}

/// [`onnxruntime_path`] then [`init_onnxruntime`]; idempotent and cheap once the runtime is up
/// (the models directory is not consulted again).
pub fn ensure_onnxruntime(models: &ModelsDir) -> Result<(), ModelError> {
    if onnx_environment().is_some() {
        return Ok(());
    }
    let (lib, origin) = onnxruntime_path(models)?;
    init_onnxruntime(&lib, origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxfleet_errors::Classified;

    #[test]
    fn missing_library_is_an_error_not_a_panic() {
        let lib = Path::new("/nonexistent/voxfleet/libonnxruntime.so");
        let e = init_onnxruntime(lib, "ORT_DYLIB_PATH").unwrap_err();
        assert_eq!(e.code(), "model_missing");
        let s = e.to_string();
        assert!(s.contains("/nonexistent/voxfleet/libonnxruntime.so"), "{s}");
        assert!(s.contains("ORT_DYLIB_PATH"), "{s}");
    }
}
