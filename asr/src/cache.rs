//! [`ModelCache`]: one per worker process; loads each model once per device and hands out `Arc`s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use voxfleet_models::ModelsDir;

use crate::vad::{SileroVad, init_onnxruntime};
use crate::{AsrError, DeviceSpec, EngineSettings, WhisperEngine};

/// A model held in memory, for the worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadedModel {
    pub name: String,
    pub device: String,
    /// Bytes of weights (device memory for Whisper; the ONNX file size for the VAD).
    pub bytes: u64,
}

/// Where ONNX Runtime comes from: `ORT_DYLIB_PATH` when set, else the models directory's copy
/// (`voxfleet_models::onnx::onnxruntime_path` with the error as an [`AsrError`]).
pub fn onnxruntime_path(models: &ModelsDir) -> Result<(PathBuf, &'static str), AsrError> {
    voxfleet_models::onnx::onnxruntime_path(models).map_err(crate::vad::onnx_error)
}

/// One model's slot: locked while it loads, so concurrent first users load it once.
type Slot = Arc<Mutex<Option<Arc<WhisperEngine>>>>;

/// Loaded models of one worker process. `Send + Sync`: share it (in an `Arc`) between job
/// handlers. A model is loaded on first use, under a per-name lock so that two jobs asking at
/// once load it once; loading failures are not cached (a later `models fetch` fixes them).
pub struct ModelCache {
    models: ModelsDir,
    device: DeviceSpec,
    settings: EngineSettings,
    whisper: Mutex<HashMap<String, Slot>>,
    /// The loaded ones, for [`ModelCache::loaded`] (never locked for longer than a lookup, so
    /// the heartbeat neither waits for a load nor misses a model another job is fetching).
    ready: Mutex<HashMap<String, Arc<WhisperEngine>>>,
    vad: Mutex<Option<Arc<SileroVad>>>,
}

impl ModelCache {
    /// Checks that `device` can be opened; loads nothing yet. Whisper runs on the default
    /// engine settings (CTranslate2, int8 on CPU).
    pub fn new(models: ModelsDir, device: DeviceSpec) -> Result<Self, AsrError> {
        Self::with_settings(models, device, EngineSettings::default())
    }

    /// As [`ModelCache::new`], with the engine, compute type and threads of `settings`.
    pub fn with_settings(
        models: ModelsDir,
        device: DeviceSpec,
        settings: EngineSettings,
    ) -> Result<Self, AsrError> {
        device.open()?;
        if settings.engine == crate::EngineKind::Ct2 {
            crate::ct2::check_device(device)?;
        }
        Ok(Self {
            models,
            device,
            settings,
            whisper: Mutex::new(HashMap::new()),
            ready: Mutex::new(HashMap::new()),
            vad: Mutex::new(None),
        })
    }

    pub fn device(&self) -> DeviceSpec {
        self.device
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub fn models_dir(&self) -> &ModelsDir {
        &self.models
    }

    /// The Whisper model `name` (`tiny.en`, `base`, or `whisper-tiny.en`…), loaded once.
    pub fn whisper(&self, name: &str) -> Result<Arc<WhisperEngine>, AsrError> {
        // The name is resolved first: an unknown one fails here, before any cache entry
        // exists for it (a stream of jobs with made-up names must not grow the map).
        let spec = voxfleet_models::registry::whisper(name).ok_or_else(|| {
            AsrError::from(voxfleet_models::ModelError::UnknownModel {
                name: name.chars().take(64).collect(),
                known: voxfleet_models::registry::whisper_names(),
            })
        })?;
        let slot = {
            let mut map = self.whisper.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(spec.name.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(engine) = slot.as_ref() {
            return Ok(engine.clone());
        }
        let files = self.models.whisper(spec.name)?;
        let engine = Arc::new(WhisperEngine::load(&files, self.device, &self.settings)?);
        *slot = Some(engine.clone());
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.name.to_string(), engine.clone());
        Ok(engine)
    }

    /// Silero VAD (and ONNX Runtime, on first use), loaded once.
    pub fn vad(&self) -> Result<Arc<SileroVad>, AsrError> {
        let mut slot = self.vad.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.as_ref() {
            return Ok(v.clone());
        }
        let (lib, origin) = onnxruntime_path(&self.models)?;
        init_onnxruntime(&lib, origin)?;
        let v = Arc::new(SileroVad::load(&self.models.silero_vad()?)?);
        *slot = Some(v.clone());
        Ok(v)
    }

    /// What is loaded, with its memory.
    pub fn loaded(&self) -> Vec<LoadedModel> {
        let engines: Vec<Arc<WhisperEngine>> = {
            let map = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            map.values().cloned().collect()
        };
        let mut out: Vec<LoadedModel> = engines
            .iter()
            .map(|e| LoadedModel {
                name: e.name().to_string(),
                device: self.device.to_string(),
                bytes: e.bytes(),
            })
            .collect();
        if let Some(v) = self.vad.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            out.push(LoadedModel {
                name: "silero-vad".into(),
                device: "cpu".into(),
                bytes: v.bytes(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_names_leave_no_cache_entry() {
        let dir = std::env::temp_dir().join(format!("voxfleet-asr-names-{}", std::process::id()));
        let cache = ModelCache::new(ModelsDir::new(&dir), DeviceSpec::Cpu).unwrap();
        for i in 0..50 {
            let name = format!("{i}{}", "m".repeat(1 << 20));
            let e = match cache.whisper(&name) {
                Err(e) => e,
                Ok(_) => panic!("loaded a model that does not exist"),
            };
            assert!(e.to_string().len() < 1000, "the name is not echoed whole");
        }
        assert!(cache.whisper.lock().unwrap().is_empty());
        // A known name gets its entry (and fails on the empty folder, as it should).
        assert!(cache.whisper("tiny.en").is_err());
        assert_eq!(
            cache.whisper.lock().unwrap().keys().collect::<Vec<_>>(),
            ["whisper-tiny.en"]
        );
    }

    #[test]
    fn missing_models_say_how_to_fetch() {
        let dir = std::env::temp_dir().join(format!("voxfleet-asr-empty-{}", std::process::id()));
        let cache = ModelCache::new(ModelsDir::new(&dir), DeviceSpec::Cpu).unwrap();
        let e = match cache.whisper("tiny.en") {
            Err(e) => e,
            Ok(_) => panic!("loaded a model from an empty directory"),
        };
        assert!(e.is_permanent());
        assert!(e.to_string().contains("models fetch"), "{e}");
        assert!(cache.loaded().is_empty());
    }

    #[test]
    fn cache_is_send_sync() {
        fn f<T: Send + Sync>() {}
        f::<ModelCache>();
        f::<WhisperEngine>();
        f::<SileroVad>();
    }
}
