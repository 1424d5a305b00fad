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
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_jobs::{CancelOutcome, EMBEDDING_PROFILES, JobKind, JobStatus, Priority};
use voxfleet_search::{SPEAKERS_ALIAS, SearchIndex, speakers_index};
use voxfleet_store::jobs::Inserted;
use voxfleet_store::search::{EmbeddingFailure, MaintenanceRun, ReferenceCounts};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::jobs::{JobView, overlay, view};
use crate::routes::search::{index_error, search_state};

/// A section's latest run with its job.
#[derive(Debug, Serialize, ToSchema)]
pub struct SectionView {
    pub section: String,
    /// `running`, `completed`, `stopped`, `failed` (`stalled`, `finalized`, `rolled_back` for
    /// the migration). A run whose job ended without writing its state shows the job's.
    pub state: String,
    #[schema(value_type = Object)]
    pub report: Value,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The job, with its progress and ETA.
    pub job: Option<JobView>,
}

async fn job_of(st: &AppState, id: Option<Uuid>) -> ApiResult<Option<voxfleet_jobs::JobSnapshot>> {
    let Some(id) = id else { return Ok(None) };
    let Some(row) = voxfleet_store::jobs::get_job(&st.pool, voxfleet_jobs::JobId(id)).await? else {
        return Ok(None);
    };
    Ok(overlay(st, vec![row]).await.pop())
}

pub async fn section_view(st: &AppState, section: &str) -> ApiResult<Option<SectionView>> {
    let Some(run) = voxfleet_store::search::get_run(&st.pool, section).await? else {
        return Ok(None);
    };
    Ok(Some(view_of(st, run).await?))
}

async fn view_of(st: &AppState, run: MaintenanceRun) -> ApiResult<SectionView> {
    let job = job_of(st, run.job_id).await?;
    let mut state = run.state.clone();
    if let Some(j) = &job {
        // The row says running but the job ended without saying how (it was cancelled
        // before it started, or failed for good in a way the handler did not record).
        if state == "running" && j.status.is_terminal() {
            state = match j.status {
                JobStatus::Cancelled => "stopped".into(),
                JobStatus::Failed => "failed".into(),
                _ => state,
            };
        } else if state == "running" && j.status == JobStatus::Queued {
            state = "queued".into();
        }
    }
    let settings = st.settings.current().await;
    Ok(SectionView {
        section: run.section,
        state,
        report: run.report,
        started_at: run.started_at,
        finished_at: run.finished_at,
        job: job.map(|j| view(j, &settings)),
    })
}

/// 409 `already_running` while the section's job is queued, running or retrying.
pub async fn ensure_idle(st: &AppState, section: &str) -> ApiResult<()> {
    if let Some(run) = voxfleet_store::search::get_run(&st.pool, section).await?
        && let Some(j) = job_of(st, run.job_id).await?
        && !j.status.is_terminal()
    {
        return Err(ApiError::new(
            Code::AlreadyRunning,
            format!(
                "a {section} run is {} (job {}): stop it first",
                j.status, j.id
            ),
        ));
    }
    Ok(())
}

/// Submits the section's job (one at a time) and records it as the section's run.
pub async fn start_section(
    st: &AppState,
    auth: &Auth,
    section: &str,
    kind: JobKind,
    input: Value,
) -> ApiResult<SectionView> {
    start_section_by(st, Some(auth.token_id), section, kind, input).await
}

/// [`start_section`] on behalf of `actor` (`None`: the scheduler).
pub async fn start_section_by(
    st: &AppState,
    actor: Option<uuid::Uuid>,
    section: &str,
    kind: JobKind,
    input: Value,
) -> ApiResult<SectionView> {
    crate::routes::jobs::parse_input(kind, &input)?;
    ensure_idle(st, section).await?;
    let job = voxfleet_store::jobs::new_snapshot(
        kind,
        kind.default_queue(),
        Priority::Normal,
        input.clone(),
        actor,
        None,
        None,
    );
    // The run row first, so a status read right after sees this job (queued).
    voxfleet_store::search::start_run(&st.pool, section, job.id.0, &json!({"input": input}))
        .await?;
    let inserted = crate::routes::jobs::submit_many(st, vec![job]).await?;
    let id = inserted.first().map(|i: &Inserted| i.job().id.0);
    voxfleet_store::audit::record(
        &st.pool,
        actor,
        &format!("maintenance.{section}.start"),
        id.map(|i| i.to_string()).as_deref(),
        input,
    )
    .await?;
    section_view(st, section)
        .await?
        .ok_or_else(|| ApiError::new(Code::Internal, "the run was not recorded"))
}

/// An admin's start of a section's job, answered 202 with the section.
pub async fn start_as_admin(
    st: &AppState,
    auth: &Auth,
    section: &str,
    kind: JobKind,
    input: Value,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    auth.require(Role::Admin)?;
    let v = start_section(st, auth, section, kind, input).await?;
    Ok((StatusCode::ACCEPTED, Json(v)))
}

/// An admin's stop of a section's job, answered 202 with the section.
pub async fn stop_as_admin(
    st: &AppState,
    auth: &Auth,
    section: &str,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    auth.require(Role::Admin)?;
    Ok((StatusCode::ACCEPTED, Json(stop_section(st, section).await?)))
}

