//! What a running job tells the outside besides its state: events on the pub/sub channel,
//! the partial transcript a streaming reader follows, and remembered OpenAI requests.
use std::time::Duration;

use redis::AsyncCommands;

use super::{ClaimedJob, QueueClient};
use crate::error::QueueError;
use crate::events::JobEvent;
use crate::model::{JobId, JobStatus, QueueName};

/// How long a partial transcript outlives its last write.
const PARTIAL_TEXT_TTL_S: i64 = 3600;

impl QueueClient {
    /// Publishes an event of `event_type` about a running job (e.g. `stopped`: a
    /// maintenance job saw its stop request and is ending with a partial report), carrying its
    /// latest progress.
    pub async fn publish_event(
        &self,
        claimed: &ClaimedJob,
        event_type: &str,
        done: u64,
        total: u64,
    ) -> Result<(), QueueError> {
        let payload = Self::running_payload(claimed, event_type, done, total, self.now_ms());
        let mut c = self.conn.clone();
        c.publish::<_, _, ()>(self.keys.events(), payload).await?;
        Ok(())
    }

    /// A running job's event (with its latest progress), as the JSON the events channel carries.
    pub(super) fn running_payload(
        claimed: &ClaimedJob,
        event_type: &str,
        done: u64,
        total: u64,
        now: i64,
    ) -> String {
        let job = &claimed.job;
        let ev = JobEvent {
            id: job.id,
            event_type: event_type.into(),
            status: JobStatus::Running,
            kind: job.kind.as_str().into(),
            queue: job.queue.to_string(),
            attempts: job.attempts,
            progress_done: Some(done),
            progress_total: Some(total),
            error_code: None,
            owner: job.owner,
            started_at: job.started_at.map(|t| t.timestamp_millis()),
            at: now,
        };
        serde_json::to_string(&ev).unwrap_or_default()
    }

    /// Appends `text` to the job's partial transcript ([`QueueKeys::partial_text`]) and
    /// publishes a `text` event (with the progress), so a streaming reader wakes and reads it.
    pub async fn append_text(
        &self,
        claimed: &ClaimedJob,
        text: &str,
        done: u64,
        total: u64,
    ) -> Result<(), QueueError> {
        let job = &claimed.job;
        let key = self.keys.queue(&job.queue).partial_text(&job.id);
        let payload = Self::running_payload(claimed, "text", done, total, self.now_ms());
        let mut c = self.conn.clone();
        redis::pipe()
            .append(&key, text)
            .ignore()
            .expire(&key, PARTIAL_TEXT_TTL_S)
            .ignore()
            .publish(self.keys.events(), payload)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Forgets the partial transcript of an earlier attempt (a new attempt starts over).
    pub async fn reset_text(&self, claimed: &ClaimedJob) -> Result<(), QueueError> {
        let job = &claimed.job;
        self.delete(self.keys.queue(&job.queue).partial_text(&job.id))
            .await
    }

    async fn delete(&self, key: String) -> Result<(), QueueError> {
        let mut c = self.conn.clone();
        redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// The job's partial transcript from byte `from` on (empty when there is nothing new, or
    /// none at all). Appends are whole texts, so `from` taken from an earlier read's end falls
    /// on a character boundary.
    pub async fn partial_text(
        &self,
        queue: &QueueName,
        id: &JobId,
        from: usize,
    ) -> Result<String, QueueError> {
        let key = self.keys.queue(queue).partial_text(id);
        let mut c = self.conn.clone();
        let bytes: Vec<u8> = redis::cmd("GETRANGE")
            .arg(&key)
            .arg(from)
            .arg(-1)
            .query_async(&mut c)
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// What [`QueueClient::remember_request`] stored under `hash`, if it has not expired.
    pub async fn recall_request(&self, hash: &str) -> Result<Option<String>, QueueError> {
        let mut c = self.conn.clone();
        Ok(c.get(self.keys.request(hash)).await?)
    }

    /// Stores `value` under the request `hash` for `ttl`, unless one is there already
    /// (the first of two identical requests keeps the key); whether it was stored.
    pub async fn remember_request(
        &self,
        hash: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let mut c = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.request(hash))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut c)
            .await?;
        Ok(set.is_some())
    }

    /// Forgets the request `hash` (its work failed, or its file is gone).
    pub async fn forget_request(&self, hash: &str) -> Result<(), QueueError> {
        self.delete(self.keys.request(hash)).await
    }
}
