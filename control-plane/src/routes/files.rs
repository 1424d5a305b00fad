//! Media files: upload (multipart, streamed) or register an object already in storage; get,
//! list, delete; the transcript in four formats; transcription usage.
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_jobs::Priority;
use voxfleet_store::files::{FileFilter, FileRecord, FileStatus, Usage};

use crate::AppState;
use crate::auth::Auth;
use crate::error::clip;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiQuery;
use crate::form::{SMALL_TEXT, TextBudget};
use crate::services::files::{Processing, live, load, processing};
use crate::transcript::Format;
use crate::upload::{self, Spooled};
use voxfleet_store::audit_events::AuditEvent;

#[derive(Debug, Serialize, ToSchema)]
pub struct FileError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    pub id: Uuid,
    pub owner: Option<Uuid>,
    pub filename: String,
    pub content_type: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    /// Whether deleting this file deletes its storage object (true for uploads; for an
    /// object registered by URI only when an admin asked for it).
    pub owns_object: bool,
    /// Seconds, probed at upload (`null` if the file could not be probed).
    pub duration_s: Option<f64>,
    /// Container, codec, sample rate, channels.
    pub audio: Option<Value>,
    /// The decoder's code when probing failed (`unsupported_format`, `corrupt_audio`, …).
    pub probe_error: Option<String>,
    pub status: FileStatus,
    /// Why the last transcription failed.
    pub error: Option<FileError>,
    /// The latest transcription job.
    pub transcription_job_id: Option<Uuid>,
    pub transcript_model: Option<String>,
    pub language: Option<String>,
    pub created_at: DateTime<Utc>,
    pub transcribed_at: Option<DateTime<Utc>>,
}

pub fn view(f: FileRecord) -> FileView {
    let status = f.status.0;
    let error = match (status, f.job_error_code) {
        (FileStatus::Failed | FileStatus::Cancelled, Some(code)) => Some(FileError {
            code,
            message: f.job_error_message.unwrap_or_default(),
        }),
        _ => None,
    };
    FileView {
        id: f.file.id,
        owner: f.file.owner,
        filename: f.file.filename,
        content_type: f.file.content_type,
        size_bytes: f.file.size_bytes,
        sha256: f.file.sha256,
        owns_object: f.file.owns_object,
        duration_s: f.file.duration_s,
        audio: f.file.audio,
        probe_error: f.file.probe_error,
        status,
        error,
        transcription_job_id: f.transcription_job,
        transcript_model: f.transcript_model,
        language: f.language,
        created_at: f.created_at,
        transcribed_at: f.transcribed_at,
    }
}

/// Registers an object already in the media store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFile {
    /// `file://…` or `s3://…` (a URL: its path is percent-decoded once), inside the
    /// configured storage. Users register from their own folder, `<storage>/users/<owner
    /// id>/`; admins from anywhere but the uploads folder (`<storage>/files/`).
    pub uri: String,
    #[serde(default)]
    pub filename: Option<String>,
    /// Admins: deleting the record (or retention) also deletes the object, once no other
    /// record uses it. Without it a registered object is never deleted by voxfleet.
    #[serde(default)]
    pub delete_with_file: bool,
    /// Jobs to queue at once: `["transcribe"]`, `["transcribe", "diarize"]` (transcript,
    /// speakers with voiceprints, speaker labels in the transcript), `["transcribe", "diarize",
    /// "embed"]` (the full pipeline: voiceprints under every profile).
    #[serde(default)]
    pub process: Vec<String>,
    /// Options of the transcription (`model`, `language`, `beam_size`, …).
    #[serde(default)]
    pub transcribe: Option<Value>,
    /// Options of the diarization (`num_speakers`, `min_speakers`, `max_speakers`, `profiles`).
    #[serde(default)]
    pub diarize: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    #[serde(flatten)]
    pub file: FileView,
    /// Jobs queued by `process`.
    pub jobs: Vec<Uuid>,
}

