//! Search: hybrid transcript search (BM25 and all-MiniLM-L6-v2 vectors fused by reciprocal
//! rank), voices similar to a speaker's across recordings, and the search section of the admin
//! panel (status, reindex all or pending, stop, the text-model setting).
use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_jobs::{ReindexInput, ReindexMode, Section};
use voxfleet_search::{SPEAKERS_ALIAS, Scope, SearchError, SearchIndex};
use voxfleet_store::search::IndexCounts;
use voxfleet_store::settings::{SearchSettings, TEXT_EMBEDDING_MODELS};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::maintenance::{start_as_admin, stop_as_admin};
use crate::services::sections::{SectionView, ensure_idle, section_view, start_section};
use voxfleet_store::audit_events::AuditEvent;

fn scope(auth: &Auth) -> Scope {
    if auth.is_admin() {
        Scope::All
    } else {
        Scope::Owner(auth.user_id)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// What to look for (1–500 characters).
    pub q: String,
    /// Most hits (1–100, default 10).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub file_id: Uuid,
    pub filename: Option<String>,
    pub start_s: f64,
    pub end_s: f64,
    pub speakers: Vec<String>,
    pub snippet: String,
    /// Reciprocal-rank-fusion score (higher is better).
    pub score: f32,
    /// 1-based rank in the text (BM25) ranking, if it found the chunk.
    pub text_rank: Option<usize>,
    /// 1-based rank in the vector ranking, if it found the chunk.
    pub vector_rank: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub query: String,
    /// `hybrid` (text and vectors) or `text` (the query model could not be used).
    pub mode: String,
    pub model: String,
    /// Why vectors were not used, when `mode` is `text`.
    pub vector_error: Option<String>,
    pub hits: Vec<SearchHit>,
}

/// Search transcripts: hits with file, times, speakers and a snippet. A user sees hits from
/// their own files only; an admin sees every file's.
#[utoipa::path(get, path = "/v1/search", tag = "search", params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn search(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SearchResults>> {
    let text = q.q.trim().to_owned();
    if text.is_empty() || text.chars().count() > 500 {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "q must have 1–500 characters",
        ));
    }
    let limit = q.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "limit must be between 1 and 100",
        ));
    }
    let s = st.search_index()?;
    let model = voxfleet_store::settings::get_search_settings(&st.pool)
        .await?
        .model;
    let (vector, vector_error) = match s.embed_query(&model, &text).await {
        Ok(v) => (Some(v), None),
        Err(e) => {
            tracing::warn!(error = %e, "query not embedded; text ranking only");
            (None, Some(e))
        }
    };
    let hits = match voxfleet_search::hybrid_search(
        &s.index,
        &text,
        vector.as_deref(),
        scope(&auth),
        limit,
    )
    .await
    {
        Ok(h) => h,
        // Nothing indexed yet: no hits rather than an error.
        Err(SearchError::NoSuchIndex(_)) => Vec::new(),
        Err(e) => return Err(ApiError::from(e)),
    };
    let ids: Vec<Uuid> = hits.iter().map(|h| h.file_id).collect();
    let names: HashMap<Uuid, String> = voxfleet_store::search::files_by_id(&st.pool, &ids)
        .await?
        .into_iter()
        .map(|f| (f.id, f.filename))
        .collect();
    Ok(Json(SearchResults {
        query: text,
        mode: if vector.is_some() { "hybrid" } else { "text" }.into(),
        model,
        vector_error,
        hits: hits
            .into_iter()
            .map(|h| SearchHit {
                filename: names.get(&h.file_id).cloned(),
                file_id: h.file_id,
                start_s: h.start_s,
                end_s: h.end_s,
                speakers: h.speakers,
                snippet: h.snippet,
                score: h.score,
                text_rank: h.text_rank,
                vector_rank: h.vector_rank,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SimilarQuery {
    /// Most hits (1–100, default 10).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarSpeaker {
    pub speaker_id: Uuid,
    pub file_id: Uuid,
    pub label: String,
    pub name: Option<String>,
    /// Cosine similarity of the voiceprints.
    pub score: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarSpeakers {
    pub speaker_id: Uuid,
    /// The profile of the index the alias `speakers` points at.
    pub profile: String,
    pub index: String,
    pub hits: Vec<SimilarSpeaker>,
}

/// Voices like this speaker's in other recordings, from the active profile's index (the
/// `speakers` alias). A user sees their own speakers only.
#[utoipa::path(get, path = "/v1/speakers/{id}/similar", tag = "speakers", params(("id" = String, Path), SimilarQuery),
    responses((status = 200, body = SimilarSpeakers), (status = 404, body = ErrorBody), (status = 409, description = "no voiceprint of the active profile", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn similar_speakers(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SimilarQuery>,
) -> ApiResult<Json<SimilarSpeakers>> {
    let limit = q.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "limit must be between 1 and 100",
        ));
    }
    let speaker = crate::routes::speakers::load_speaker(&st, &auth, &id).await?;
    let s = st.search_index()?;
    let index = s
        .index
        .alias_target(SPEAKERS_ALIAS)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::new(
                Code::NotReady,
                "no speaker index yet: diarize a file or run a reindex",
            )
        })?;
    let profile = voxfleet_search::speakers_index_profile(&index)
        .unwrap_or(&index)
        .to_owned();
    // The voiceprint comes from PostgreSQL (the source of truth), under the alias's profile.
    let print = voxfleet_store::speakers::speaker_voiceprints(&st.pool, speaker.id)
        .await?
        .into_iter()
        .find(|v| v.profile == profile)
        .ok_or_else(|| {
            ApiError::new(
                Code::NotReady,
                format!("speaker {} has no {profile} voiceprint", speaker.id),
            )
        })?;
    let hits = s
        .index
        .similar_speakers(
            SPEAKERS_ALIAS,
            &print.vector,
            scope(&auth),
            Some(speaker.id),
            limit,
        )
        .await
        .map_err(ApiError::from)?;
    Ok(Json(SimilarSpeakers {
        speaker_id: speaker.id,
        profile,
        index,
        hits: hits
            .into_iter()
            .map(|h| SimilarSpeaker {
                speaker_id: h.speaker_id,
                file_id: h.file_id,
                label: h.label,
                name: h.name,
                score: h.score,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchStatus {
    /// Files indexed / total, pending, chunks.
    pub counts: IndexCounts,
    /// The configured text-embedding model.
    pub model: String,
    /// `ok`, or `needs_repair` when the index and PostgreSQL disagree (files pending, chunks of
    /// another model, or the chunk count differs).
    pub health: String,
    /// Why the health is not `ok`.
    pub problems: Vec<String>,
    /// Chunks in the index.
    pub index_chunks: Option<u64>,
    #[schema(value_type = Object)]
    pub backend: Value,
    /// The latest reindex (all or pending) with its live progress.
    pub reindex: Option<SectionView>,
}

/// The search section: indexed/total, model, health, pending, the latest reindex.
#[utoipa::path(get, path = "/v1/admin/search", tag = "maintenance",
    responses((status = 200, body = SearchStatus), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn search_status(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<SearchStatus>> {
    auth.require(Role::Admin)?;
    let s = st.search_index()?;
    let counts = voxfleet_store::search::index_counts(&st.pool).await?;
    let model = voxfleet_store::settings::get_search_settings(&st.pool)
        .await?
        .model;
    let health = s.index.health().await;
    let index_chunks = s
        .index
        .indices()
        .await
        .ok()
        .and_then(|v| v.into_iter().find(|i| i.name == voxfleet_search::CHUNKS))
        .map(|i| i.docs);
    let mut problems = Vec::new();
    if !health.ok {
        problems.push(format!("backend: {}", health.detail));
    }
    if counts.pending > 0 {
        problems.push(format!("{} files pending", counts.pending));
    }
    if counts.models.iter().any(|m| *m != model) {
        problems.push(format!(
            "chunks embedded with {:?}; the setting is {model}: reindex all",
            counts.models
        ));
    }
    if index_chunks.is_some_and(|n| n as i64 != counts.chunks) {
        problems.push(format!(
            "the index holds {} chunks, PostgreSQL expects {}",
            index_chunks.unwrap_or(0),
            counts.chunks
        ));
    }
    Ok(Json(SearchStatus {
        counts,
        model,
        health: if problems.is_empty() {
            "ok"
        } else {
            "needs_repair"
        }
        .into(),
        problems,
        index_chunks,
        backend: json!(health),
        reindex: section_view(&st, Section::Reindex).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReindexRequest {
    /// `all` (rebuild everything) or `pending` (only files not yet indexed).
    #[serde(default)]
    pub mode: ReindexMode,
}

/// Start a reindex (409 `already_running` while one runs).
#[utoipa::path(post, path = "/v1/admin/search/reindex", tag = "maintenance", request_body = ReindexRequest,
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn start_reindex(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<ReindexRequest>,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    let input = ReindexInput {
        mode: r.mode,
        file_ids: None,
        recreate: false,
    };
    start_as_admin(&st, &auth, input.into()).await
}

/// Stop the running reindex (it ends promptly with a `stopped` event).
#[utoipa::path(post, path = "/v1/admin/search/reindex/stop", tag = "maintenance",
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop_reindex(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    stop_as_admin(&st, &auth, Section::Reindex).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSearchSettings {
    pub model: String,
    /// Must be true to change the model: every file is re-embedded (a full reindex starts).
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchSettingsView {
    pub model: String,
    /// The full reindex a model change started.
    pub reindex: Option<SectionView>,
}

/// A text-embedding model search can use.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextModel {
    /// The name `PUT /v1/settings/search` takes.
    pub name: String,
    /// Length of its vectors.
    pub dimension: usize,
    /// What it is, from the models registry.
    pub description: String,
    /// Whether search uses it when no model was chosen.
    pub default: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchSettingsInfo {
    /// The configured model.
    pub model: String,
    /// Every model `PUT /v1/settings/search` accepts.
    pub models: Vec<TextModel>,
}

/// The models the setting accepts: the same list its validation checks.
fn text_models() -> Vec<TextModel> {
    let default = SearchSettings::default().model;
    TEXT_EMBEDDING_MODELS
        .iter()
        .map(|name| TextModel {
            name: (*name).to_owned(),
            dimension: voxfleet_textembed::DIM,
            description: voxfleet_models::registry::find(name)
                .map(|m| m.description)
                .unwrap_or_default()
                .to_owned(),
            default: *name == default,
        })
        .collect()
}

/// The text-embedding model of search, and every model it may be changed to.
#[utoipa::path(get, path = "/v1/settings/search", tag = "settings",
    responses((status = 200, body = SearchSettingsInfo), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_search_settings(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<SearchSettingsInfo>> {
    auth.require(Role::Admin)?;
    let settings = voxfleet_store::settings::get_search_settings(&st.pool).await?;
    Ok(Json(SearchSettingsInfo {
        model: settings.model,
        models: text_models(),
    }))
}

/// Change the text-embedding model to one `GET` lists (422 `invalid_setting` otherwise):
/// needs `"confirm": true` (409 `confirmation_required` otherwise), then starts a full
/// reindex that recreates the chunk index.
#[utoipa::path(put, path = "/v1/settings/search", tag = "settings", request_body = PutSearchSettings,
    responses((status = 200, body = SearchSettingsView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_search_settings(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(p): ApiJson<PutSearchSettings>,
) -> ApiResult<Json<SearchSettingsView>> {
    auth.require(Role::Admin)?;
    let new = SearchSettings { model: p.model };
    new.validate()
        .map_err(|m| ApiError::new(Code::InvalidSetting, m))?;
    let old = voxfleet_store::settings::get_search_settings(&st.pool).await?;
    if old == new {
        return Ok(Json(SearchSettingsView {
            model: new.model,
            reindex: None,
        }));
    }
    if !p.confirm {
        return Err(ApiError::new(
            Code::ConfirmationRequired,
            format!(
                "changing the model from {} to {} re-embeds every file (a full reindex): send \"confirm\": true",
                old.model, new.model
            ),
        ));
    }
    // A running reindex would keep writing the old model's vectors: refuse while one runs.
    ensure_idle(&st, Section::Reindex).await?;
    voxfleet_store::settings::put_search_settings(&st.pool, &new, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsSearch,
        None,
        json!({"from": old.model, "to": new.model}),
    )
    .await?;
    let input = ReindexInput {
        mode: ReindexMode::All,
        file_ids: None,
        recreate: true,
    };
    let v = start_section(&st, &auth, input.into()).await?;
    Ok(Json(SearchSettingsView {
        model: new.model,
        reindex: Some(v),
    }))
}
