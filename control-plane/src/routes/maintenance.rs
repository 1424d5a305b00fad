//! The admin panel's maintenance sections: data integrity (index overview, orphan check),
//! embedding consistency and repair, and the v3 → v4 embedding migration (start, stop,
//! finalize, retry failed, force complete, force re-extract, rollback). Each long operation is
//! a job on the cpu queue; its section's latest run (state, live counts, final report) is
//! read from `maintenance_runs`, its progress and ETA from the job.
use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_jobs::{
    EMBEDDING_PROFILES, EmbeddingMigrationInput, EmbeddingRepairInput, IntegrityCheckInput,
    JobInput, MigrationAction, RunState, Section,
};
use voxfleet_search::{SPEAKERS_ALIAS, SearchIndex, speakers_index};
use voxfleet_store::search::{EmbeddingFailure, ReferenceCounts};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;
use crate::services::sections::{SectionView, section_view, start_section, stop_section};
use voxfleet_store::audit_events::AuditEvent;

/// An admin's start of a section's job, answered 202 with the section.
pub async fn start_as_admin(
    st: &AppState,
    auth: &Auth,
    input: JobInput,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    auth.require(Role::Admin)?;
    let v = start_section(st, auth, input).await?;
    Ok((StatusCode::ACCEPTED, Json(v)))
}

/// An admin's stop of a section's job, answered 202 with the section.
pub async fn stop_as_admin(
    st: &AppState,
    auth: &Auth,
    section: Section,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    auth.require(Role::Admin)?;
    Ok((StatusCode::ACCEPTED, Json(stop_section(st, section).await?)))
}

