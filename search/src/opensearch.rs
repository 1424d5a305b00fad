//! The OpenSearch backend (when `VOXFLEET_OPENSEARCH_URL` is set): for collections past
//! what an exact scan serves (millions of chunks), with HNSW k-NN (Lucene engine, cosine).
//!
//! Every request body is built by a pure function in [`bodies`] and unit-tested for shape
//! there. The backend itself cannot be exercised in this repository's CI (no OpenSearch
//! server can be installed on the build machines); the conformance suite in
//! `tests/conformance.rs` runs against a real server when `VOXFLEET_OPENSEARCH_URL` is set.
//! Written against OpenSearch 2.x (the k-NN `filter` clause needs 2.4 or later).
//!
//! How the trait's promises are kept:
//! - Writes use `refresh=wait_for` (bulk) or `refresh=true` (delete by query), so they are
//!   searchable when the call returns.
//! - `replace_chunks` first indexes the new chunks (ids are `{file_id}:{seq}`, so they
//!   overwrite in place), then deletes the files' chunks it did not send: a search in
//!   between sees old or new chunks, never an empty file.
//! - `swap_alias` is one `POST _aliases` with remove and add actions, which OpenSearch
//!   applies atomically.
//! - Scores: OpenSearch reports `(1 + cos) / 2` for `cosinesimil`; hits carry the cosine.
//! - A recreate deletes and re-creates the index; an alias on it is put back.
mod answers;
mod bodies;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use opensearch::cat::CatIndicesParts;
use opensearch::cluster::ClusterHealthParts;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::http::{StatusCode, Url};
use opensearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesExistsParts, IndicesGetAliasParts,
    IndicesGetMappingParts,
};
use opensearch::params::{Conflicts, Refresh};
use opensearch::{BulkParts, DeleteByQueryParts, GetParts, OpenSearch, SearchParts};
use serde_json::{Value, json};
use uuid::Uuid;

use self::answers::*;
use self::bodies::*;
use crate::{
    BackendHealth, CHUNKS, ChunkDoc, ChunkHit, DocKey, IndexInfo, Result, SPEAKERS_ALIAS, ScanPage,
    Scope, SearchError, SearchIndex, SpeakerDoc, SpeakerHit, speakers_index,
};

/// The speaker indices, as an index pattern.
const SPEAKERS_PATTERN: &str = "speakers_*";

pub struct OpenSearchIndex {
    /// Boxed behind an `Arc` so [`crate::Index`]'s variants stay of similar size.
    client: std::sync::Arc<OpenSearch>,
    /// Vector dimension per concrete index, read from its mapping once.
    dims: Mutex<HashMap<String, usize>>,
}

