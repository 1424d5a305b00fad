//! [`SearchState`]: the control plane's view of the search index (the embedded one it shares
//! with the workers on this host, or OpenSearch) and the text-embedding model queries are
//! embedded with, loaded on the first search. Without that model (not fetched here) search
//! still answers, from the text ranking alone, and says so.
use std::sync::{Arc, Mutex};

use voxfleet_models::ModelsDir;
use voxfleet_search::Index;
use voxfleet_textembed::TextEmbedder;

pub struct SearchState {
    pub index: Index,
    models: ModelsDir,
    /// The loaded query model, by name (the setting may change while the server runs).
    text: Mutex<Option<Arc<TextEmbedder>>>,
}

impl SearchState {
    pub fn new(index: Index, models: ModelsDir) -> Self {
        Self {
            index,
            models,
            text: Mutex::new(None),
        }
    }

    /// The query model `name`, loading it (off the runtime) when it is not loaded yet.
    pub async fn text_model(self: &Arc<Self>, name: &str) -> Result<Arc<TextEmbedder>, String> {
        if let Some(m) = self
            .text
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|m| m.name() == name)
        {
            return Ok(m.clone());
        }
        let me = self.clone();
        let wanted = name.to_owned();
        let m = tokio::task::spawn_blocking(move || {
            TextEmbedder::load(&me.models, &wanted).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let m = Arc::new(m);
        tracing::info!(model = name, "query embedding model loaded");
        *self.text.lock().unwrap_or_else(|p| p.into_inner()) = Some(m.clone());
        Ok(m)
    }

    /// Embeds one query (off the runtime).
    pub async fn embed_query(self: &Arc<Self>, model: &str, q: &str) -> Result<Vec<f32>, String> {
        let m = self.text_model(model).await?;
        let q = q.to_owned();
        tokio::task::spawn_blocking(move || m.embed(&[q.as_str()]))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or_else(|| "the model returned no vector".to_string())
    }
}
