//! Conversion between a job's Redis hash and [`JobSnapshot`].
use std::collections::HashMap;

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

pub(crate) fn snapshot_from_hash(h: &HashMap<String, String>) -> Result<JobSnapshot, QueueError> {
    let get = |k: &str| h.get(k).filter(|v| !v.is_empty());
    let id_s = get("id").ok_or_else(|| corrupt("?", "no id"))?.clone();
    let num = |k: &str| -> Result<Option<i64>, QueueError> {
        get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| corrupt(&id_s, format!("{k}={v}")))
            })
            .transpose()
    };
    let id: JobId = id_s.parse().map_err(|_| corrupt(&id_s, "bad id"))?;
    let kind = get("kind")
        .ok_or_else(|| corrupt(&id_s, "no kind"))?
        .parse()
        .map_err(|e: String| corrupt(&id_s, e))?;
    let queue: QueueName = get("queue")
        .ok_or_else(|| corrupt(&id_s, "no queue"))?
        .parse()
        .map_err(|e: String| corrupt(&id_s, e))?;
    let status: JobStatus = get("status")
        .ok_or_else(|| corrupt(&id_s, "no status"))?
        .parse()
        .map_err(|e: String| corrupt(&id_s, e))?;
    let priority = Priority::from_index(num("priority")?.unwrap_or(1) as usize)
        .ok_or_else(|| corrupt(&id_s, "bad priority"))?;
    let input = match get("input") {
        Some(s) => serde_json::from_str(s).map_err(|e| corrupt(&id_s, e.to_string()))?,
        None => serde_json::Value::Null,
    };
    let result = get("result")
        .map(|s| serde_json::from_str(s).map_err(|e| corrupt(&id_s, e.to_string())))
        .transpose()?;
    let owner = get("owner")
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
        idempotency_key: get("idem").cloned(),
        attempts: num("attempts")?.unwrap_or(0).max(0) as u32,
        max_retries: num("max_retries")?.map(|v| v.max(0) as u32),
        error_code: get("error_code").cloned(),
        error_message: get("error_message").cloned(),
        result,
        progress_done: num("progress_done")?.map(|v| v.max(0) as u64),
        progress_total: num("progress_total")?.map(|v| v.max(0) as u64),
        worker: get("worker").cloned(),
        version: num("v")?.unwrap_or(0),
        created_at: ms_to_time(num("created_at")?.unwrap_or(0)),
        started_at: num("started_at")?.map(ms_to_time),
        finished_at: num("finished_at")?.map(ms_to_time),
    })
}

/// Turns the flat `[field, value, …]` array a script returns into a map (moving the strings).
pub(crate) fn pairs_to_map(items: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}