impl OpenSearchIndex {
    /// A client for the server at `url` (no request is made until the first call).
    pub fn connect(url: &str) -> Result<Self> {
        let url = Url::parse(url)
            .map_err(|e| SearchError::Invalid(format!("bad OpenSearch URL `{url}`: {e}")))?;
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .disable_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SearchError::Invalid(format!("OpenSearch client: {e}")))?;
        Ok(Self {
            client: std::sync::Arc::new(OpenSearch::new(transport)),
            dims: Mutex::new(HashMap::new()),
        })
    }

    fn dims(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.dims.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn exists(&self, index: &str) -> Result<bool> {
        let resp = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[index]))
            .send()
            .await
            .map_err(unavailable)?;
        match resp.status_code() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(SearchError::Unavailable(format!("index exists check: {s}"))),
        }
    }

    /// The concrete index `index_or_alias` names.
    async fn resolve(&self, index_or_alias: &str) -> Result<String> {
        Ok(self
            .alias_targets(index_or_alias)
            .await?
            .into_iter()
            .next()
            .unwrap_or_else(|| index_or_alias.to_owned()))
    }

    async fn alias_targets(&self, alias: &str) -> Result<Vec<String>> {
        let resp = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[alias]))
            .send()
            .await;
        Ok(answer_opt(resp)
            .await?
            .map(|a| alias_targets(&a))
            .unwrap_or_default())
    }

    /// The vector dimension of concrete index `index` (`None`: no such index).
    async fn dim(&self, index: &str) -> Result<Option<usize>> {
        if let Some(d) = self.dims().get(index) {
            return Ok(Some(*d));
        }
        let resp = self
            .client
            .indices()
            .get_mapping(IndicesGetMappingParts::Index(&[index]))
            .send()
            .await;
        let dim = answer_opt(resp).await?.and_then(|m| mapping_dim(&m, index));
        if let Some(d) = dim {
            self.dims().insert(index.to_owned(), d);
        }
        Ok(dim)
    }

    async fn check_dim(&self, index: &str, got: usize) -> Result<()> {
        match self.dim(index).await? {
            None => Err(SearchError::NoSuchIndex(index.to_owned())),
            Some(expected) if expected != got => Err(SearchError::DimensionMismatch {
                index: index.to_owned(),
                expected,
                got,
            }),
            Some(_) => Ok(()),
        }
    }

    async fn create(&self, index: &str, dim: usize) -> Result<()> {
        let body = if index == CHUNKS {
            chunks_mapping(dim)
        } else {
            speakers_mapping(dim)
        };
        let resp = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(index))
            .body(body)
            .send()
            .await;
        match answer(resp).await {
            Ok(_) => Ok(()),
            // Another process created it first.
            Err(SearchError::Backend(e)) if e.contains("resource_already_exists_exception") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn ensure(&self, index: &str, dim: usize) -> Result<()> {
        if !self.exists(index).await? {
            self.create(index, dim).await?;
        }
        self.check_dim(index, dim).await
    }

    async fn recreate(&self, index: &str, dim: usize) -> Result<()> {
        let aliased = self
            .alias_targets(SPEAKERS_ALIAS)
            .await?
            .iter()
            .any(|t| t == index);
        let resp = self
            .client
            .indices()
            .delete(IndicesDeleteParts::Index(&[index]))
            .send()
            .await;
        answer_opt(resp).await?;
        self.dims().remove(index);
        self.create(index, dim).await?;
        if aliased {
            self.update_aliases(alias_swap_actions(SPEAKERS_ALIAS, &[], index))
                .await?;
        }
        Ok(())
    }

    async fn update_aliases(&self, body: Value) -> Result<()> {
        let resp = self
            .client
            .indices()
            .update_aliases()
            .body(body)
            .send()
            .await;
        answer(resp).await.map(drop)
    }

    async fn bulk(&self, lines: Vec<Value>) -> Result<Value> {
        let resp = self
            .client
            .bulk(BulkParts::None)
            .body(
                lines
                    .into_iter()
                    .map(Into::into)
                    .collect::<Vec<opensearch::http::request::JsonBody<Value>>>(),
            )
            .refresh(Refresh::WaitFor)
            .send()
            .await;
        let out = answer(resp).await?;
        match bulk_error(&out) {
            Some(e) => Err(SearchError::Backend(format!("bulk write failed: {e}"))),
            None => Ok(out),
        }
    }

    async fn delete_by_query(&self, indices: &[&str], body: Value) -> Result<()> {
        let resp = self
            .client
            .delete_by_query(DeleteByQueryParts::Index(indices))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .conflicts(Conflicts::Proceed)
            .refresh(true)
            .body(body)
            .send()
            .await;
        answer_opt(resp).await.map(drop)
    }

    async fn search(&self, index: &str, body: Value) -> Result<Option<Value>> {
        let resp = self
            .client
            .search(SearchParts::Index(&[index]))
            .body(body)
            .send()
            .await;
        answer_opt(resp).await
    }
}

impl SearchIndex for OpenSearchIndex {
    async fn ensure_chunks(&self, dim: usize) -> Result<()> {
        self.ensure(CHUNKS, dim).await
    }

    async fn recreate_chunks(&self, dim: usize) -> Result<()> {
        self.recreate(CHUNKS, dim).await
    }

    async fn ensure_speakers(
        &self,
        profile: &str,
        dim: usize,
        default_alias_profile: &str,
    ) -> Result<()> {
        self.ensure(&speakers_index(profile), dim).await?;
        if self.alias_targets(SPEAKERS_ALIAS).await?.is_empty() {
            let target = speakers_index(default_alias_profile);
            if self.exists(&target).await? {
                self.update_aliases(alias_swap_actions(SPEAKERS_ALIAS, &[], &target))
                    .await?;
            }
        }
        Ok(())
    }

