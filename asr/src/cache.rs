//! [`ModelCache`]: one per worker process; loads each model once per device and hands out `Arc`s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxfleet_models::ModelsDir;

use crate::vad::{SileroVad, init_onnxruntime};
use crate::{AsrError, DeviceSpec, EngineSettings, WhisperEngine};

/// A model held in memory, for the worker's heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadedModel {
    pub name: String,
    pub device: String,
    /// Bytes of weights (device memory for Whisper; the ONNX file size for the VAD).
    pub bytes: u64,
    /// Whisper's engine (`ct2`, `candle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// CTranslate2's compute type (`int8`, `float32`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_type: Option<String>,
    /// Seconds since a job last asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_s: Option<u64>,
    /// Jobs using it now.
    #[serde(default)]
    pub in_use: u32,
}

/// When Whisper models leave memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheLimits {
    /// Unload a model no job has asked for in this long ([`ModelCache::unload_idle`]).
    pub unload_idle_after: Option<Duration>,
    /// Bytes of Whisper weights the cache may hold: a load that would pass it first unloads
    /// models no job is using (least recently used first), then fails with
    /// [`AsrError::OverBudget`] rather than running out of memory mid-job.
    pub memory_budget: Option<u64>,
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
    ready: Mutex<HashMap<String, Ready>>,
    vad: Mutex<Option<Arc<SileroVad>>>,
    limits: CacheLimits,
}

/// A loaded model and when a job last asked for it.
struct Ready {
    engine: Arc<WhisperEngine>,
    used: Instant,
}

/// References a loaded engine has when no job holds it: its slot and its `ready` entry.
const IDLE_REFS: usize = 2;

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
            limits: CacheLimits::default(),
        })
    }

    /// The same cache with these unloading rules and memory budget.
    pub fn with_limits(mut self, limits: CacheLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> CacheLimits {
        self.limits
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
            let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = ready.get_mut(spec.name) {
                r.used = Instant::now();
            }
            return Ok(engine.clone());
        }
        let files = self.models.whisper(spec.name)?;
        if let Some(budget) = self.limits.memory_budget {
            let need = WhisperEngine::estimate_bytes(&files, self.device, &self.settings);
            self.make_room(spec.name, need, budget)?;
        }
        let engine = Arc::new(WhisperEngine::load(&files, self.device, &self.settings)?);
        *slot = Some(engine.clone());
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).insert(
            spec.name.to_string(),
            Ready {
                engine: engine.clone(),
                used: Instant::now(),
            },
        );
        Ok(engine)
    }

    /// Unloads idle models, least recently used first, until `need` more bytes fit in
    /// `budget`; the error says what is held when they cannot.
    fn make_room(&self, model: &str, need: u64, budget: u64) -> Result<(), AsrError> {
        loop {
            let held: u64 = self.held_bytes();
            if held + need <= budget {
                return Ok(());
            }
            let oldest_idle = {
                let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
                ready
                    .iter()
                    .filter(|(n, r)| {
                        n.as_str() != model && Arc::strong_count(&r.engine) <= IDLE_REFS
                    })
                    .min_by_key(|(_, r)| r.used)
                    .map(|(n, _)| n.clone())
            };
            let unloaded = oldest_idle.is_some_and(|n| self.unload(&n));
            if !unloaded {
                return Err(AsrError::OverBudget {
                    model: model.to_owned(),
                    device: self.device.to_string(),
                    need,
                    held,
                    budget,
                });
            }
        }
    }

    fn held_bytes(&self) -> u64 {
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        ready.values().map(|r| r.engine.bytes()).sum()
    }

    /// Unloads `name` if no job holds it (its slot is not being loaded either); whether it did.
    fn unload(&self, name: &str) -> bool {
        let Some(slot) = self
            .whisper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
        else {
            return false;
        };
        // A slot locked elsewhere is loading or handing the model out: not idle.
        let Ok(mut slot) = slot.try_lock() else {
            return false;
        };
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        if ready
            .get(name)
            .is_none_or(|r| Arc::strong_count(&r.engine) > IDLE_REFS)
        {
            return false;
        }
        ready.remove(name);
        *slot = None;
        tracing::info!(model = name, device = %self.device, "unloaded whisper");
        true
    }

    /// Unloads every model no job has asked for in [`CacheLimits::unload_idle_after`] and no
    /// job is using; returns their names. Call it now and then (the worker does, with its
    /// heartbeat).
    pub fn unload_idle(&self) -> Vec<String> {
        let Some(after) = self.limits.unload_idle_after else {
            return Vec::new();
        };
        let stale: Vec<String> = {
            let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            ready
                .iter()
                .filter(|(_, r)| r.used.elapsed() >= after)
                .map(|(n, _)| n.clone())
                .collect()
        };
        stale.into_iter().filter(|n| self.unload(n)).collect()
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
        let mut out: Vec<LoadedModel> = {
            let map = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            map.values()
                .map(|r| LoadedModel {
                    name: r.engine.name().to_string(),
                    device: self.device.to_string(),
                    bytes: r.engine.bytes(),
                    engine: Some(r.engine.engine().to_string()),
                    compute_type: r.engine.compute_type().map(|c| c.to_string()),
                    idle_s: Some(r.used.elapsed().as_secs()),
                    in_use: Arc::strong_count(&r.engine).saturating_sub(IDLE_REFS) as u32,
                })
                .collect()
        };
        if let Some(v) = self.vad.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            out.push(LoadedModel {
                name: "silero-vad".into(),
                device: "cpu".into(),
                bytes: v.bytes(),
                ..LoadedModel::default()
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxfleet_errors::{Classified, ErrorClass};

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
        assert!(e.class() == ErrorClass::Permanent);
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
