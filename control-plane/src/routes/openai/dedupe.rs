//! Retries that don't double the work. OpenAI's SDKs send a request again when it times out or
//! its connection breaks, with no idempotency key; a long recording would then be stored and
//! transcribed once per try. A request is known by a hash of its owner, its audio (sha256)
//! and every parameter that changes the jobs; while its jobs are queued or running, and for
//! [`KEPT_AFTER`] past the request's own wait, the same request again is answered from that
//! work (the same file, the same jobs) instead of starting it over.
//!
//! Not deduplicated: requests with known speakers (their clips would need hashing too), and
//! work that failed or was cancelled (a repeat then starts afresh). Two identical requests
//! racing in the same instant may both run: the first to finish its upload keeps the record.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use voxfleet_jobs::{JobSnapshot, JobStatus};

use super::current;
use super::form::Form;
use crate::AppState;

/// How long a request's work is offered to its repeats after the request's own wait ends.
const KEPT_AFTER: Duration = Duration::from_secs(600);

/// What a request started.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Earlier {
    pub file_id: Uuid,
    pub jobs: Vec<JobSnapshot>,
}

/// The request's identity: `None` when it is not deduplicated (known speakers).
pub(super) fn request_hash(owner: Uuid, form: &Form) -> Option<String> {
    if !form.known.is_empty() {
        return None;
    }
    // The jobs' parameters (the file id aside) and whether it is diarized; the response
    // format is not among them: the same work answers every format.
    let params = json!({
        "transcribe": form.transcribe_input(Uuid::nil()),
        "diarize": form.diarize(),
    });
    let mut h = Sha256::new();
    h.update(owner.as_bytes());
    h.update(form.file.sha256.as_bytes());
    h.update(params.to_string().as_bytes());
    Some(hex::encode(h.finalize()))
}

/// The earlier work of the same request, when it is still usable: every job known and none
/// failed or cancelled, the file still there. A record that is not usable is forgotten.
pub(super) async fn earlier(st: &AppState, hash: &str) -> Option<Earlier> {
    let raw = match st.queue.recall_request(hash).await {
        Ok(raw) => raw?,
        Err(e) => {
            tracing::warn!(error = %e, "looking up an earlier identical request failed");
            return None;
        }
    };
    let earlier: Earlier = serde_json::from_str(&raw).ok()?;
    if usable(st, &earlier).await {
        return Some(earlier);
    }
    if let Err(e) = st.queue.forget_request(hash).await {
        tracing::debug!(error = %e, "forgetting a request failed");
    }
    None
}

async fn usable(st: &AppState, earlier: &Earlier) -> bool {
    for job in &earlier.jobs {
        match current(st, job).await {
            Ok(Some(j)) if !j.status.is_terminal() || j.status == JobStatus::Succeeded => {}
            _ => return false,
        }
    }
    matches!(
        voxfleet_store::files::get_file(&st.pool, earlier.file_id).await,
        Ok(Some(_))
    )
}

/// Records what the request `hash` started.
pub(super) async fn remember(st: &AppState, hash: &str, file_id: Uuid, jobs: &[JobSnapshot]) {
    let earlier = Earlier {
        file_id,
        jobs: jobs.to_vec(),
    };
    let Ok(value) = serde_json::to_string(&earlier) else {
        return;
    };
    let ttl = st.limits.openai_wait + KEPT_AFTER;
    if let Err(e) = st.queue.remember_request(hash, &value, ttl).await {
        tracing::warn!(error = %e, "recording a request for its repeats failed");
    }
}
