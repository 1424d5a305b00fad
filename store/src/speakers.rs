//! Speakers found by diarization, their turns and their voiceprints.
//!
//! PostgreSQL holds the voiceprints (one per speaker and embedding profile); any search index
//! over them is derived from these rows and can be rebuilt from them.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;
use crate::files::{JobColumn, UsageRow, link_jobs, record_usage};

/// The longest speaker name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A speaker as the diarizer reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSpeaker {
    /// The diarizer's label, e.g. `SPEAKER_00`; unique within the file.
    pub label: String,
    pub speech_s: f64,
}

/// One turn: who speaks when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewTurn {
    pub start_s: f64,
    pub end_s: f64,
    /// Index into [`DiarizationWrite::speakers`].
    pub speaker: usize,
}

/// A speaker's voiceprint under one embedding profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewEmbedding<'a> {
    /// Index into [`DiarizationWrite::speakers`].
    pub speaker: usize,
    pub profile: &'a str,
    pub model: &'a str,
    pub vector: &'a [f32],
}

/// A finished diarization, as a worker records it.
#[derive(Debug, Clone, Copy)]
pub struct DiarizationWrite<'a> {
    pub file_id: Uuid,
    pub job_id: Uuid,
    pub owner: Option<Uuid>,
    pub model: &'a str,
    pub speakers: &'a [NewSpeaker],
    pub turns: &'a [NewTurn],
    pub embeddings: &'a [NewEmbedding<'a>],
    /// Speakers named by voice matching: (index into `speakers`, name).
    pub names: &'a [(usize, String)],
    pub audio_seconds: f64,
    pub processing_seconds: f64,
}

/// A speaker of a file.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SpeakerRecord {
    pub id: Uuid,
    pub file_id: Uuid,
    pub owner: Option<Uuid>,
    pub label: String,
    pub name: Option<String>,
    pub speech_s: f64,
    /// The profiles this speaker has a stored voiceprint for, sorted.
    pub profiles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One turn with its speaker's label and name.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TurnRow {
    pub idx: i32,
    pub speaker_id: Uuid,
    pub label: String,
    pub name: Option<String>,
    pub start_s: f64,
    pub end_s: f64,
}

/// A stored voiceprint.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Voiceprint {
    pub speaker_id: Uuid,
    pub profile: String,
    pub model: String,
    pub vector: Vec<f32>,
}

/// The columns of [`SpeakerRecord`] over `speakers s` (a macro so `concat!` can build
/// `'static` queries from it).
macro_rules! speaker_columns {
    () => {
        "s.id, s.file_id, s.owner, s.label, s.name, s.speech_s, \
         ARRAY(SELECT e.profile FROM speaker_embeddings e WHERE e.speaker_id = s.id \
               ORDER BY e.profile) AS profiles, \
         s.created_at, s.updated_at"
    };
}

/// A name as stored: trimmed, empty as none, at most [`MAX_NAME_CHARS`].
fn clean_name(name: &str) -> Result<Option<String>, StoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::Invalid(format!(
            "a speaker name is at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(Some(name.to_string()))
}

/// Voiceprints as columns for one `unnest`, the vectors concatenated (`real[]` cannot hold
/// rows of different lengths, so each row carries its offset and length into `flat`).
#[derive(Default)]
struct EmbeddingColumns {
    speakers: Vec<Uuid>,
    profiles: Vec<String>,
    models: Vec<String>,
    offsets: Vec<i32>,
    dims: Vec<i32>,
    flat: Vec<f32>,
}

impl EmbeddingColumns {
    fn build<'a>(
        rows: impl Iterator<Item = (Uuid, &'a str, &'a str, &'a [f32])>,
    ) -> Result<Self, StoreError> {
        let mut c = Self::default();
        let mut seen = HashSet::new();
        for (speaker, profile, model, vector) in rows {
            if profile.is_empty() || model.is_empty() {
                return Err(StoreError::Invalid(
                    "a voiceprint needs a profile and a model".into(),
                ));
            }
            if vector.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "empty voiceprint for speaker {speaker}, profile {profile}"
                )));
            }
            if !vector.iter().all(|x| x.is_finite()) {
                return Err(StoreError::Invalid(format!(
                    "voiceprint for speaker {speaker}, profile {profile} is not finite"
                )));
            }
            if !seen.insert((speaker, profile)) {
                return Err(StoreError::Invalid(format!(
                    "two voiceprints for speaker {speaker}, profile {profile}"
                )));
            }
            let too_long = || StoreError::Invalid("voiceprints too large".into());
            c.offsets
                .push(i32::try_from(c.flat.len()).map_err(|_| too_long())?);
            c.dims
                .push(i32::try_from(vector.len()).map_err(|_| too_long())?);
            c.flat.extend_from_slice(vector);
            c.speakers.push(speaker);
            c.profiles.push(profile.to_string());
            c.models.push(model.to_string());
        }
        Ok(c)
    }
}