async fn finish_upload(
    st: &AppState,
    auth: &Auth,
    sp: Spooled,
    registered: Option<upload::Registered>,
    p: Processing,
) -> ApiResult<(StatusCode, HeaderMap, Json<UploadView>)> {
    // Known speakers' reference files are checked before anything is stored.
    let references: Vec<(usize, Uuid)> = p.references.iter().map(|&f| (0, f)).collect();
    crate::services::submit::check_file_ids(st, auth, &references, false).await?;
    let id = upload::store(st, auth.user_id, &sp, registered).await?;
    let inputs = p
        .jobs
        .into_iter()
        .map(|(kind, mut obj)| {
            obj.insert("file_id".into(), Value::String(id.to_string()));
            (kind, Value::Object(obj))
        })
        .collect();
    let queued = match upload::enqueue(st, auth, inputs, Priority::Normal).await {
        Ok(q) => q,
        Err(e) => {
            // A refused submission (a spent budget, say) leaves no file behind.
            upload::discard(st, id).await;
            return Err(e);
        }
    };
    let warning =
        crate::services::submit::budget_warning(st, auth.user_id, queued.iter().map(|j| j.kind))
            .await;
    let jobs = queued.into_iter().map(|j| j.id.0).collect();
    let rec = voxfleet_store::files::get_file(&st.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok((
        StatusCode::CREATED,
        warning,
        Json(UploadView {
            file: view(rec),
            jobs,
        }),
    ))
}

/// Upload a file (multipart: a `file` part; optional `process` = `transcribe` and an
/// `options` part holding the transcription options as JSON), or register one already in
/// storage (JSON body `RegisterFile`). Uploads stream to storage; the size limit gives 413.
#[utoipa::path(post, path = "/v1/files", tag = "files", request_body(content = RegisterFile,
        description = "multipart/form-data with a `file` part, or JSON"),
    responses((status = 201, body = UploadView), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_file(
    State(st): State<AppState>,
    auth: Auth,
    req: Request,
) -> ApiResult<(StatusCode, HeaderMap, Json<UploadView>)> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("application/json") {
        // The general body limit, not the route's (the upload limit, for multipart).
        let r: RegisterFile = crate::extract::json_within(req, st.limits.max_body_bytes).await?;
        let p = processing(&r.process, r.transcribe, r.diarize)?;
        let reg = upload::check_registration(&st, &auth, &r.uri, r.delete_with_file).await?;
        let name = r
            .filename
            .as_deref()
            .map(upload::clean_filename)
            .unwrap_or_else(|| upload::clean_filename(&reg.key));
        let sp = upload::spool_object(&st, &reg.key, name).await?;
        return finish_upload(&st, &auth, sp, Some(reg), p).await;
    }
    if !ctype.starts_with("multipart/form-data") {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "expected multipart/form-data (a `file` part) or application/json (`uri`)",
        ));
    }
    let max = st.limits.max_upload_bytes;
    let mut mp = Multipart::from_request(req, &st)
        .await
        .map_err(|e| ApiError::new(Code::InvalidBody, e.body_text()))?;
    // Every part is bounded as it arrives, and the first one past a bound is the answer: one
    // file, at most 8 `process` parts, each option once, and the text parts together within
    // the general body limit.
    let mut budget = TextBudget::new(st.limits.max_body_bytes);
    let (mut file, mut process, mut options, mut diarize_options) = (None, Vec::new(), None, None);
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| upload::multipart_error(e, max))?
    {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" if file.is_none() => file = Some(upload::spool_field(&st, field).await?),
            "file" => {
                return Err(ApiError::new(
                    Code::InvalidBody,
                    "one `file` part per upload",
                ));
            }
            "process" | "process[]" if process.len() < MAX_PROCESS_PARTS => {
                process.push(budget.read(field, SMALL_TEXT).await?)
            }
            "process" | "process[]" => {
                return Err(ApiError::new(
                    Code::InvalidBody,
                    format!("at most {MAX_PROCESS_PARTS} `process` parts"),
                ));
            }
            part @ ("options" | "diarize_options") => {
                let slot = if part == "options" {
                    &mut options
                } else {
                    &mut diarize_options
                };
                if slot.is_some() {
                    return Err(ApiError::new(
                        Code::InvalidBody,
                        format!("`{part}` given twice"),
                    ));
                }
                *slot = Some(budget.read(field, SMALL_TEXT).await?);
            }
            other => {
                return Err(ApiError::new(
                    Code::InvalidBody,
                    format!(
                        "unknown part `{}` (expected file, process, options, diarize_options)",
                        clip(other)
                    ),
                ));
            }
        }
    }
    let sp = file.ok_or_else(|| ApiError::new(Code::InvalidBody, "no `file` part"))?;
    // Checked once the whole form is in (a client still sending its file reads the answer).
    let json = |part: &str, text: Option<String>| -> ApiResult<Option<Value>> {
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| ApiError::new(Code::InvalidInput, format!("{part}: not JSON: {e}")))
        })
        .transpose()
    };
    let options = json("options", options)?;
    let diarize_options = json("diarize_options", diarize_options)?;
    let p = processing(&process, options, diarize_options)?;
    finish_upload(&st, &auth, sp, None, p).await
}

/// Most `process` parts in an upload (`transcribe`, `diarize`, `embed`, or a list).
const MAX_PROCESS_PARTS: usize = 8;

