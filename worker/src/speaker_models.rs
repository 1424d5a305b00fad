//! [`SpeakerModels`]: the speaker models of one worker process (pyannote segmentation and one
//! embedding model per profile), each loaded once on first use and shared by every job, like
//! the Whisper models in `voxfleet_asr::ModelCache`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use voxfleet_jobs::fleet::LoadedModel;
use voxfleet_models::ModelsDir;
use voxfleet_speakers::{Embedder, Segmenter, SpeakersError, WindowType};

/// An embedding model behind a profile.
pub struct ProfileModel {
    /// `v3`, `v4`.
    pub profile: String,
    /// `campplus`, `resemblyzer-ge2e`, or `speaker-v4/model.onnx` for an operator's file.
    pub model: String,
    pub embedder: Arc<Embedder>,
}

/// One profile's slot: locked while its model loads, so concurrent first users load it once.
type ProfileSlot = Arc<Mutex<Option<Arc<ProfileModel>>>>;

pub struct SpeakerModels {
    dir: ModelsDir,
    segmenter: Mutex<Option<Arc<Segmenter>>>,
    /// By profile; each slot locked while its model loads, so two jobs load it once.
    profiles: Mutex<HashMap<String, ProfileSlot>>,
}

impl SpeakerModels {
    pub fn new(dir: ModelsDir) -> Self {
        Self {
            dir,
            segmenter: Mutex::new(None),
            profiles: Mutex::new(HashMap::new()),
        }
    }

    /// The segmentation model (blocking on first use: loads the file).
    pub fn segmenter(&self) -> Result<Arc<Segmenter>, SpeakersError> {
        let mut slot = self.segmenter.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        voxfleet_models::onnx::ensure_onnxruntime(&self.dir)?;
        let path = self.dir.segmentation()?;
        let s = Arc::new(Segmenter::load(&path)?);
        tracing::info!(path = %path.display(), "segmentation model loaded");
        *slot = Some(s.clone());
        Ok(s)
    }

    /// The embedding model of `profile` (blocking on first use: loads the file).
    pub fn profile(&self, profile: &str) -> Result<Arc<ProfileModel>, SpeakersError> {
        let slot = {
            let mut map = self.profiles.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(profile.to_owned()).or_default().clone()
        };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        voxfleet_models::onnx::ensure_onnxruntime(&self.dir)?;
        let file = self.dir.speaker_model(profile)?;
        let window = if file.povey_window {
            WindowType::Povey
        } else {
            WindowType::Hamming
        };
        let embedder = Embedder::load(&file.path, window)?;
        tracing::info!(profile, model = %file.name, dim = embedder.dim(), "speaker embedding model loaded");
        let m = Arc::new(ProfileModel {
            profile: profile.to_owned(),
            model: file.name,
            embedder: Arc::new(embedder),
        });
        *slot = Some(m.clone());
        Ok(m)
    }

    /// What is loaded, for the heartbeat.
    pub fn loaded(&self) -> Vec<LoadedModel> {
        let mut out = Vec::new();
        if let Ok(g) = self.segmenter.try_lock()
            && let Some(s) = g.as_ref()
        {
            out.push(LoadedModel {
                name: "pyannote-segmentation-3.0".into(),
                device: "cpu".into(),
                bytes: s.bytes(),
                ..LoadedModel::default()
            });
        }
        let slots: Vec<_> = {
            let map = self.profiles.lock().unwrap_or_else(|p| p.into_inner());
            map.values().cloned().collect()
        };
        for slot in slots {
            if let Ok(g) = slot.try_lock()
                && let Some(m) = g.as_ref()
            {
                out.push(LoadedModel {
                    name: format!("{} ({})", m.model, m.profile),
                    device: "cpu".into(),
                    bytes: m.embedder.bytes(),
                    ..LoadedModel::default()
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