/// The voiceprint rows of `$1..$6` (see [`EmbeddingColumns`]), for an INSERT ... SELECT.
macro_rules! embedding_rows {
    () => {
        "SELECT e.speaker, e.profile, e.model, e.dim, \
                ($6::real[])[e.off + 1 : e.off + e.dim], $7::uuid \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[]) \
              AS e(speaker, profile, model, off, dim)"
    };
}

fn check_write(w: &DiarizationWrite<'_>) -> Result<(), StoreError> {
    let n = w.speakers.len();
    let mut labels = HashSet::new();
    for s in w.speakers {
        if s.label.trim().is_empty() {
            return Err(StoreError::Invalid("a speaker needs a label".into()));
        }
        if !labels.insert(s.label.as_str()) {
            return Err(StoreError::Invalid(format!(
                "speaker label {} appears twice",
                s.label
            )));
        }
        if !(s.speech_s.is_finite() && s.speech_s >= 0.0) {
            return Err(StoreError::Invalid(format!(
                "speaker {}: speech_s must be a finite number >= 0",
                s.label
            )));
        }
    }
    for (i, t) in w.turns.iter().enumerate() {
        if t.speaker >= n {
            return Err(StoreError::Invalid(format!(
                "turn {i} names speaker {} of {n}",
                t.speaker
            )));
        }
        if !(t.start_s.is_finite() && t.end_s.is_finite() && t.start_s <= t.end_s) {
            return Err(StoreError::Invalid(format!(
                "turn {i}: {}..{} is not a time span",
                t.start_s, t.end_s
            )));
        }
    }
    if let Some(e) = w.embeddings.iter().find(|e| e.speaker >= n) {
        return Err(StoreError::Invalid(format!(
            "a voiceprint names speaker {} of {n}",
            e.speaker
        )));
    }
    if let Some((i, _)) = w.names.iter().find(|(i, _)| *i >= n) {
        return Err(StoreError::Invalid(format!(
            "a name for speaker {i} of {n}"
        )));
    }
    Ok(())
}

