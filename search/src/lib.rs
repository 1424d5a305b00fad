//! voxfleet-search: the search index. It is derived data: everything in it can be rebuilt
//! from PostgreSQL (see the worker's `reindex` job), so a lost or corrupt index costs a
//! reindex, never a transcript or a voiceprint.
//!
//! One interface, [`SearchIndex`], with two backends: [`embedded::EmbeddedIndex`] (the
//! default, no server) and [`opensearch::OpenSearchIndex`] (when `VOXFLEET_OPENSEARCH_URL`
//! is set). [`Index`] picks one at start-up. Hybrid search ([`hybrid_search`]) runs a text
//! and a vector query through the interface and fuses them with reciprocal rank fusion, the
//! same way for every backend.
//!
//! Indices: [`CHUNKS`] (transcript chunks with a 384-d vector), `speakers_v3` and
//! `speakers_v4` ([`speakers_index`]), and the alias [`SPEAKERS_ALIAS`] that points at the
//! active profile's speaker index (swapped atomically at a migration's finalize).
//!
//! Modules: `embedded` (tantivy directory, exact vector scan; multi-process safe),
//! `opensearch` (HNSW k-NN; request bodies as tested pure functions), `backend` ([`Index`],
//! the start-up choice), `hybrid` ([`rrf`], [`hybrid_search`]).
mod backend;
pub mod embedded;
mod hybrid;
pub mod opensearch;

use std::future::Future;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use voxfleet_errors::{Classified, ErrorClass};

pub use backend::Index;
pub use embedded::{EmbeddedIndex, EmbeddedOptions};
pub use hybrid::{RRF_K, all_keys, hybrid_search, rrf};
pub use opensearch::OpenSearchIndex;

pub const CHUNKS: &str = "transcript_chunks";
pub const SPEAKERS_ALIAS: &str = "speakers";

/// `speakers_v3`, `speakers_v4`.
pub fn speakers_index(profile: &str) -> String {
    format!("{SPEAKERS_INDEX_PREFIX}{profile}")
}

const SPEAKERS_INDEX_PREFIX: &str = "speakers_";

/// The profile whose voiceprints an index of [`speakers_index`] holds (`None` for another
/// index).
pub fn speakers_index_profile(index: &str) -> Option<&str> {
    index.strip_prefix(SPEAKERS_INDEX_PREFIX)
}

/// A transcript chunk: about 200 words of one file with its times and speakers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkDoc {
    /// `{file_id}:{seq}`, see [`chunk_id`].
    pub id: String,
    pub file_id: Uuid,
    /// `None`: a file without an owner (visible to admins only).
    pub owner: Option<Uuid>,
    pub seq: u32,
    pub start_s: f64,
    pub end_s: f64,
    /// Speaker names (or labels) heard in the chunk.
    pub speakers: Vec<String>,
    pub text: String,
    /// The text-embedding model that made `vector`.
    pub model: String,
    /// L2-normalised.
    pub vector: Vec<f32>,
}

pub fn chunk_id(file_id: Uuid, seq: u32) -> String {
    format!("{file_id}:{seq}")
}

/// A speaker's voiceprint under one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerDoc {
    pub speaker_id: Uuid,
    pub file_id: Uuid,
    pub owner: Option<Uuid>,
    /// `SPEAKER_00`, …
    pub label: String,
    pub name: Option<String>,
    pub profile: String,
    /// The speaker model that made `vector`.
    pub model: String,
    /// L2-normalised.
    pub vector: Vec<f32>,
}

/// Who may see what: `Some(owner)` limits hits to that owner's documents; `None` is an
/// admin's view of everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Owner(Uuid),
}

/// One ranked chunk (without its vector).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkHit {
    pub id: String,
    pub file_id: Uuid,
    pub owner: Option<Uuid>,
    pub seq: u32,
    pub start_s: f64,
    pub end_s: f64,
    pub speakers: Vec<String>,
    /// A short piece of the text around the best match (the text's start for vector-only
    /// hits).
    pub snippet: String,
    /// The backend's score for this ranking (BM25 or cosine similarity); the fused score in
    /// [`hybrid_search`]'s answer.
    pub score: f32,
    /// 1-based rank in the text ranking, if the text query found it.
    pub text_rank: Option<usize>,
    /// 1-based rank in the vector ranking, if the vector query found it.
    pub vector_rank: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeakerHit {
    pub speaker_id: Uuid,
    pub file_id: Uuid,
    pub owner: Option<Uuid>,
    pub label: String,
    pub name: Option<String>,
    pub profile: String,
    /// Cosine similarity.
    pub score: f32,
}

/// A document's identity, as an integrity scan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocKey {
    /// The document id in its index (a chunk id, or a speaker id as a string).
    pub id: String,
    pub file_id: Uuid,
    /// Speaker indices: the speaker.
    pub speaker_id: Option<Uuid>,
}

