//! The job snapshot (a job's whole state at one moment, in Redis and in PostgreSQL) and the
//! request that queues a new job.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kinds::JobKind;
use crate::model::{JobId, JobStatus, Priority, QueueName};

/// Everything known about a job at one moment: the Redis hash while it is live, the
/// PostgreSQL row afterwards. `version` grows with every change, so a writer can refuse to
/// overwrite a newer state with an older one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSnapshot {
    pub id: JobId,
    pub kind: JobKind,
    pub queue: QueueName,
    pub priority: Priority,
    pub status: JobStatus,
    pub input: serde_json::Value,
    pub owner: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub attempts: u32,
    /// The job's own cap on retries, if it asked for one.
    pub max_retries: Option<u32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<serde_json::Value>,
    pub progress_done: Option<u64>,
    pub progress_total: Option<u64>,
    pub worker: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A submission, ready to be queued.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    pub id: JobId,
    pub kind: JobKind,
    pub queue: QueueName,
    pub priority: Priority,
    pub input: serde_json::Value,
    pub owner: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub max_retries: Option<u32>,
    pub created_at: DateTime<Utc>,
    /// Starting version of the Redis hash (a re-run continues the PostgreSQL row's version).
    pub version: i64,
}

impl From<&JobSnapshot> for EnqueueRequest {
    fn from(j: &JobSnapshot) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            queue: j.queue.clone(),
            priority: j.priority,
            input: j.input.clone(),
            owner: j.owner,
            idempotency_key: j.idempotency_key.clone(),
            max_retries: j.max_retries,
            created_at: j.created_at,
            version: j.version,
        }
    }
}