/// Replaces the file's speakers, turns and voiceprints with a diarization's, and records the
/// usage, in one transaction. Returns `None` (and writes nothing) when the file is gone or is
/// linked to another diarization job; otherwise the new speakers' ids, in input order.
///
/// A retried attempt of the same job replaces the rows again (with new speaker ids) and does
/// not count its usage twice. The speakers' owner is the file's.
pub async fn save_diarization(
    pool: &PgPool,
    w: &DiarizationWrite<'_>,
) -> Result<Option<Vec<Uuid>>, StoreError> {
    check_write(w)?;
    let mut names: Vec<Option<String>> = vec![None; w.speakers.len()];
    for (i, name) in w.names {
        names[*i] = clean_name(name)?;
    }
    let ids: Vec<Uuid> = w.speakers.iter().map(|_| Uuid::now_v7()).collect();
    let embeddings = EmbeddingColumns::build(
        w.embeddings
            .iter()
            .map(|e| (ids[e.speaker], e.profile, e.model, e.vector)),
    )?;

    let mut tx = pool.begin().await?;
    // The row lock orders this against a concurrent save, and against relinking the file.
    let file: Option<(Option<Uuid>, Option<Uuid>)> =
        sqlx::query_as("SELECT diarization_job, owner FROM files WHERE id = $1 FOR UPDATE")
            .bind(w.file_id)
            .fetch_optional(&mut *tx)
            .await?;
    let owner = match file {
        None => return Ok(None),
        Some((Some(linked), _)) if linked != w.job_id => return Ok(None),
        Some((_, owner)) => owner,
    };
    // Turns and voiceprints go with them.
    sqlx::query("DELETE FROM speakers WHERE file_id = $1")
        .bind(w.file_id)
        .execute(&mut *tx)
        .await?;
    if !ids.is_empty() {
        sqlx::query(
            "INSERT INTO speakers (id, file_id, owner, label, name, speech_s) \
             SELECT s.id, $1, $2, s.label, s.name, s.speech_s \
             FROM unnest($3::uuid[], $4::text[], $5::text[], $6::float8[]) \
                  AS s(id, label, name, speech_s)",
        )
        .bind(w.file_id)
        .bind(owner)
        .bind(&ids)
        .bind(
            w.speakers
                .iter()
                .map(|s| s.label.clone())
                .collect::<Vec<_>>(),
        )
        .bind(&names)
        .bind(w.speakers.iter().map(|s| s.speech_s).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !w.turns.is_empty() {
        let idx = (0..w.turns.len())
            .map(|i| i32::try_from(i).map_err(|_| StoreError::Invalid("too many turns".into())))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query(
            "INSERT INTO speaker_turns (file_id, idx, speaker_id, start_s, end_s) \
             SELECT $1, t.idx, t.speaker, t.start_s, t.end_s \
             FROM unnest($2::int[], $3::uuid[], $4::float8[], $5::float8[]) \
                  AS t(idx, speaker, start_s, end_s)",
        )
        .bind(w.file_id)
        .bind(idx)
        .bind(w.turns.iter().map(|t| ids[t.speaker]).collect::<Vec<_>>())
        .bind(w.turns.iter().map(|t| t.start_s).collect::<Vec<_>>())
        .bind(w.turns.iter().map(|t| t.end_s).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !embeddings.speakers.is_empty() {
        sqlx::query(concat!(
            "INSERT INTO speaker_embeddings (speaker_id, profile, model, dim, vector, job_id) ",
            embedding_rows!()
        ))
        .bind(&embeddings.speakers)
        .bind(&embeddings.profiles)
        .bind(&embeddings.models)
        .bind(&embeddings.offsets)
        .bind(&embeddings.dims)
        .bind(&embeddings.flat)
        .bind(w.job_id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE files SET diarization_model = $2, diarized_at = now(), \
         diarization_job = COALESCE(diarization_job, $3), updated_at = now(), \
         index_version = index_version + 1 WHERE id = $1",
    )
    .bind(w.file_id)
    .bind(w.model)
    .bind(w.job_id)
    .execute(&mut *tx)
    .await?;
    record_usage(
        &mut tx,
        &UsageRow {
            job: w.job_id,
            owner: w.owner,
            file: w.file_id,
            kind: voxfleet_jobs::JobKind::Diarize,
            model: w.model,
            audio_seconds: w.audio_seconds,
            processing_seconds: w.processing_seconds,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(ids))
}

/// Links files to their (new) diarization jobs, `(file, job)` pairs, in one statement.
pub async fn set_diarization_jobs(pool: &PgPool, links: &[(Uuid, Uuid)]) -> Result<(), StoreError> {
    link_jobs(pool, JobColumn::Diarization, links).await
}

/// A file's speakers, by label.
pub async fn file_speakers(pool: &PgPool, file_id: Uuid) -> Result<Vec<SpeakerRecord>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        speaker_columns!(),
        " FROM speakers s WHERE s.file_id = $1 ORDER BY s.label"
    ))
    .bind(file_id)
    .fetch_all(pool)
    .await?)
}

pub async fn get_speaker(pool: &PgPool, id: Uuid) -> Result<Option<SpeakerRecord>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        speaker_columns!(),
        " FROM speakers s WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Sets (or with `None`, an empty or blank name, clears) a speaker's name. `None` when the
/// speaker does not exist.
pub async fn rename_speaker(
    pool: &PgPool,
    id: Uuid,
    name: Option<&str>,
) -> Result<Option<SpeakerRecord>, StoreError> {
    let name = match name {
        Some(n) => clean_name(n)?,
        None => None,
    };
    Ok(sqlx::query_as(concat!(
        "WITH s AS (UPDATE speakers SET name = $2, updated_at = now() WHERE id = $1 \
         RETURNING *), \
         f AS (UPDATE files SET index_version = index_version + 1 \
               WHERE id IN (SELECT file_id FROM s)) SELECT ",
        speaker_columns!(),
        " FROM s"
    ))
    .bind(id)
    .bind(name)
    .fetch_optional(pool)
    .await?)
}

/// A file's turns, in time order.
pub async fn turns(pool: &PgPool, file_id: Uuid) -> Result<Vec<TurnRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.idx, t.speaker_id, s.label, s.name, t.start_s, t.end_s \
         FROM speaker_turns t JOIN speakers s ON s.id = t.speaker_id \
         WHERE t.file_id = $1 ORDER BY t.start_s, t.idx",
    )
    .bind(file_id)
    .fetch_all(pool)
    .await?)
}

