//! Reading OpenSearch's answers: errors, hits, `_source` documents and scores.
use opensearch::http::StatusCode;
use opensearch::http::response::Response;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::bodies::SNIPPET_CHARS;
use crate::{CHUNKS, ChunkHit, Result, SearchError, text_start};

/// A chunk's `_source` as a search returns it (without its vector).
#[derive(Deserialize)]
pub(super) struct ChunkSource {
    pub(super) id: String,
    pub(super) file_id: Uuid,
    pub(super) owner: Option<Uuid>,
    #[serde(default)]
    pub(super) seq: u32,
    #[serde(default)]
    pub(super) start_s: f64,
    #[serde(default)]
    pub(super) end_s: f64,
    #[serde(default)]
    pub(super) speakers: Vec<String>,
    #[serde(default)]
    pub(super) text: String,
}

#[derive(Deserialize)]
pub(super) struct SpeakerSource {
    pub(super) speaker_id: Uuid,
    pub(super) file_id: Uuid,
    pub(super) owner: Option<Uuid>,
    #[serde(default)]
    pub(super) label: String,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) profile: String,
}

pub(super) fn unavailable(e: opensearch::Error) -> SearchError {
    SearchError::Unavailable(e.to_string())
}

pub(super) fn key_field(index: &str) -> &'static str {
    if index == CHUNKS { "id" } else { "speaker_id" }
}

/// The answer's JSON, or the error class its status says.
pub(super) async fn answer(
    resp: std::result::Result<Response, opensearch::Error>,
) -> Result<Value> {
    let resp = resp.map_err(unavailable)?;
    let status = resp.status_code();
    if status.is_success() {
        return resp.json::<Value>().await.map_err(unavailable);
    }
    let body = resp.text().await.unwrap_or_default();
    Err(match status {
        StatusCode::NOT_FOUND => SearchError::NoSuchIndex(body),
        StatusCode::TOO_MANY_REQUESTS => SearchError::Unavailable(body),
        s if s.is_server_error() => SearchError::Unavailable(format!("{s}: {body}")),
        s => SearchError::Backend(format!("{s}: {body}")),
    })
}

/// `answer`, with 404 as `None`.
pub(super) async fn answer_opt(
    resp: std::result::Result<Response, opensearch::Error>,
) -> Result<Option<Value>> {
    match answer(resp).await {
        Err(SearchError::NoSuchIndex(_)) => Ok(None),
        other => other.map(Some),
    }
}

pub(super) fn hits(answer: &Value) -> &[Value] {
    answer
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(super) fn source<T: for<'de> Deserialize<'de>>(hit: &Value) -> Result<T> {
    T::deserialize(hit.get("_source").unwrap_or(&Value::Null))
        .map_err(|e| SearchError::Backend(format!("unexpected document: {e}")))
}

pub(super) fn score(hit: &Value) -> f32 {
    hit.get("_score")
        .and_then(Value::as_f64)
        .unwrap_or_default() as f32
}

pub(super) fn chunk_hit(hit: &Value, score: f32, snippet: Option<String>) -> Result<ChunkHit> {
    let s: ChunkSource = source(hit)?;
    Ok(ChunkHit {
        snippet: snippet.unwrap_or_else(|| text_start(&s.text, SNIPPET_CHARS)),
        id: s.id,
        file_id: s.file_id,
        owner: s.owner,
        seq: s.seq,
        start_s: s.start_s,
        end_s: s.end_s,
        speakers: s.speakers,
        score,
        text_rank: None,
        vector_rank: None,
    })
}
