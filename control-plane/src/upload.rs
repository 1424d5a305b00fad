//! Getting media in: a multipart field or an object already in storage is spooled to a local
//! temporary file while it is hashed and counted (bounded memory whatever its size), probed
//! off the async runtime, streamed into the media store, and recorded. Shared by
//! `POST /v1/files` and the OpenAI-compatible endpoint.
use std::path::Path;

use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use voxfleet_jobs::{JobKind, JobSnapshot, Priority};
use voxfleet_store::files::StoredFile;
use voxfleet_store::jobs::Inserted;
use voxfleet_store::media::{MediaError, MediaStore};

use crate::AppState;
use crate::error::{ApiError, ApiResult, Code};
use voxfleet_errors::Classified;

/// A received file on local disk, deleted when dropped.
pub struct Spooled {
    pub path: TempPath,
    pub size: u64,
    pub sha256: String,
    pub filename: String,
    pub content_type: Option<String>,
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        Code::FileTooLarge,
        format!("the file is larger than the limit of {max} bytes"),
    )
}

pub fn multipart_error(e: MultipartError, max: u64) -> ApiError {
    if crate::extract::timed_out(&e) {
        crate::extract::request_timeout()
    } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::new(
            Code::InvalidBody,
            format!("multipart body: {}", e.body_text()),
        )
    }
}

fn spool_file(st: &AppState) -> ApiResult<(tokio::fs::File, TempPath)> {
    let tmp = tempfile::NamedTempFile::new_in(&st.limits.spool_dir).map_err(|e| {
        tracing::error!(error = %e, dir = %st.limits.spool_dir.display(), "cannot create a spool file");
        ApiError::new(Code::Internal, "internal error")
    })?;
    let (file, path) = tmp.into_parts();
    Ok((tokio::fs::File::from_std(file), path))
}

fn io_error(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "spooling an upload failed");
    ApiError::new(Code::Internal, "internal error")
}

/// Streams one multipart field to a spool file, enforcing the upload limit as bytes arrive.
pub async fn spool_field(st: &AppState, mut field: Field<'_>) -> ApiResult<Spooled> {
    let max = st.limits.max_upload_bytes;
    let filename = field
        .file_name()
        .map(clean_filename)
        .unwrap_or_else(|| "upload".into());
    let content_type = field.content_type().map(str::to_owned);
    let (mut out, path) = spool_file(st)?;
    let (mut size, mut hash) = (0u64, Sha256::new());
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, max))? {
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        hash.update(&chunk);
        out.write_all(&chunk).await.map_err(io_error)?;
    }
    out.flush().await.map_err(io_error)?;
    Ok(Spooled {
        path,
        size,
        sha256: hex::encode(hash.finalize()),
        filename,
        content_type,
    })
}

/// Spools bytes already in memory (a reference clip sent as a data URL).
pub async fn spool_bytes(
    st: &AppState,
    bytes: &[u8],
    filename: String,
    content_type: Option<String>,
) -> ApiResult<Spooled> {
    let max = st.limits.max_upload_bytes;
    if bytes.len() as u64 > max {
        return Err(too_large(max));
    }
    let (mut out, path) = spool_file(st)?;
    out.write_all(bytes).await.map_err(io_error)?;
    out.flush().await.map_err(io_error)?;
    Ok(Spooled {
        path,
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        filename,
        content_type,
    })
}

/// Copies an object already in storage to a spool file (to hash and probe it).
pub async fn spool_object(st: &AppState, key: &str, filename: String) -> ApiResult<Spooled> {
    let max = st.limits.max_upload_bytes;
    let size = st.media.size(key).await.map_err(media_error)?;
    if size > max {
        return Err(too_large(max));
    }
    let (_, path) = spool_file(st)?;
    st.media
        .download_to(key, &path)
        .await
        .map_err(media_error)?;
    let (size, sha256) = hash_file(&path).await.map_err(io_error)?;
    Ok(Spooled {
        path,
        size,
        sha256,
        filename,
        content_type: None,
    })
}

async fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = tokio::fs::File::open(path).await?;
    let (mut buf, mut hash, mut n) = (vec![0u8; 1 << 20], Sha256::new(), 0u64);
    loop {
        let k = f.read(&mut buf).await?;
        if k == 0 {
            return Ok((n, hex::encode(hash.finalize())));
        }
        n += k as u64;
        hash.update(&buf[..k]);
    }
}

pub fn media_error(e: MediaError) -> ApiError {
    match e {
        // One answer for "outside the store" and "not there", with no path in it: neither
        // tells a caller what exists on the host or in storage.
        e @ (MediaError::NotFound(_) | MediaError::OutsideStore { .. }) => {
            tracing::debug!(error = %e, "object refused or missing");
            no_object()
        }
        MediaError::BadKey { .. } => ApiError::new(
            Code::InvalidInput,
            "uri: its path is not a valid object key (UTF-8, no control characters, no `.` or `..` segments)",
        ),
        e => {
            tracing::warn!(error = %e, "media storage error");
            ApiError::new(
                Code::Unavailable,
                "media storage is unavailable; try again shortly",
            )
        }
    }
}

fn no_object() -> ApiError {
    ApiError::new(
        Code::NotFound,
        "uri: no object you may register at this URI in the configured storage",
    )
}

/// An object already in storage that a new record will point at.
#[derive(Debug, Clone)]
pub struct Registered {
    pub key: String,
    /// Deleting the record deletes the object (when no other record uses it).
    pub owns_object: bool,
}

