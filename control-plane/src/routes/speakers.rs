//! Speakers of diarized files: list a file's speakers (with the profiles their voiceprints are
//! stored under), read one with its voiceprints, name one; the embedding-profile setting.
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_store::settings::EmbeddingSettings;
use voxfleet_store::speakers::SpeakerRecord;
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::services::files::load;
use voxfleet_store::audit_events::AuditEvent;

#[derive(Debug, Serialize, ToSchema)]
pub struct SpeakerView {
    pub id: Uuid,
    pub file_id: Uuid,
    /// `SPEAKER_00`, `SPEAKER_01`, … in order of first appearance.
    pub label: String,
    /// Set by a user, or by a match with a known voice at diarization.
    pub name: Option<String>,
    /// Seconds of speech.
    pub speech_s: f64,
    /// Embedding profiles with a stored voiceprint (`v3`, `v4`).
    pub profiles: Vec<String>,
    /// The voiceprints, when asked for with `?include=embeddings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<Vec<VoiceprintView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceprintView {
    pub profile: String,
    pub model: String,
    pub dim: usize,
    pub vector: Vec<f32>,
}

fn view(s: SpeakerRecord) -> SpeakerView {
    SpeakerView {
        id: s.id,
        file_id: s.file_id,
        label: s.label,
        name: s.name,
        speech_s: s.speech_s,
        profiles: s.profiles,
        embeddings: None,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpeakerList {
    pub file_id: Uuid,
    pub speakers: Vec<SpeakerView>,
    /// Who speaks when, sorted by start; overlapped speech shows as overlapping turns.
    pub turns: Vec<TurnView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnView {
    pub start: f64,
    pub end: f64,
    pub speaker_id: Uuid,
    pub label: String,
    pub name: Option<String>,
}

/// A file's speakers and their turns (empty until it is diarized).
#[utoipa::path(get, path = "/v1/files/{id}/speakers", tag = "speakers", params(("id" = String, Path)),
    responses((status = 200, body = SpeakerList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn file_speakers(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<SpeakerList>> {
    let f = load(&st, &auth, &id).await?;
    let speakers = voxfleet_store::speakers::file_speakers(&st.pool, f.file.id).await?;
    let turns = voxfleet_store::speakers::turns(&st.pool, f.file.id).await?;
    Ok(Json(SpeakerList {
        file_id: f.file.id,
        speakers: speakers.into_iter().map(view).collect(),
        turns: turns
            .into_iter()
            .map(|t| TurnView {
                start: t.start_s,
                end: t.end_s,
                speaker_id: t.speaker_id,
                label: t.label,
                name: t.name,
            })
            .collect(),
    }))
}

/// A speaker the caller may see (404 otherwise).
pub async fn load_speaker(st: &AppState, auth: &Auth, id: &str) -> ApiResult<SpeakerRecord> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("speaker"))?;
    voxfleet_store::speakers::get_speaker(&st.pool, id)
        .await?
        .filter(|s| auth.may_access(s.owner))
        .ok_or_else(|| ApiError::not_found("speaker"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpeakerQuery {
    /// `embeddings` adds the voiceprint vectors.
    pub include: Option<String>,
}

/// One speaker.
#[utoipa::path(get, path = "/v1/speakers/{id}", tag = "speakers", params(("id" = String, Path), SpeakerQuery),
    responses((status = 200, body = SpeakerView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_speaker(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SpeakerQuery>,
) -> ApiResult<Json<SpeakerView>> {
    let s = load_speaker(&st, &auth, &id).await?;
    let include = match q.include.as_deref() {
        None | Some("") => false,
        Some("embeddings") => true,
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidInput,
                format!("include `{other}`: expected `embeddings`"),
            ));
        }
    };
    let id = s.id;
    let mut v = view(s);
    if include {
        let prints = voxfleet_store::speakers::speaker_voiceprints(&st.pool, id).await?;
        v.embeddings = Some(
            prints
                .into_iter()
                .map(|p| VoiceprintView {
                    profile: p.profile,
                    model: p.model,
                    dim: p.vector.len(),
                    vector: p.vector,
                })
                .collect(),
        );
    }
    Ok(Json(v))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameSpeaker {
    /// The speaker's name; `null` or empty clears it (the label shows again).
    pub name: Option<String>,
}

/// Name a speaker (the name replaces the label in transcript exports).
#[utoipa::path(patch, path = "/v1/speakers/{id}", tag = "speakers", params(("id" = String, Path)),
    request_body = RenameSpeaker,
    responses((status = 200, body = SpeakerView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rename_speaker(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<RenameSpeaker>,
) -> ApiResult<Json<SpeakerView>> {
    let s = load_speaker(&st, &auth, &id).await?;
    if r.name
        .as_ref()
        .is_some_and(|n| n.trim().chars().count() > 100)
    {
        return Err(ApiError::new(
            Code::InvalidInput,
            "a speaker's name has at most 100 characters",
        ));
    }
    let s = voxfleet_store::speakers::rename_speaker(&st.pool, s.id, r.name.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("speaker"))?;
    Ok(Json(view(s)))
}

/// The embedding-profile setting (admins): which profile's voiceprints are active.
#[utoipa::path(get, path = "/v1/settings/embeddings", tag = "settings",
    responses((status = 200, body = EmbeddingSettings), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_embedding_settings(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<EmbeddingSettings>> {
    auth.require(Role::Admin)?;
    Ok(Json(
        voxfleet_store::settings::get_embedding_settings(&st.pool).await?,
    ))
}

/// Change the active embedding profile (admins). New diarizations store voiceprints under it;
/// moving existing voiceprints between profiles is the migration job's work.
#[utoipa::path(put, path = "/v1/settings/embeddings", tag = "settings", request_body = EmbeddingSettings,
    responses((status = 200, body = EmbeddingSettings), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn put_embedding_settings(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(s): ApiJson<EmbeddingSettings>,
) -> ApiResult<Json<EmbeddingSettings>> {
    auth.require(Role::Admin)?;
    s.validate()
        .map_err(|e| ApiError::new(Code::InvalidSetting, e))?;
    voxfleet_store::settings::put_embedding_settings(&st.pool, &s, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsEmbeddings,
        None,
        serde_json::to_value(&s).unwrap_or_default(),
    )
    .await?;
    Ok(Json(s))
}