/// A page of [`DocKey`]s and the cursor of the next page (`None` at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub keys: Vec<DocKey>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    pub name: String,
    pub docs: u64,
    /// Vector dimension the index was created with, if known.
    pub dim: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendHealth {
    /// `embedded` or `opensearch`.
    pub backend: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The backend cannot be reached or is busy (retryable).
    #[error("search index unavailable: {0}")]
    Unavailable(String),
    /// A vector of the wrong dimension for its index.
    #[error("dimension mismatch: index `{index}` holds {expected}-d vectors, got {got}")]
    DimensionMismatch {
        index: String,
        expected: usize,
        got: usize,
    },
    #[error("no such index: {0}")]
    NoSuchIndex(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("search index error: {0}")]
    Backend(String),
}

impl Classified for SearchError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "index_unavailable",
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::NoSuchIndex(_) => "no_such_index",
            Self::Invalid(_) => "invalid_request",
            Self::Backend(_) => "index_error",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Self::Unavailable(_) => ErrorClass::Unavailable,
            _ => ErrorClass::Permanent,
        }
    }
}

pub type Result<T> = std::result::Result<T, SearchError>;

/// What every backend does. Writes are visible to searches once the call returns.
pub trait SearchIndex: Send + Sync {
    /// Creates the chunk index (vectors of `dim`) if it does not exist. An existing index
    /// with another dimension → `DimensionMismatch` (a model change recreates it with
    /// [`SearchIndex::recreate_chunks`]).
    fn ensure_chunks(&self, dim: usize) -> impl Future<Output = Result<()>> + Send;
    /// Drops and recreates the chunk index (a full reindex with a new model).
    fn recreate_chunks(&self, dim: usize) -> impl Future<Output = Result<()>> + Send;
    /// Creates `speakers_{profile}` (vectors of `dim`) if missing; points the alias at
    /// `default_alias_profile`'s index if the alias does not exist yet.
    fn ensure_speakers(
        &self,
        profile: &str,
        dim: usize,
        default_alias_profile: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Drops and recreates `speakers_{profile}` (a re-extraction with another model).
    fn recreate_speakers(
        &self,
        profile: &str,
        dim: usize,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Replaces every chunk of each listed file with the given ones (an empty list removes
    /// the file's chunks), in one write.
    fn replace_chunks(
        &self,
        files: Vec<(Uuid, Vec<ChunkDoc>)>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Replaces every speaker document of each listed file in `speakers_{profile}` with the
    /// given ones (an empty list removes the file's speakers), in one write: what a reindex of
    /// a re-diarized file needs (the old speakers' ids are gone).
    fn replace_speakers(
        &self,
        profile: &str,
        files: Vec<(Uuid, Vec<SpeakerDoc>)>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Inserts or replaces speaker documents (by speaker id) in `speakers_{profile}`.
    fn upsert_speakers(
        &self,
        profile: &str,
        docs: Vec<SpeakerDoc>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Removes documents by id from an index (a missing id is not an error). Returns how many
    /// were removed.
    fn delete_docs(&self, index: &str, ids: &[String]) -> impl Future<Output = Result<u64>> + Send;
    /// Removes a file's documents from every index (file deletion).
    fn delete_file(&self, file_id: Uuid) -> impl Future<Output = Result<()>> + Send;

    /// BM25 over chunk text, best first, at most `limit`.
    fn search_text(
        &self,
        query: &str,
        scope: Scope,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ChunkHit>>> + Send;
    /// Cosine similarity over chunk vectors, best first, at most `limit`; the snippet is the
    /// text's start.
    fn search_vector(
        &self,
        vector: &[f32],
        scope: Scope,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ChunkHit>>> + Send;
    /// Nearest voices in `index_or_alias` (e.g. [`SPEAKERS_ALIAS`]), best first, excluding
    /// `exclude`.
    fn similar_speakers(
        &self,
        index_or_alias: &str,
        vector: &[f32],
        scope: Scope,
        exclude: Option<Uuid>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SpeakerHit>>> + Send;
    /// Reads one speaker document (with its vector) from `index_or_alias`.
    fn get_speaker(
        &self,
        index_or_alias: &str,
        speaker_id: Uuid,
    ) -> impl Future<Output = Result<Option<SpeakerDoc>>> + Send;

    /// Pages through an index's document keys in a stable order. `cursor`: `None` for the
    /// first page, then the previous page's `next`.
    fn scan(
        &self,
        index: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> impl Future<Output = Result<ScanPage>> + Send;
    /// The indices that exist, with document counts.
    fn indices(&self) -> impl Future<Output = Result<Vec<IndexInfo>>> + Send;
    /// The index an alias points at, if the alias exists.
    fn alias_target(&self, alias: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Points `alias` at `index` in one atomic step (readers see the old or the new target,
    /// never none). `index` must exist.
    fn swap_alias(&self, alias: &str, index: &str) -> impl Future<Output = Result<()>> + Send;
    fn health(&self) -> impl Future<Output = BackendHealth> + Send;
}

/// The first `max_chars` characters of `text`, cut at a word boundary where there is one
/// (the snippet of a hit the text query did not find).
pub(crate) fn text_start(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let head = &text[..cut];
            let head = head.rfind(char::is_whitespace).map_or(head, |i| &head[..i]);
            format!("{}…", head.trim_end())
        }
    }
}
