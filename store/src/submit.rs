//! The one submission path of the whole system: the API (`POST /v1/jobs`, batches, uploads
//! with `process`, the OpenAI endpoint, maintenance sections), the scheduler and the worker's
//! follow-up jobs all record and queue jobs through [`record_and_queue`].
//!
//! The rows and the files' links to them are written in one transaction (a failed insert
//! re-points nothing), before the jobs are queued, so a worker that finishes at once finds its
//! file waiting for it. If queueing fails, the new rows are removed and the files point back at
//! their previous jobs, so a caller that sees an error can simply submit again.
//!
//! A transcription that names no language or prompt takes its owner's defaults (the user's
//! `default_language` and `default_prompt`) here, so every way in applies them.
use std::collections::HashMap;

use uuid::Uuid;
use voxfleet_jobs::{
    EnqueueRequest, JobId, JobInput, JobKind, JobSnapshot, Priority, QueueClient, QueueError,
};

use crate::db::StoreError;
use crate::files::JobColumn;
use crate::jobs::{Inserted, insert_and_link, new_snapshot, undo_submission};

/// Why a submission was not taken: nothing of it remains recorded or queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A new job of `input`'s kind on its default queue at normal priority, built from the typed
/// payload (what follow-up and scheduled jobs use instead of hand-written JSON).
pub fn new_job(input: &JobInput, owner: Option<Uuid>) -> JobSnapshot {
    let kind = input.kind();
    new_snapshot(
        kind,
        kind.default_queue(),
        Priority::Normal,
        input.to_value(),
        owner,
        None,
        None,
    )
}

/// The file a job works on, if its kind takes one.
pub fn file_of(j: &JobSnapshot) -> Option<Uuid> {
    match j.kind.parse_input(&j.input) {
        Ok(JobInput::Transcribe(t)) => Some(t.file_id),
        Ok(JobInput::Diarize(d)) => Some(d.file_id),
        Ok(JobInput::ExtractEmbeddings(e)) => Some(e.file_id),
        _ => None,
    }
}

/// Every file a job reads: its own and, for diarization, the known speakers' references.
pub fn files_read(j: &JobSnapshot) -> Vec<Uuid> {
    match j.kind.parse_input(&j.input) {
        Ok(JobInput::Diarize(d)) => std::iter::once(d.file_id)
            .chain(d.known_speakers.iter().map(|k| k.file_id))
            .collect(),
        _ => file_of(j).into_iter().collect(),
    }
}

/// The file columns a job takes over: a transcription becomes its file's newest transcription
/// job, a diarization its newest diarization job.
fn file_links(j: &JobSnapshot) -> Vec<(JobColumn, Uuid)> {
    let column = match j.kind {
        JobKind::Transcribe => JobColumn::Transcription,
        JobKind::Diarize => JobColumn::Diarization,
        _ => return vec![],
    };
    file_of(j).map(|f| (column, f)).into_iter().collect()
}

/// Records then queues `jobs` (see the module docs). A job whose idempotency key was seen
/// before comes back as [`Inserted::Existing`] and is not queued again.
pub async fn record_and_queue(
    pool: &sqlx::PgPool,
    queue: &QueueClient,
    jobs: &[JobSnapshot],
) -> Result<Vec<Inserted>, SubmitError> {
    let jobs = with_owner_defaults(pool, jobs).await?;
    let (inserted, relinked) = insert_and_link(pool, &jobs, file_links).await?;
    let new: Vec<EnqueueRequest> = inserted
        .iter()
        .filter_map(|i| match i {
            Inserted::Created(j) => Some(EnqueueRequest::from(j)),
            Inserted::Existing(_) => None,
        })
        .collect();
    if let Err(e) = queue.enqueue_many(&new).await {
        let ids: Vec<JobId> = new.iter().map(|r| r.id).collect();
        if let Err(undo) = undo_submission(pool, &ids, &relinked).await {
            tracing::error!(error = %undo, "a submission that could not be queued was not taken back");
        }
        return Err(e.into());
    }
    for r in &new {
        metrics::counter!("voxfleet_jobs_submitted_total", "kind" => r.kind.as_str(), "queue" => r.queue.to_string()).increment(1);
    }
    Ok(inserted)
}

/// `jobs`, each transcription filled in with its owner's default language and prompt where
/// it names none.
async fn with_owner_defaults(
    pool: &sqlx::PgPool,
    jobs: &[JobSnapshot],
) -> Result<Vec<JobSnapshot>, StoreError> {
    let unset = |v: &serde_json::Value, k: &str| v.get(k).is_none_or(serde_json::Value::is_null);
    let mut out = jobs.to_vec();
    let mut seen: HashMap<Uuid, (Option<String>, Option<String>)> = HashMap::new();
    for j in &mut out {
        let Some(owner) = j.owner else { continue };
        if j.kind != JobKind::Transcribe
            || !(unset(&j.input, "language") || unset(&j.input, "prompt"))
        {
            continue;
        }
        let (language, prompt) = match seen.entry(owner) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(crate::users::transcription_defaults(pool, owner).await?)
            }
        };
        for (key, value) in [("language", &*language), ("prompt", &*prompt)] {
            if let (Some(v), Some(obj)) = (value, j.input.as_object_mut())
                && obj.get(key).is_none_or(serde_json::Value::is_null)
            {
                obj.insert(key.into(), v.clone().into());
            }
        }
    }
    Ok(out)
}
