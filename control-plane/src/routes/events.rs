//! Server-sent events: a job's status and progress as they happen.
use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;
use voxfleet_jobs::{JobEvent, JobSnapshot, JobStatus};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::services::jobs::load;
use crate::views::{ProgressView, progress_view};

/// The `data` of an SSE event (`event: status`, `event: progress`, or `event: text`: a
/// transcription finished more text, readable in full from the OpenAI endpoint's stream).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    pub status: JobStatus,
    pub kind: String,
    pub queue: String,
    pub attempts: u32,
    pub progress: Option<ProgressView>,
    pub error_code: Option<String>,
    /// RFC 3339 time of the event.
    pub at: String,
}

fn to_sse(ev: &JobEvent) -> Event {
    let started = ev
        .started_at
        .and_then(chrono::DateTime::from_timestamp_millis);
    let view = EventView {
        id: ev.id.to_string(),
        status: ev.status,
        kind: ev.kind.clone(),
        queue: ev.queue.clone(),
        attempts: ev.attempts,
        progress: progress_view(
            ev.progress_done,
            ev.progress_total,
            started,
            ev.status == JobStatus::Running,
        ),
        error_code: ev.error_code.clone(),
        at: chrono::DateTime::from_timestamp_millis(ev.at)
            .unwrap_or_default()
            .to_rfc3339(),
    };
    Event::default()
        .event(ev.event_type.clone())
        .id(ev.at.to_string())
        .json_data(view)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

fn snapshot_event(j: &JobSnapshot) -> JobEvent {
    JobEvent {
        id: j.id,
        event_type: "status".into(),
        status: j.status,
        kind: j.kind.as_str().into(),
        queue: j.queue.to_string(),
        attempts: j.attempts,
        progress_done: j.progress_done,
        progress_total: j.progress_total,
        error_code: j.error_code.clone(),
        owner: j.owner,
        started_at: j.started_at.map(|t| t.timestamp_millis()),
        at: chrono::Utc::now().timestamp_millis(),
    }
}

/// Stream one job's events: its current state first, then every change; the stream ends
/// after a terminal status.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream of EventView", content_type = "text/event-stream", body = EventView),
              (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn job_events(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // subscribe before reading the state, so no change falls between the two
    let mut rx = st.events.subscribe();
    let current = load(&st, &auth, &id).await?;
    let job_id = current.id;
    let stop = st.shutdown.clone();
    let st2 = st.clone();
    let stream = async_stream::stream! {
        yield Ok(to_sse(&snapshot_event(&current)));
        if current.status.is_terminal() {
            return;
        }
        loop {
            let ev = tokio::select! {
                r = rx.recv() => r,
                _ = stop.cancelled() => break,
            };
            match ev {
                Ok(ev) if ev.id == job_id => {
                    yield Ok(to_sse(&ev));
                    if ev.event_type == "status" && ev.status.is_terminal() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    // fell behind: resend the current state
                    if let Ok(j) = load(&st2, &auth, &id).await {
                        yield Ok(to_sse(&snapshot_event(&j)));
                        if j.status.is_terminal() { break; }
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Stream every job event the caller may see (users: their own jobs; admins: all).
#[utoipa::path(get, path = "/v1/events", tag = "jobs",
    responses((status = 200, description = "text/event-stream of EventView", content_type = "text/event-stream", body = EventView)),
    security(("bearer" = [])))]
pub async fn all_events(
    State(st): State<AppState>,
    auth: Auth,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = st.events.subscribe();
    let stop = st.shutdown.clone();
    let stream = async_stream::stream! {
        loop {
            let ev = tokio::select! {
                r = rx.recv() => r,
                _ = stop.cancelled() => break,
            };
            match ev {
                Ok(ev) if auth.may_access(ev.owner) => yield Ok(to_sse(&ev)),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => yield Ok(Event::default().event("lagged").data(n.to_string())),
                Err(RecvError::Closed) => break,
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::default())
}
