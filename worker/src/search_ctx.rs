//! [`SearchContext`]: the search index this worker writes to (the embedded one under
//! `--index-dir`, or OpenSearch) and its text-embedding models, each loaded once on first use
//! and shared by every job.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use voxfleet_jobs::fleet::LoadedModel;
use voxfleet_models::ModelsDir;
use voxfleet_search::Index;
use voxfleet_textembed::{TextEmbedError, TextEmbedder};

/// A text model's slot: locked while it loads, so two jobs load it once.
type TextSlot = Arc<Mutex<Option<Arc<TextEmbedder>>>>;

pub struct SearchContext {
    pub index: Index,
    models: ModelsDir,
    text: Mutex<HashMap<String, TextSlot>>,
}

impl SearchContext {
    pub fn new(index: Index, models: ModelsDir) -> Self {
        Self {
            index,
            models,
            text: Mutex::new(HashMap::new()),
        }
    }

    /// The text-embedding model `name` (blocking on first use: loads the file).
    pub fn text_model(&self, name: &str) -> Result<Arc<TextEmbedder>, TextEmbedError> {
        let slot = {
            let mut map = self.text.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(name.to_owned()).or_default().clone()
        };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let m = Arc::new(TextEmbedder::load(&self.models, name)?);
        tracing::info!(model = name, dim = m.dim(), "text embedding model loaded");
        *slot = Some(m.clone());
        Ok(m)
    }

    /// The text models loaded so far, for the heartbeat.
    pub fn loaded(&self) -> Vec<LoadedModel> {
        let map = self.text.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<LoadedModel> = map
            .iter()
            .filter(|(_, slot)| slot.lock().map(|s| s.is_some()).unwrap_or(false))
            .map(|(n, _)| LoadedModel {
                name: n.clone(),
                device: "cpu".into(),
                bytes: 0,
                ..LoadedModel::default()
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