/// Get a file.
#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", params(("id" = String, Path)),
    responses((status = 200, body = FileView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_file(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<FileView>> {
    let f = load(&st, &auth, &id).await?;
    let f = live(&st, vec![f])
        .await
        .pop()
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok(Json(view(f)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    /// Admins: only this owner's files. Users always see their own.
    pub owner: Option<Uuid>,
    pub status: Option<FileStatus>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub files: Vec<FileView>,
    pub next_cursor: Option<String>,
}

/// List files, newest first.
#[utoipa::path(get, path = "/v1/files", tag = "files", params(FileQuery),
    responses((status = 200, body = FileList), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_files(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<FileQuery>,
) -> ApiResult<Json<FileList>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, "limit must be 1-500"));
    }
    let owner = if auth.is_admin() {
        q.owner
    } else {
        Some(auth.user_id)
    };
    let before = q
        .cursor
        .as_deref()
        .map(crate::routes::jobs::parse_cursor)
        .transpose()?;
    let rows = voxfleet_store::files::list_files(
        &st.pool,
        &FileFilter {
            owner,
            status: q.status,
            before,
            limit,
        },
    )
    .await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|f| format!("{}_{}", f.created_at.timestamp_micros(), f.file.id));
    let rows = live(&st, rows).await;
    Ok(Json(FileList {
        files: rows.into_iter().map(view).collect(),
        next_cursor,
    }))
}

/// Delete a file: its transcription is cancelled if in flight, then its rows are removed
/// (usage records stay), and its storage object if the record owns it (an upload, or an
/// object an admin registered with `delete_with_file`) and no other record uses it.
#[utoipa::path(delete, path = "/v1/files/{id}", tag = "files", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_file(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let f = load(&st, &auth, &id).await?;
    let f = live(&st, vec![f])
        .await
        .pop()
        .ok_or_else(|| ApiError::not_found("file"))?;
    if let Some(job) = f.transcription_job
        && matches!(f.status.0, FileStatus::Queued | FileStatus::Processing)
        && let Some(j) = voxfleet_store::jobs::get_job(&st.pool, voxfleet_jobs::JobId(job)).await?
    {
        st.queue.cancel(&j.queue, &j.id).await?;
    }
    // Rows first: the record is the truth; an object left behind by a failed delete is
    // logged (and is what an integrity check finds), never a record without its object.
    // The object goes only if this record owns it and no other record uses it.
    if let voxfleet_store::files::Deleted::DeleteObject(key) =
        voxfleet_store::files::delete_file(&st.pool, f.file.id).await?
        && let Err(e) = st.media.delete(&key).await
    {
        tracing::warn!(file.id = %f.file.id, key, error = %e, "file deleted but its object was not");
    }
    // Its search documents: derived data, so a failure here only leaves orphans that the
    // integrity check removes.
    if let Some(search) = &st.search
        && let Err(e) = voxfleet_search::SearchIndex::delete_file(&search.index, f.file.id).await
    {
        tracing::warn!(file.id = %f.file.id, error = %e, "file deleted but its search documents were not");
    }
    let detail = serde_json::json!({"filename": f.file.filename, "owner": f.file.owner});
    let target = f.file.id.to_string();
    if let Err(e) = voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::FileDelete,
        Some(&target),
        detail,
    )
    .await
    {
        tracing::warn!(error = %e, "audit record of a file deletion failed");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    /// `json` (default), `txt`, `srt` or `vtt`.
    pub format: Option<Format>,
}

/// A file's transcript.
#[utoipa::path(get, path = "/v1/files/{id}/transcript", tag = "files",
    params(("id" = String, Path), TranscriptQuery),
    responses((status = 200, description = "the transcript in the requested format"),
              (status = 404, body = ErrorBody), (status = 409, description = "not transcribed yet", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_transcript(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TranscriptQuery>,
) -> ApiResult<Response> {
    let f = load(&st, &auth, &id).await?;
    crate::services::files::transcript(&st, &f, q.format.unwrap_or(Format::Json)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Admins: this owner (all owners when absent). Users always get their own.
    pub owner: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
}

/// Transcription usage: jobs, audio minutes, processing seconds.
#[utoipa::path(get, path = "/v1/usage", tag = "files", params(UsageQuery),
    responses((status = 200, body = Usage)), security(("bearer" = [])))]
pub async fn usage(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<Usage>> {
    let owner = if auth.is_admin() {
        q.owner
    } else {
        Some(auth.user_id)
    };
    Ok(Json(
        voxfleet_store::files::usage(
            &st.pool,
            owner,
            crate::extract::check_time("since", q.since, Code::InvalidQuery)?,
        )
        .await?,
    ))
}