/// Decides whether the caller may register the object at `uri` (`delete_with_file`: the new
/// record owns the object). The rules:
/// - uploads (`<prefix>/files/…`) belong to their records and are never registered;
/// - a user registers only from its own folder, `<prefix>/users/<owner id>/…` (where a
///   platform puts that user's recordings), and never takes ownership of an object;
/// - an admin registers any other object; with `delete_with_file` the record owns it, unless
///   another record owns it already (409).
///
/// Every refusal that could tell what exists is the same 404 as a missing object.
pub async fn check_registration(
    st: &AppState,
    auth: &crate::auth::Auth,
    uri: &str,
    delete_with_file: bool,
) -> ApiResult<Registered> {
    if delete_with_file && !auth.is_admin() {
        return Err(ApiError::new(
            Code::Forbidden,
            "only admins may register an object with `delete_with_file`",
        ));
    }
    let key = st.media.key_for_uri(uri).map_err(media_error)?;
    let media = &st.media;
    if MediaStore::key_in(&key, &media.uploads_prefix())
        || (!auth.is_admin() && !MediaStore::key_in(&key, &media.owner_prefix(auth.user_id)))
    {
        return Err(no_object());
    }
    if delete_with_file {
        let users = voxfleet_store::files::records_of_object(&st.pool, &key).await?;
        if users.iter().any(|&(_, _, owns)| owns) {
            return Err(ApiError::new(
                Code::ObjectInUse,
                "another record already owns this object (registered with delete_with_file)",
            ));
        }
    }
    Ok(Registered {
        key,
        owns_object: delete_with_file,
    })
}

/// Keeps the last path component, without control characters; at most 255 bytes.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut s: String = base.chars().filter(|c| !c.is_control()).collect();
    while s.len() > 255 {
        s.pop();
    }
    if s.is_empty() { "upload".into() } else { s }
}

/// Probes, stores (unless the object is already in storage: `registered`) and records a
/// spooled file; returns its id. An unreadable file is still stored and recorded, with its probe error:
/// nothing a client sent is lost, and transcribing it fails with the decoder's code.
pub async fn store(
    st: &AppState,
    owner: Uuid,
    sp: &Spooled,
    registered: Option<Registered>,
) -> ApiResult<Uuid> {
    let id = Uuid::now_v7();
    let path = sp.path.to_path_buf();
    let probe = tokio::task::spawn_blocking(move || voxfleet_audio::probe_file(&path))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "probe task failed");
            ApiError::new(Code::Internal, "internal error")
        })?;
    let (duration_s, audio, probe_error) = match probe {
        Ok(p) => (
            p.duration_s,
            Some(json!({"container": p.container, "codec": p.codec,
                        "sample_rate": p.sample_rate, "channels": p.channels})),
            None,
        ),
        Err(e) => (None, None, Some(e.code().to_owned())),
    };
    let uploaded = registered.is_none();
    let (key, owns_object) = match registered {
        Some(r) => (r.key, r.owns_object),
        None => {
            let k = st.media.key_for_upload(id);
            st.media.put_file(&k, &sp.path).await.map_err(media_error)?;
            (k, true)
        }
    };
    let new = StoredFile {
        id,
        owner: Some(owner),
        filename: sp.filename.clone(),
        content_type: sp.content_type.clone(),
        size_bytes: sp.size as i64,
        sha256: sp.sha256.clone(),
        storage_key: key.clone(),
        owns_object,
        duration_s,
        audio,
        probe_error,
    };
    if let Err(e) = voxfleet_store::files::insert_file(&st.pool, &new).await {
        if uploaded {
            // No record, no object: the client sees an error and uploads again.
            let _ = st.media.delete(&key).await;
        }
        return Err(e.into());
    }
    metrics::counter!("voxfleet_files_uploaded_total").increment(1);
    Ok(id)
}

/// Queues a file's jobs (`(kind, payload)`) in one submission; `submit_many` links the file to
/// them. A transcription and a diarization do not wait for each other: both read only the
/// audio, and transcript exports join their results (speaker labels) once both are there.
pub async fn enqueue(
    st: &AppState,
    auth: &crate::auth::Auth,
    jobs: Vec<(JobKind, Value)>,
    priority: Priority,
) -> ApiResult<Vec<JobSnapshot>> {
    let owner = auth.user_id;
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut snapshots = Vec::new();
    for (kind, input) in jobs {
        crate::services::submit::parse_input(kind, &input)?;
        snapshots.push(voxfleet_store::jobs::new_snapshot(
            kind,
            kind.default_queue(),
            priority,
            input,
            Some(owner),
            None,
            None,
        ));
    }
    // The same check as `POST /v1/jobs`: every file a job reads (its own, and the known
    // speakers' reference clips) is one the caller may see.
    crate::services::submit::check_files(st, auth, &snapshots).await?;
    let inserted = crate::services::submit::submit_many(st, snapshots).await?;
    Ok(inserted
        .into_iter()
        .map(|i| match i {
            Inserted::Created(j) | Inserted::Existing(j) => j,
        })
        .collect())
}

/// Takes back a stored upload whose jobs were refused (a spent budget, say): its rows, then
/// its object if the record owned it. Best effort: a failure is logged.
pub async fn discard(st: &AppState, id: Uuid) {
    match voxfleet_store::files::delete_file(&st.pool, id).await {
        Ok(voxfleet_store::files::Deleted::DeleteObject(key)) => {
            if let Err(e) = st.media.delete(&key).await {
                tracing::warn!(file.id = %id, key, error = %e, "refused upload: its object was not deleted");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(file.id = %id, error = %e, "refused upload: its record was not deleted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clean_filename;

    #[test]
    fn filenames_keep_their_last_component() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\rec\\talk.wav"), "talk.wav");
        assert_eq!(clean_filename("a\u{0}b\nc.mp3"), "abc.mp3");
        assert_eq!(clean_filename(""), "upload");
        assert_eq!(clean_filename(&"x".repeat(400)).len(), 255);
    }
}
