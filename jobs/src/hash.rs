//! Conversion between a job's Redis hash and [`JobSnapshot`].
use uuid::Uuid;

use crate::error::QueueError;
use crate::model::{JobId, JobStatus, Priority, QueueName, ms_to_time};
use crate::snapshot::{EnqueueRequest, JobSnapshot};

/// The hash fields of a new (or re-run) job, as field/value pairs for `HSET`.
pub(crate) fn new_job_fields(req: &EnqueueRequest) -> Vec<(String, String)> {
    let mut f = vec![
        ("id".into(), req.id.to_string()),
        ("kind".into(), req.kind.as_str().into()),
        ("queue".into(), req.queue.to_string()),
        ("priority".into(), req.priority.index().to_string()),
        ("status".into(), "queued".into()),
        ("input".into(), req.input.to_string()),
        ("attempts".into(), "0".into()),
        ("v".into(), req.version.to_string()),
        (
            "created_at".into(),
            req.created_at.timestamp_millis().to_string(),
        ),
    ];
    if let Some(o) = req.owner {
        f.push(("owner".into(), o.to_string()));
    }
    if let Some(k) = &req.idempotency_key {
        f.push(("idem".into(), k.clone()));
    }
    if let Some(m) = req.max_retries {
        f.push(("max_retries".into(), m.to_string()));
    }
    f
}

fn corrupt(id: &str, detail: impl Into<String>) -> QueueError {
    QueueError::Corrupt {
        id: id.to_string(),
        detail: detail.into(),
    }
}

/// A job hash's fields by name, each taken once from the pairs Redis returned (no map is
/// built: this runs for every claimed job and every persisted state). Empty values count as
/// absent, as the scripts write '' for "none".
#[derive(Default)]
struct Fields {
    id: Option<String>,
    kind: Option<String>,
    queue: Option<String>,
    priority: Option<String>,
    status: Option<String>,
    input: Option<String>,
    result: Option<String>,
    owner: Option<String>,
    idem: Option<String>,
    attempts: Option<String>,
    max_retries: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    progress_done: Option<String>,
    progress_total: Option<String>,
    worker: Option<String>,
    v: Option<String>,
    created_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
}

impl Fields {
    fn take(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut f = Fields::default();
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            let slot = match k.as_str() {
                "id" => &mut f.id,
                "kind" => &mut f.kind,
                "queue" => &mut f.queue,
                "priority" => &mut f.priority,
                "status" => &mut f.status,
                "input" => &mut f.input,
                "result" => &mut f.result,
                "owner" => &mut f.owner,
                "idem" => &mut f.idem,
                "attempts" => &mut f.attempts,
                "max_retries" => &mut f.max_retries,
                "error_code" => &mut f.error_code,
                "error_message" => &mut f.error_message,
                "progress_done" => &mut f.progress_done,
                "progress_total" => &mut f.progress_total,
                "worker" => &mut f.worker,
                "v" => &mut f.v,
                "created_at" => &mut f.created_at,
                "started_at" => &mut f.started_at,
                "finished_at" => &mut f.finished_at,
                _ => continue,
            };
            *slot = Some(v);
        }
        f
    }
}

/// A job from its hash's field/value pairs (`HGETALL`, or a script's copy of it).
pub(crate) fn snapshot_from_pairs(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<JobSnapshot, QueueError> {
    let f = Fields::take(pairs);
    let id_s = f.id.ok_or_else(|| corrupt("?", "no id"))?;
    let num = |k: &str, v: Option<&String>| -> Result<Option<i64>, QueueError> {
        v.map(|v| {
            v.parse::<i64>()
                .map_err(|_| corrupt(&id_s, format!("{k}={v}")))
        })
        .transpose()
    };
    let id: JobId = id_s.parse().map_err(|_| corrupt(&id_s, "bad id"))?;
    let kind = f
        .kind
        .ok_or_else(|| corrupt(&id_s, "no kind"))?
        .parse()
        .map_err(|e: String| corrupt(&id_s, e))?;
    let queue: QueueName = f
        .queue
        .ok_or_else(|| corrupt(&id_s, "no queue"))?
        .parse()
        .map_err(|e: String| corrupt(&id_s, e))?;
    let status: JobStatus = f
        .status
        .ok_or_else(|| corrupt(&id_s, "no status"))?
        .parse()
        .map_err(|e: String| corrupt(&id_s, e))?;
    let priority =
        Priority::from_index(num("priority", f.priority.as_ref())?.unwrap_or(1) as usize)
            .ok_or_else(|| corrupt(&id_s, "bad priority"))?;
    let json = |s: &str| serde_json::from_str(s).map_err(|e| corrupt(&id_s, e.to_string()));
    let input = match &f.input {
        Some(s) => json(s)?,
        None => serde_json::Value::Null,
    };
    let result = f.result.as_deref().map(json).transpose()?;
    let owner = f
        .owner
        .as_deref()
        .map(|s| Uuid::parse_str(s).map_err(|_| corrupt(&id_s, "bad owner")))
        .transpose()?;
    Ok(JobSnapshot {
        id,
        kind,
        queue,
        priority,
        status,
        input,
        owner,
        idempotency_key: f.idem,
        attempts: num("attempts", f.attempts.as_ref())?.unwrap_or(0).max(0) as u32,
        max_retries: num("max_retries", f.max_retries.as_ref())?.map(|v| v.max(0) as u32),
        error_code: f.error_code,
        error_message: f.error_message,
        result,
        progress_done: num("progress_done", f.progress_done.as_ref())?.map(|v| v.max(0) as u64),
        progress_total: num("progress_total", f.progress_total.as_ref())?.map(|v| v.max(0) as u64),
        worker: f.worker,
        version: num("v", f.v.as_ref())?.unwrap_or(0),
        created_at: ms_to_time(num("created_at", f.created_at.as_ref())?.unwrap_or(0)),
        started_at: num("started_at", f.started_at.as_ref())?.map(ms_to_time),
        finished_at: num("finished_at", f.finished_at.as_ref())?.map(ms_to_time),
    })
}

/// The flat `[field, value, …]` array a script returns, as pairs (moving the strings).
pub(crate) fn flat_pairs(items: Vec<String>) -> impl Iterator<Item = (String, String)> {
    let mut it = items.into_iter();
    std::iter::from_fn(move || Some((it.next()?, it.next()?)))
}