// ---------------------------------------------------------------------------------------------
// Data integrity

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexCard {
    pub index: String,
    pub docs: u64,
    /// Vector dimension, when known.
    pub dim: Option<usize>,
    /// `speakers` when the alias points here.
    pub aliases: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityOverview {
    pub indices: Vec<IndexCard>,
    pub total_docs: u64,
    pub references: ReferenceCounts,
    /// The latest check with its per-index report (scanned, orphans, cleaned).
    pub check: Option<SectionView>,
}

/// Index overview (documents per index, PostgreSQL reference counts) and the latest check.
#[utoipa::path(get, path = "/v1/admin/integrity", tag = "maintenance",
    responses((status = 200, body = IntegrityOverview), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn integrity(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<IntegrityOverview>> {
    auth.require(Role::Admin)?;
    let s = st.search_index()?;
    let infos = s.index.indices().await.map_err(ApiError::from)?;
    let alias = s
        .index
        .alias_target(SPEAKERS_ALIAS)
        .await
        .map_err(ApiError::from)?;
    let indices: Vec<IndexCard> = infos
        .into_iter()
        .map(|i| IndexCard {
            aliases: if alias.as_deref() == Some(i.name.as_str()) {
                vec![SPEAKERS_ALIAS.to_owned()]
            } else {
                vec![]
            },
            index: i.name,
            docs: i.docs,
            dim: i.dim,
        })
        .collect();
    Ok(Json(IntegrityOverview {
        total_docs: indices.iter().map(|i| i.docs).sum(),
        indices,
        references: voxfleet_store::search::reference_counts(&st.pool).await?,
        check: section_view(&st, Section::Integrity).await?,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrityRequest {
    /// Report orphans without deleting them.
    #[serde(default)]
    pub dry_run: bool,
}

/// Run an integrity check: scans each index for orphans and deletes them.
#[utoipa::path(post, path = "/v1/admin/integrity/check", tag = "maintenance", request_body = IntegrityRequest,
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn start_integrity(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<IntegrityRequest>,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    let input = IntegrityCheckInput { dry_run: r.dry_run };
    start_as_admin(&st, &auth, input.into()).await
}

/// Stop a running integrity check.
#[utoipa::path(post, path = "/v1/admin/integrity/stop", tag = "maintenance",
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop_integrity(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    stop_as_admin(&st, &auth, Section::Integrity).await
}

// ---------------------------------------------------------------------------------------------
// Embedding consistency and repair

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileConsistency {
    pub profile: String,
    pub index: String,
    /// Whether the index exists.
    pub exists: bool,
    /// PostgreSQL speakers with a document in the index.
    pub indexed: u64,
    /// PostgreSQL speakers without one.
    pub missing: u64,
    /// Of the missing, those with a voiceprint stored in PostgreSQL (repaired without audio).
    pub missing_with_voiceprint: u64,
    /// Of the missing, those with neither a stored voiceprint nor audio to extract one from.
    pub unrepairable: u64,
    /// Documents whose speaker is gone from PostgreSQL.
    pub orphans: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Consistency {
    /// Speakers in PostgreSQL.
    pub speakers: u64,
    pub active_profile: String,
    pub profiles: Vec<ProfileConsistency>,
    /// The latest repair.
    pub repair: Option<SectionView>,
}

/// Embedding consistency: PostgreSQL speakers against each profile's index.
#[utoipa::path(get, path = "/v1/admin/embeddings/consistency", tag = "maintenance",
    responses((status = 200, body = Consistency), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn consistency(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Consistency>> {
    auth.require(Role::Admin)?;
    let s = st.search_index()?;
    let existing: HashSet<String> = s
        .index
        .indices()
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut profiles = Vec::new();
    let mut speakers_total = 0;
    // Whether each file's audio is still in storage, asked once per file.
    let mut audio: BTreeMap<Uuid, bool> = BTreeMap::new();
    for profile in EMBEDDING_PROFILES {
        let name = speakers_index(profile);
        let rows = voxfleet_store::search::speakers_for_profile(&st.pool, profile).await?;
        speakers_total = rows.len() as u64;
        let mut in_index: HashSet<Uuid> = HashSet::new();
        let mut doc_speakers: Vec<Uuid> = Vec::new();
        if existing.contains(&name) {
            doc_speakers = voxfleet_search::all_keys(&s.index, &name)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .filter_map(|k| k.speaker_id)
                .collect();
            in_index.extend(doc_speakers.iter().copied());
        }
        let live: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
        let missing: Vec<_> = rows.iter().filter(|r| !in_index.contains(&r.id)).collect();
        let mut unrepairable = 0;
        for m in missing.iter().filter(|m| !m.has_voiceprint) {
            let ok = match audio.get(&m.file_id) {
                Some(ok) => *ok,
                None => {
                    let ok = st.media.size(&m.storage_key).await.is_ok();
                    audio.insert(m.file_id, ok);
                    ok
                }
            };
            if !ok {
                unrepairable += 1;
            }
        }
        profiles.push(ProfileConsistency {
            profile: profile.to_owned(),
            exists: existing.contains(&name),
            index: name,
            indexed: (rows.len() - missing.len()) as u64,
            missing: missing.len() as u64,
            missing_with_voiceprint: missing.iter().filter(|m| m.has_voiceprint).count() as u64,
            unrepairable,
            orphans: doc_speakers.iter().filter(|d| !live.contains(d)).count() as u64,
        });
    }
    Ok(Json(Consistency {
        speakers: speakers_total,
        active_profile: voxfleet_store::settings::get_embedding_settings(&st.pool)
            .await?
            .active_profile,
        profiles,
        repair: section_view(&st, Section::Repair).await?,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairRequest {
    /// `v3` or `v4` (default: the active profile).
    #[serde(default)]
    pub profile: Option<String>,
}

/// Repair: put every missing speaker back into the profile's index.
#[utoipa::path(post, path = "/v1/admin/embeddings/repair", tag = "maintenance", request_body = RepairRequest,
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn start_repair(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(r): ApiJson<RepairRequest>,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    let input = EmbeddingRepairInput { profile: r.profile };
    start_as_admin(&st, &auth, input.into()).await
}

/// Stop a running repair.
#[utoipa::path(post, path = "/v1/admin/embeddings/repair/stop", tag = "maintenance",
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop_repair(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    stop_as_admin(&st, &auth, Section::Repair).await
}

// ---------------------------------------------------------------------------------------------
// Embedding migration

const FROM: &str = "v3";
const TO: &str = "v4";

#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationStatus {
    /// The active mode: the profile the `speakers` alias points at (`v3` or `v4`).
    pub mode: String,
    /// The embedding setting's active profile (equal to `mode` except during a swap).
    pub active_profile: String,
    pub v3_docs: u64,
    pub v4_docs: u64,
    /// Whether a migration job is queued or running.
    pub migrating: bool,
    /// PostgreSQL speakers.
    pub speakers: u64,
    /// Speakers with a v4 voiceprint (migrated).
    pub processed: u64,
    /// Speakers without one.
    pub remaining: u64,
    /// Speakers that failed (see `failures`).
    pub failed: u64,
    /// Every speaker processed: finalize is allowed.
    pub can_finalize: bool,
    pub failures: Vec<EmbeddingFailure>,
    /// The latest run.
    pub run: Option<SectionView>,
}

async fn migration_status(st: &AppState) -> ApiResult<MigrationStatus> {
    let s = st.search_index()?;
    let infos = s.index.indices().await.map_err(ApiError::from)?;
    let docs = |p: &str| {
        infos
            .iter()
            .find(|i| i.name == speakers_index(p))
            .map(|i| i.docs)
            .unwrap_or(0)
    };
    let alias = s
        .index
        .alias_target(SPEAKERS_ALIAS)
        .await
        .map_err(ApiError::from)?;
    let active = voxfleet_store::settings::get_embedding_settings(&st.pool)
        .await?
        .active_profile;
    let rows = voxfleet_store::search::speakers_for_profile(&st.pool, TO).await?;
    let processed = rows.iter().filter(|r| r.has_voiceprint).count() as u64;
    let failures = voxfleet_store::search::failures(&st.pool, TO).await?;
    let run = section_view(st, Section::Migration).await?;
    let migrating = run
        .as_ref()
        .and_then(|r| r.job.as_ref())
        .is_some_and(|j| !j.status.is_terminal());
    let speakers = rows.len() as u64;
    Ok(MigrationStatus {
        mode: alias
            .as_deref()
            .map(|a| {
                voxfleet_search::speakers_index_profile(a)
                    .unwrap_or(a)
                    .to_owned()
            })
            .unwrap_or_else(|| active.clone()),
        active_profile: active,
        v3_docs: docs(FROM),
        v4_docs: docs(TO),
        migrating,
        speakers,
        processed,
        remaining: speakers - processed,
        failed: failures.len() as u64,
        can_finalize: !migrating && processed == speakers,
        failures,
        run,
    })
}

/// The migration section: mode, v3/v4 document counts, progress, failures.
#[utoipa::path(get, path = "/v1/admin/embeddings/migration", tag = "maintenance",
    responses((status = 200, body = MigrationStatus), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_migration(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<MigrationStatus>> {
    auth.require(Role::Admin)?;
    Ok(Json(migration_status(&st).await?))
}

/// Points the alias at `profile`'s index and makes it the active profile.
async fn swap_to(
    st: &AppState,
    auth: &Auth,
    profile: &str,
    state: RunState,
    forced: bool,
) -> ApiResult<MigrationStatus> {
    let s = st.search_index()?;
    let index = speakers_index(profile);
    let exists = s
        .index
        .indices()
        .await
        .map_err(ApiError::from)?
        .iter()
        .any(|i| i.name == index);
    if !exists {
        return Err(ApiError::new(
            Code::NotFinalizable,
            format!("the index {index} does not exist: run the migration first"),
        ));
    }
    // The alias first: it is what speaker search reads, and the swap is atomic.
    s.index
        .swap_alias(SPEAKERS_ALIAS, &index)
        .await
        .map_err(ApiError::from)?;
    let settings = voxfleet_store::settings::EmbeddingSettings {
        active_profile: profile.to_owned(),
    };
    voxfleet_store::settings::put_embedding_settings(&st.pool, &settings, Some(auth.token_id))
        .await?;
    let before = migration_status(st).await?;
    voxfleet_store::search::set_run_state(
        &st.pool,
        Section::Migration.as_str(),
        state.as_str(),
        &json!({
            "mode": profile,
            "forced": forced,
            "speakers": before.speakers,
            "processed": before.processed,
            "failed": before.failed,
        }),
    )
    .await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::migration_swap(state),
        Some(&index),
        json!({"forced": forced}),
    )
    .await?;
    migration_status(st).await
}

/// Migration actions: `start` (also resumes), `stop`, `finalize`, `retry-failed`,
/// `force-complete` (finalize despite failures), `force-reextract`, `rollback` (alias back
/// to v3).
#[utoipa::path(post, path = "/v1/admin/embeddings/migration/{action}", tag = "maintenance", params(("action" = String, Path)),
    responses((status = 202, body = MigrationStatus), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn migration_action(
    State(st): State<AppState>,
    auth: Auth,
    Path(action): Path<String>,
) -> ApiResult<(StatusCode, Json<MigrationStatus>)> {
    auth.require(Role::Admin)?;
    let job = |action| {
        JobInput::from(EmbeddingMigrationInput {
            action,
            from_profile: FROM.into(),
            to_profile: TO.into(),
        })
    };
    match action.as_str() {
        "start" => {
            start_section(&st, &auth, job(MigrationAction::Start)).await?;
        }
        "retry-failed" => {
            start_section(&st, &auth, job(MigrationAction::RetryFailed)).await?;
        }
        "force-reextract" => {
            start_section(&st, &auth, job(MigrationAction::ForceReextract)).await?;
        }
        "stop" => {
            stop_section(&st, Section::Migration).await?;
        }
        "finalize" | "force-complete" => {
            let forced = action == "force-complete";
            let now = migration_status(&st).await?;
            if now.migrating {
                return Err(ApiError::new(
                    Code::NotFinalizable,
                    "the migration is still running: wait for it or stop it",
                ));
            }
            if !forced && !now.can_finalize {
                return Err(ApiError::new(
                    Code::NotFinalizable,
                    format!(
                        "{} of {} speakers have no v4 voiceprint ({} failed): finish the migration, retry the failed ones, or force complete",
                        now.remaining, now.speakers, now.failed
                    ),
                ));
            }
            return Ok((
                StatusCode::OK,
                Json(swap_to(&st, &auth, TO, RunState::Finalized, forced).await?),
            ));
        }
        "rollback" => {
            return Ok((
                StatusCode::OK,
                Json(swap_to(&st, &auth, FROM, RunState::RolledBack, false).await?),
            ));
        }
        other => {
            return Err(ApiError::new(
                Code::NotFound,
                format!(
                    "no migration action `{other}` (start, stop, finalize, retry-failed, force-complete, force-reextract, rollback)"
                ),
            ));
        }
    }
    Ok((StatusCode::ACCEPTED, Json(migration_status(&st).await?)))
}
