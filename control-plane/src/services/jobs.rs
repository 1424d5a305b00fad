//! Reading jobs: PostgreSQL's record with Redis's live state laid over it, and only the jobs
//! the caller may see.
use voxfleet_jobs::{JobId, JobSnapshot, QueueName};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};

/// Replaces records with their live Redis state where Redis has a newer version.
pub async fn overlay(st: &AppState, mut rows: Vec<JobSnapshot>) -> Vec<JobSnapshot> {
    let idx: Vec<usize> = (0..rows.len())
        .filter(|&i| !rows[i].status.is_terminal())
        .collect();
    if idx.is_empty() {
        return rows;
    }
    let items: Vec<(QueueName, JobId)> = idx
        .iter()
        .map(|&i| (rows[i].queue.clone(), rows[i].id))
        .collect();
    match st.queue.get_many(&items).await {
        Ok(live) => {
            for (&i, l) in idx.iter().zip(live) {
                if let Some(l) = l
                    && l.version >= rows[i].version
                {
                    rows[i] = l;
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "live job state unavailable; answering from PostgreSQL")
        }
    }
    rows
}

/// Loads a job the caller may see (404 otherwise, so ids of others' jobs are not revealed).
pub async fn load(st: &AppState, auth: &Auth, id: &str) -> ApiResult<JobSnapshot> {
    let id: JobId = id.parse().map_err(|_| ApiError::not_found("job"))?;
    let row = voxfleet_store::jobs::get_job(&st.pool, id)
        .await?
        .filter(|j| auth.may_access(j.owner))
        .ok_or_else(|| ApiError::not_found("job"))?;
    overlay(st, vec![row])
        .await
        .pop()
        .ok_or_else(|| ApiError::not_found("job"))
}
