//! `stream=true`: the transcription as server-sent events in OpenAI's shapes. A
//! `transcript.text.delta` carries each window's text as the worker finishes it (the worker
//! appends it to the job's partial transcript in Redis and publishes a `text` event, which
//! wakes this stream), then one `transcript.text.done` carries the whole text once the
//! transcript is stored. A failure or the timeout ends the stream with an `error` event in
//! OpenAI's error format. Keep-alive comments hold the connection open through long windows.
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;
use voxfleet_jobs::{JobEvent, JobSnapshot, JobStatus};

use super::{OpenAiError, current, job_failed, stored_transcript};
use crate::AppState;

fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

fn delta(text: &str) -> Event {
    data(&json!({"type": "transcript.text.delta", "delta": text}))
}

fn error(e: OpenAiError) -> Event {
    let mut body = e.body();
    body["type"] = json!("error");
    data(&body)
}

/// The events of the transcription `job` of `file_id`; `events` was subscribed before the job
/// was queued, so none is missed.
pub(super) fn respond(
    st: AppState,
    job: JobSnapshot,
    file_id: Uuid,
    mut events: Receiver<JobEvent>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let deadline = Instant::now() + st.limits.openai_wait;
    let stop = st.shutdown.clone();
    let stream = async_stream::stream! {
        // The text sent so far (a prefix of the partial transcript).
        let mut sent = String::new();
        loop {
            match st.queue.partial_text(&job.queue, &job.id, sent.len()).await {
                Ok(t) if !t.is_empty() => {
                    yield Ok(delta(&t));
                    sent.push_str(&t);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(job.id = %job.id, error = %e, "reading the partial transcript failed"),
            }
            let now = match current(&st, &job).await {
                Ok(j) => j,
                Err(e) => {
                    yield Ok(error(e.into()));
                    break;
                }
            };
            if let Some(j) = now.filter(|j| j.status.is_terminal()) {
                if j.status != JobStatus::Succeeded {
                    yield Ok(error(job_failed(j)));
                    break;
                }
                match stored_transcript(&st, file_id, false).await {
                    Ok(stored) => {
                        let text = crate::transcript::text(&stored.segments);
                        // What the stream has not carried yet (all of it, when no window's
                        // text was caught: a worker without partial text).
                        if let Some(rest) = text.strip_prefix(sent.as_str()).filter(|r| !r.is_empty()) {
                            yield Ok(delta(rest));
                        }
                        yield Ok(data(&json!({
                            "type": "transcript.text.done",
                            "text": text,
                            "usage": {"type": "duration", "seconds": stored.duration.ceil() as u64},
                        })));
                    }
                    Err(e) => yield Ok(error(e)),
                }
                break;
            }
            if Instant::now() >= deadline {
                yield Ok(error(super::timed_out(&st, &job, file_id)));
                break;
            }
            // Until this job's next event, or 2 s (an event can be missed: a lagging
            // receiver, a restarted listener).
            let until = (Instant::now() + Duration::from_secs(2)).min(deadline);
            loop {
                let ev = tokio::select! {
                    r = tokio::time::timeout_at(until.into(), events.recv()) => r,
                    _ = stop.cancelled() => return,
                };
                match ev {
                    Ok(Ok(ev)) if ev.id == job.id => break,
                    Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => continue,
                    Ok(Err(RecvError::Closed)) => {
                        tokio::time::sleep_until(until.into()).await;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::default())
}
