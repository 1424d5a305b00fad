//! Status and progress events, published on one Redis pub/sub channel by the scripts (status
//! changes) and by workers (progress), and streamed by the control plane as server-sent events.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{JobId, JobStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    pub id: JobId,
    /// `status`, `progress`, or `text` (a transcription finished more text: see
    /// `QueueClient::append_text`).
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: JobStatus,
    pub kind: String,
    pub queue: String,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub progress_done: Option<u64>,
    #[serde(default)]
    pub progress_total: Option<u64>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub owner: Option<Uuid>,
    /// Start of the current attempt (ms since the epoch), for ETAs.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}
