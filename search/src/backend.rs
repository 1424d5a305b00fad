//! [`Index`]: the backend chosen at start-up, behind the one interface.
use std::path::Path;

use uuid::Uuid;

use crate::embedded::EmbeddedIndex;
use crate::opensearch::OpenSearchIndex;
use crate::{
    BackendHealth, ChunkDoc, ChunkHit, IndexInfo, Result, ScanPage, Scope, SearchIndex, SpeakerDoc,
    SpeakerHit,
};

/// One of the backends, chosen by configuration.
pub enum Index {
    Embedded(EmbeddedIndex),
    OpenSearch(OpenSearchIndex),
}

impl Index {
    /// OpenSearch at `opensearch_url` when given (and not blank), else the embedded index
    /// in `embedded_dir`.
    pub fn from_config(opensearch_url: Option<&str>, embedded_dir: &Path) -> Result<Index> {
        match opensearch_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => Ok(Index::OpenSearch(OpenSearchIndex::connect(url)?)),
            None => Ok(Index::Embedded(EmbeddedIndex::open(embedded_dir)?)),
        }
    }
}

/// Forwards a call to the chosen backend.
macro_rules! delegate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Index::Embedded(i) => i.$method($($arg),*).await,
            Index::OpenSearch(i) => i.$method($($arg),*).await,
        }
    };
}

impl SearchIndex for Index {
    async fn ensure_chunks(&self, dim: usize) -> Result<()> {
        delegate!(self.ensure_chunks(dim))
    }
    async fn recreate_chunks(&self, dim: usize) -> Result<()> {
        delegate!(self.recreate_chunks(dim))
    }
    async fn ensure_speakers(
        &self,
        profile: &str,
        dim: usize,
        default_alias_profile: &str,
    ) -> Result<()> {
        delegate!(self.ensure_speakers(profile, dim, default_alias_profile))
    }
    async fn recreate_speakers(&self, profile: &str, dim: usize) -> Result<()> {
        delegate!(self.recreate_speakers(profile, dim))
    }
    async fn replace_chunks(&self, files: Vec<(Uuid, Vec<ChunkDoc>)>) -> Result<()> {
        delegate!(self.replace_chunks(files))
    }
    async fn replace_speakers(
        &self,
        profile: &str,
        files: Vec<(Uuid, Vec<SpeakerDoc>)>,
    ) -> Result<()> {
        delegate!(self.replace_speakers(profile, files))
    }
    async fn upsert_speakers(&self, profile: &str, docs: Vec<SpeakerDoc>) -> Result<()> {
        delegate!(self.upsert_speakers(profile, docs))
    }
    async fn delete_docs(&self, index: &str, ids: &[String]) -> Result<u64> {
        delegate!(self.delete_docs(index, ids))
    }
    async fn delete_file(&self, file_id: Uuid) -> Result<()> {
        delegate!(self.delete_file(file_id))
    }
    async fn search_text(&self, query: &str, scope: Scope, limit: usize) -> Result<Vec<ChunkHit>> {
        delegate!(self.search_text(query, scope, limit))
    }
    async fn search_vector(
        &self,
        vector: &[f32],
        scope: Scope,
        limit: usize,
    ) -> Result<Vec<ChunkHit>> {
        delegate!(self.search_vector(vector, scope, limit))
    }
    async fn similar_speakers(
        &self,
        index_or_alias: &str,
        vector: &[f32],
        scope: Scope,
        exclude: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SpeakerHit>> {
        delegate!(self.similar_speakers(index_or_alias, vector, scope, exclude, limit))
    }
    async fn get_speaker(
        &self,
        index_or_alias: &str,
        speaker_id: Uuid,
    ) -> Result<Option<SpeakerDoc>> {
        delegate!(self.get_speaker(index_or_alias, speaker_id))
    }
    async fn scan(&self, index: &str, cursor: Option<String>, limit: usize) -> Result<ScanPage> {
        delegate!(self.scan(index, cursor, limit))
    }
    async fn indices(&self) -> Result<Vec<IndexInfo>> {
        delegate!(self.indices())
    }
    async fn alias_target(&self, alias: &str) -> Result<Option<String>> {
        delegate!(self.alias_target(alias))
    }
    async fn swap_alias(&self, alias: &str, index: &str) -> Result<()> {
        delegate!(self.swap_alias(alias, index))
    }
    async fn health(&self) -> BackendHealth {
        delegate!(self.health())
    }
}
