//! Media files as the API serves them: only the caller's, with their jobs' live state, and the
//! jobs an upload's `process` asks for, checked before anything is stored.
use serde_json::Value;
use uuid::Uuid;
use voxfleet_jobs::{JobId, JobKind, QueueName};
use voxfleet_store::files::{FileRecord, FileStatus};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code};

/// Loads a file the caller may see (404 otherwise).
pub async fn load(st: &AppState, auth: &Auth, id: &str) -> ApiResult<FileRecord> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("file"))?;
    voxfleet_store::files::get_file(&st.pool, id)
        .await?
        .filter(|f| auth.may_access(f.file.owner))
        .ok_or_else(|| ApiError::not_found("file"))
}

/// Brings files whose job is still in flight in PostgreSQL up to date with Redis, where the
/// live job state is (PostgreSQL learns of claims and progress later, in batches).
pub async fn live(st: &AppState, mut rows: Vec<FileRecord>) -> Vec<FileRecord> {
    let idx: Vec<usize> = (0..rows.len())
        .filter(|&i| {
            matches!(
                rows[i].status.0,
                FileStatus::Queued | FileStatus::Processing
            )
        })
        .collect();
    let mut items = Vec::new();
    for &i in &idx {
        let (Some(q), Some(j)) = (&rows[i].job_queue, rows[i].transcription_job) else {
            continue;
        };
        if let Ok(q) = q.parse::<QueueName>() {
            items.push((i, q, JobId(j)));
        }
    }
    if items.is_empty() {
        return rows;
    }
    let keys: Vec<(QueueName, JobId)> = items.iter().map(|(_, q, j)| (q.clone(), *j)).collect();
    match st.queue.get_many(&keys).await {
        Ok(live) => {
            for ((i, _, _), l) in items.iter().zip(live) {
                if let Some(l) = l {
                    let r = &mut rows[*i];
                    r.status.0 = FileStatus::derive(Some(l.status), r.transcribed_at.is_some());
                    r.job_error_code = l.error_code;
                    r.job_error_message = l.error_message;
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "live job state unavailable; file status from PostgreSQL")
        }
    }
    rows
}

/// What to run after storing, from `process` and the options: each job's payload, checked
/// with a placeholder `file_id` before anything is stored (the real id goes in afterwards).
pub struct Processing {
    pub jobs: Vec<(JobKind, serde_json::Map<String, Value>)>,
    /// Known speakers' reference files (checked before anything is stored).
    pub references: Vec<Uuid>,
}

pub fn processing(
    process: &[String],
    transcribe_options: Option<Value>,
    diarize_options: Option<Value>,
) -> ApiResult<Processing> {
    let mut wanted = Vec::new();
    let mut every_profile = false;
    for p in process.iter().flat_map(|p| p.split(',')).map(str::trim) {
        let kind = match p {
            "" => continue,
            "transcribe" => JobKind::Transcribe,
            "diarize" => JobKind::Diarize,
            // Voiceprints under every profile (v3 and v4), computed by the diarization.
            "embed" => {
                every_profile = true;
                JobKind::Diarize
            }
            other => {
                return Err(ApiError::new(
                    Code::InvalidInput,
                    format!(
                        "process: `{other}` is not available on upload (known: transcribe, diarize, embed)"
                    ),
                ));
            }
        };
        if !wanted.contains(&kind) {
            wanted.push(kind);
        }
    }
    let (mut jobs, mut references) = (Vec::new(), Vec::new());
    for (kind, options) in [
        (JobKind::Transcribe, transcribe_options),
        (JobKind::Diarize, diarize_options),
    ] {
        if !wanted.contains(&kind) {
            if options.is_some() {
                return Err(ApiError::new(
                    Code::InvalidInput,
                    format!("{kind} options given without `process: [\"{kind}\"]`"),
                ));
            }
            continue;
        }
        let mut obj = match options.unwrap_or(Value::Object(Default::default())) {
            Value::Object(m) => m,
            _ => {
                return Err(ApiError::new(
                    Code::InvalidInput,
                    format!("{kind} options must be an object"),
                ));
            }
        };
        obj.insert("file_id".into(), Value::String(Uuid::nil().to_string()));
        if kind == JobKind::Diarize && every_profile && !obj.contains_key("profiles") {
            obj.insert(
                "profiles".into(),
                voxfleet_jobs::EMBEDDING_PROFILES.as_slice().into(),
            );
        }
        if let voxfleet_jobs::JobInput::Diarize(d) =
            crate::services::submit::parse_input(kind, &Value::Object(obj.clone()))?
        {
            references.extend(d.known_speakers.iter().map(|k| k.file_id));
        }
        jobs.push((kind, obj));
    }
    Ok(Processing { jobs, references })
}

/// A file's transcript in `format`, cut and labelled by speaker once the file is diarized
/// (409 `not_ready` before there is one): what `GET /v1/files/{id}/transcript` and public
/// share links answer.
pub async fn transcript(
    st: &AppState,
    f: &FileRecord,
    format: crate::transcript::Format,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if f.transcribed_at.is_none() {
        return Err(ApiError::new(
            Code::NotReady,
            format!(
                "file {} has no transcript (status: {})",
                f.file.id,
                f.status.0.as_str()
            ),
        ));
    }
    let turns = voxfleet_store::speakers::turns(&st.pool, f.file.id).await?;
    let segments = crate::transcript::split_at_turns(
        voxfleet_store::files::segments(&st.pool, f.file.id).await?,
        &turns,
    );
    let speakers = voxfleet_store::speakers::file_speakers(&st.pool, f.file.id).await?;
    let labels = crate::transcript::segment_speakers(&segments, &turns);
    let body = crate::transcript::render(
        format,
        &crate::transcript::Transcript {
            file: f,
            segments: &segments,
            labels,
            speakers: &speakers,
        },
    );
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        axum::body::Body::from(body),
    )
        .into_response())
}