    async fn recreate_speakers(&self, profile: &str, dim: usize) -> Result<()> {
        self.recreate(&speakers_index(profile), dim).await
    }

    async fn replace_chunks(&self, files: Vec<(Uuid, Vec<ChunkDoc>)>) -> Result<()> {
        let mut docs = Vec::new();
        for (file_id, file_docs) in &files {
            for d in file_docs {
                if d.file_id != *file_id {
                    return Err(SearchError::Invalid(format!(
                        "chunk `{}` belongs to file {}, listed under {file_id}",
                        d.id, d.file_id
                    )));
                }
                self.check_dim(CHUNKS, d.vector.len()).await?;
                docs.push(d.clone());
            }
        }
        if !docs.is_empty() {
            self.bulk(bulk_index_chunk_lines(CHUNKS, &docs)).await?;
        }
        let ids: Vec<String> = docs.into_iter().map(|d| d.id).collect();
        let file_ids: Vec<Uuid> = files.iter().map(|(f, _)| *f).collect();
        self.delete_by_query(&[CHUNKS], stale_docs_query(&file_ids, &ids))
            .await
    }

    async fn replace_speakers(
        &self,
        profile: &str,
        files: Vec<(Uuid, Vec<SpeakerDoc>)>,
    ) -> Result<()> {
        let index = speakers_index(profile);
        let mut docs = Vec::new();
        for (file_id, file_docs) in &files {
            for d in file_docs {
                if d.file_id != *file_id {
                    return Err(SearchError::Invalid(format!(
                        "speaker {} belongs to file {}, listed under {file_id}",
                        d.speaker_id, d.file_id
                    )));
                }
                self.check_dim(&index, d.vector.len()).await?;
                docs.push(d.clone());
            }
        }
        if !docs.is_empty() {
            self.bulk(bulk_index_speaker_lines(&index, &docs)).await?;
        }
        let ids: Vec<String> = docs.iter().map(|d| d.speaker_id.to_string()).collect();
        let file_ids: Vec<Uuid> = files.iter().map(|(f, _)| *f).collect();
        self.delete_by_query(&[index.as_str()], stale_docs_query(&file_ids, &ids))
            .await
    }

    async fn upsert_speakers(&self, profile: &str, docs: Vec<SpeakerDoc>) -> Result<()> {
        let index = speakers_index(profile);
        for d in &docs {
            self.check_dim(&index, d.vector.len()).await?;
        }
        if docs.is_empty() {
            return Ok(());
        }
        self.bulk(bulk_index_speaker_lines(&index, &docs))
            .await
            .map(drop)
    }

    async fn delete_docs(&self, index: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let index = self.resolve(index).await?;
        Ok(bulk_deleted(
            &self.bulk(bulk_delete_lines(&index, ids)).await?,
        ))
    }

    async fn delete_file(&self, file_id: Uuid) -> Result<()> {
        self.delete_by_query(&[CHUNKS, SPEAKERS_PATTERN], file_query(file_id))
            .await
    }