/// Stores voiceprints `(speaker, profile, model, vector)` computed by `job_id`, replacing a
/// speaker's earlier one of the same profile, in one statement. Speakers that no longer exist
/// (deleted or re-diarized meanwhile) are skipped; returns how many voiceprints were written.
pub async fn put_embeddings(
    pool: &PgPool,
    job_id: Uuid,
    rows: &[(Uuid, &str, &str, &[f32])],
) -> Result<usize, StoreError> {
    let c = EmbeddingColumns::build(rows.iter().copied())?;
    if c.speakers.is_empty() {
        return Ok(0);
    }
    // The key-share lock keeps the speakers from being deleted before the insert's foreign key
    // check; one deleted concurrently is left out of `live` rather than failing the statement.
    let written = sqlx::query(concat!(
        "WITH live AS (SELECT id FROM speakers WHERE id = ANY($1) FOR KEY SHARE) \
         INSERT INTO speaker_embeddings (speaker_id, profile, model, dim, vector, job_id) \
         SELECT r.* FROM (",
        embedding_rows!(),
        ") AS r(speaker, profile, model, dim, vector, job) \
         WHERE r.speaker IN (SELECT id FROM live) \
         ON CONFLICT (speaker_id, profile) DO UPDATE SET model = EXCLUDED.model, \
         dim = EXCLUDED.dim, vector = EXCLUDED.vector, job_id = EXCLUDED.job_id, \
         created_at = now()"
    ))
    .bind(&c.speakers)
    .bind(&c.profiles)
    .bind(&c.models)
    .bind(&c.offsets)
    .bind(&c.dims)
    .bind(&c.flat)
    .bind(job_id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(usize::try_from(written).unwrap_or(usize::MAX))
}

/// The voiceprints of one profile for a file's speakers, by label.
pub async fn file_voiceprints(
    pool: &PgPool,
    file_id: Uuid,
    profile: &str,
) -> Result<Vec<Voiceprint>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT e.speaker_id, e.profile, e.model, e.vector \
         FROM speaker_embeddings e JOIN speakers s ON s.id = e.speaker_id \
         WHERE s.file_id = $1 AND e.profile = $2 ORDER BY s.label",
    )
    .bind(file_id)
    .bind(profile)
    .fetch_all(pool)
    .await?)
}

/// A speaker's voiceprints, by profile.
pub async fn speaker_voiceprints(
    pool: &PgPool,
    speaker_id: Uuid,
) -> Result<Vec<Voiceprint>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT speaker_id, profile, model, vector FROM speaker_embeddings \
         WHERE speaker_id = $1 ORDER BY profile",
    )
    .bind(speaker_id)
    .fetch_all(pool)
    .await?)
}

/// How many voiceprints each profile has, by profile.
pub async fn voiceprint_counts(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT profile, count(*) FROM speaker_embeddings GROUP BY profile ORDER BY profile",
    )
    .fetch_all(pool)
    .await?)
}