/// Cancels the section's running job (409 `not_running` when none runs).
pub async fn stop_section(st: &AppState, section: &str) -> ApiResult<SectionView> {
    let run = voxfleet_store::search::get_run(&st.pool, section)
        .await?
        .ok_or_else(|| ApiError::new(Code::NotRunning, format!("no {section} has run yet")))?;
    let job = job_of(st, run.job_id)
        .await?
        .filter(|j| !j.status.is_terminal())
        .ok_or_else(|| ApiError::new(Code::NotRunning, format!("no {section} is running")))?;
    match st.queue.cancel(&job.queue, &job.id).await? {
        CancelOutcome::Cancelled => {
            // It never started: record the stop ourselves.
            voxfleet_store::search::update_run(
                &st.pool,
                section,
                job.id.0,
                "stopped",
                &run.report,
                true,
            )
            .await?;
        }
        CancelOutcome::Cancelling => {}
        CancelOutcome::AlreadyFinished(_) | CancelOutcome::Missing => {
            return Err(ApiError::new(
                Code::NotRunning,
                format!("the {section} run has already ended"),
            ));
        }
    }
    section_view(st, section)
        .await?
        .ok_or_else(|| ApiError::new(Code::Internal, "the run disappeared"))
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
    let s = search_state(&st)?;
    let infos = s.index.indices().await.map_err(index_error)?;
    let alias = s
        .index
        .alias_target(SPEAKERS_ALIAS)
        .await
        .map_err(index_error)?;
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
        check: section_view(&st, "integrity").await?,
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
    start_as_admin(
        &st,
        &auth,
        "integrity",
        JobKind::IntegrityCheck,
        json!({"dry_run": r.dry_run}),
    )
    .await
}

/// Stop a running integrity check.
#[utoipa::path(post, path = "/v1/admin/integrity/stop", tag = "maintenance",
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop_integrity(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    stop_as_admin(&st, &auth, "integrity").await
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
    let s = search_state(&st)?;
    let existing: HashSet<String> = s
        .index
        .indices()
        .await
        .map_err(index_error)?
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
                .map_err(index_error)?
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
        repair: section_view(&st, "repair").await?,
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
    start_as_admin(
        &st,
        &auth,
        "repair",
        JobKind::EmbeddingRepair,
        json!({"profile": r.profile}),
    )
    .await
}

/// Stop a running repair.
#[utoipa::path(post, path = "/v1/admin/embeddings/repair/stop", tag = "maintenance",
    responses((status = 202, body = SectionView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop_repair(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<(StatusCode, Json<SectionView>)> {
    stop_as_admin(&st, &auth, "repair").await
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
    let s = search_state(st)?;
    let infos = s.index.indices().await.map_err(index_error)?;
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
        .map_err(index_error)?;
    let active = voxfleet_store::settings::get_embedding_settings(&st.pool)
        .await?
        .active_profile;
    let rows = voxfleet_store::search::speakers_for_profile(&st.pool, TO).await?;
    let processed = rows.iter().filter(|r| r.has_voiceprint).count() as u64;
    let failures = voxfleet_store::search::failures(&st.pool, TO).await?;
    let run = section_view(st, "migration").await?;
    let migrating = run
        .as_ref()
        .and_then(|r| r.job.as_ref())
        .is_some_and(|j| !j.status.is_terminal());
    let speakers = rows.len() as u64;
    Ok(MigrationStatus {
        mode: alias
            .as_deref()
            .map(|a| a.trim_start_matches("speakers_").to_owned())
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
    state: &str,
    forced: bool,
) -> ApiResult<MigrationStatus> {
    let s = search_state(st)?;
    let index = speakers_index(profile);
    let exists = s
        .index
        .indices()
        .await
        .map_err(index_error)?
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
        .map_err(index_error)?;
    let settings = voxfleet_store::settings::EmbeddingSettings {
        active_profile: profile.to_owned(),
    };
    voxfleet_store::settings::put_embedding_settings(&st.pool, &settings, Some(auth.token_id))
        .await?;
    let before = migration_status(st).await?;
    voxfleet_store::search::set_run_state(
        &st.pool,
        "migration",
        state,
        &json!({
            "mode": profile,
            "forced": forced,
            "speakers": before.speakers,
            "processed": before.processed,
            "failed": before.failed,
        }),
    )
    .await?;
    voxfleet_store::audit::record(
        &st.pool,
        Some(auth.token_id),
        &format!("maintenance.migration.{state}"),
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
    let job = |a: &str| json!({"action": a, "from_profile": FROM, "to_profile": TO});
    match action.as_str() {
        "start" => {
            start_section(
                &st,
                &auth,
                "migration",
                JobKind::EmbeddingMigration,
                job("start"),
            )
            .await?;
        }
        "retry-failed" => {
            start_section(
                &st,
                &auth,
                "migration",
                JobKind::EmbeddingMigration,
                job("retry_failed"),
            )
            .await?;
        }
        "force-reextract" => {
            start_section(
                &st,
                &auth,
                "migration",
                JobKind::EmbeddingMigration,
                job("force_reextract"),
            )
            .await?;
        }
        "stop" => {
            stop_section(&st, "migration").await?;
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
                Json(swap_to(&st, &auth, TO, "finalized", forced).await?),
            ));
        }
        "rollback" => {
            return Ok((
                StatusCode::OK,
                Json(swap_to(&st, &auth, FROM, "rolled_back", false).await?),
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