    async fn search_text(&self, query: &str, scope: Scope, limit: usize) -> Result<Vec<ChunkHit>> {
        if query.trim().is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let Some(out) = self.search(CHUNKS, text_query(query, scope, limit)).await? else {
            return Ok(Vec::new());
        };
        hits(&out)
            .iter()
            .map(|h| {
                let snippet = h
                    .pointer("/highlight/text/0")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_owned());
                chunk_hit(h, score(h), snippet)
            })
            .collect()
    }

    async fn search_vector(
        &self,
        vector: &[f32],
        scope: Scope,
        limit: usize,
    ) -> Result<Vec<ChunkHit>> {
        if limit == 0 || !self.exists(CHUNKS).await? {
            return Ok(Vec::new());
        }
        self.check_dim(CHUNKS, vector.len()).await?;
        let Some(out) = self
            .search(CHUNKS, knn_query(vector, scope, None, limit))
            .await?
        else {
            return Ok(Vec::new());
        };
        hits(&out)
            .iter()
            .map(|h| chunk_hit(h, cosine_of_score(score(h)), None))
            .collect()
    }

    async fn similar_speakers(
        &self,
        index_or_alias: &str,
        vector: &[f32],
        scope: Scope,
        exclude: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SpeakerHit>> {
        let index = self.resolve(index_or_alias).await?;
        if limit == 0 || !self.exists(&index).await? {
            return Ok(Vec::new());
        }
        self.check_dim(&index, vector.len()).await?;
        let exclude = exclude.map(|u| u.to_string());
        let body = knn_query(
            vector,
            scope,
            exclude.as_deref().map(|e| ("speaker_id", e)),
            limit,
        );
        let Some(out) = self.search(&index, body).await? else {
            return Ok(Vec::new());
        };
        hits(&out)
            .iter()
            .map(|h| {
                let s: SpeakerSource = source(h)?;
                Ok(SpeakerHit {
                    speaker_id: s.speaker_id,
                    file_id: s.file_id,
                    owner: s.owner,
                    label: s.label,
                    name: s.name,
                    profile: s.profile,
                    score: cosine_of_score(score(h)),
                })
            })
            .collect()
    }

    async fn get_speaker(
        &self,
        index_or_alias: &str,
        speaker_id: Uuid,
    ) -> Result<Option<SpeakerDoc>> {
        let id = speaker_id.to_string();
        let resp = self
            .client
            .get(GetParts::IndexId(index_or_alias, &id))
            .send()
            .await;
        match answer_opt(resp).await? {
            Some(doc) if doc.get("found").and_then(Value::as_bool) == Some(true) => {
                source(&doc).map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn scan(&self, index: &str, cursor: Option<String>, limit: usize) -> Result<ScanPage> {
        if limit == 0 {
            return Err(SearchError::Invalid("scan limit must be positive".into()));
        }
        let index = self.resolve(index).await?;
        let key = key_field(&index);
        let out = self
            .search(&index, scan_body(key, cursor.as_deref(), limit))
            .await?
            .ok_or_else(|| SearchError::NoSuchIndex(index.clone()))?;
        let keys = hits(&out)
            .iter()
            .map(|h| {
                let src = h.get("_source").unwrap_or(&Value::Null);
                let id = src
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let file_id = src
                    .get("file_id")
                    .and_then(Value::as_str)
                    .and_then(|f| Uuid::parse_str(f).ok())
                    .ok_or_else(|| {
                        SearchError::Backend(format!("document `{id}` has a bad file_id"))
                    })?;
                let speaker_id = (key == "speaker_id")
                    .then(|| Uuid::parse_str(&id).ok())
                    .flatten();
                Ok(DocKey {
                    id,
                    file_id,
                    speaker_id,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = (keys.len() == limit)
            .then(|| keys.last().map(|k| k.id.clone()))
            .flatten();
        Ok(ScanPage { keys, next })
    }

    async fn indices(&self) -> Result<Vec<IndexInfo>> {
        let resp = self
            .client
            .cat()
            .indices(CatIndicesParts::Index(&[CHUNKS, SPEAKERS_PATTERN]))
            .format("json")
            .send()
            .await;
        let rows = answer_opt(resp).await?.unwrap_or_else(|| json!([]));
        let mut out = Vec::new();
        for row in rows.as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(name) = row.get("index").and_then(Value::as_str) else {
                continue;
            };
            let docs = row
                .get("docs.count")
                .and_then(Value::as_str)
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            out.push(IndexInfo {
                name: name.to_owned(),
                docs,
                dim: self.dim(name).await?,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn alias_target(&self, alias: &str) -> Result<Option<String>> {
        Ok(self.alias_targets(alias).await?.into_iter().next())
    }

    async fn swap_alias(&self, alias: &str, index: &str) -> Result<()> {
        if !self.exists(index).await? {
            return Err(SearchError::NoSuchIndex(index.to_owned()));
        }
        let current = self.alias_targets(alias).await?;
        self.update_aliases(alias_swap_actions(alias, &current, index))
            .await
    }

    async fn health(&self) -> BackendHealth {
        let resp = self
            .client
            .cluster()
            .health(ClusterHealthParts::None)
            .send()
            .await;
        let (ok, detail) = match answer(resp).await {
            Ok(h) => {
                let status = h
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned();
                (
                    status == "green" || status == "yellow",
                    format!("cluster status {status}"),
                )
            }
            Err(e) => (false, e.to_string()),
        };
        BackendHealth {
            backend: "opensearch".into(),
            ok,
            detail,
        }
    }
}
