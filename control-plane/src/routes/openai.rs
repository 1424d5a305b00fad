//! `POST /v1/audio/transcriptions`, compatible with OpenAI's API as its official SDKs call it:
//! the upload becomes a file record and a high-priority `transcribe` job, the request waits
//! for the job (with a timeout) and answers in OpenAI's response shapes and error format.
//! The file and its transcript stay, like any upload, under the caller's token.
//!
//! Diarization as OpenAI's API does it: `response_format=diarized_json` (or the model
//! `gpt-4o-transcribe-diarize`) also runs a `diarize` job and answers segments with a
//! `speaker`; `known_speaker_names[]` with `known_speaker_references[]` (short clips as data
//! URLs, stored as files of the caller) name the speakers whose voiceprints match; the others
//! are labelled `A`, `B`, … as OpenAI labels them.
//!
//! `form` reads the multipart form with every part bounded and checks every field before
//! anything is stored: a 400 leaves no file behind.
mod dedupe;
mod error;
mod form;
pub mod models;
mod stream;

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequest, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;
use voxfleet_jobs::{DiarizeInput, JobKind, JobSnapshot, JobStatus, KnownSpeaker, Priority, Task};
use voxfleet_store::files::SegmentRow;
use voxfleet_store::speakers::TurnRow;

use crate::AppState;
use crate::auth::Auth;
use crate::error::clip;
use crate::error::{ApiError, Code};
use crate::services::submit::budget_warning;
use crate::transcript;
use crate::upload;
pub use error::OpenAiError;
use error::job_failed;
use models::model;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
    DiarizedJson,
}

impl ResponseFormat {
    fn parse(s: &str) -> Result<Self, OpenAiError> {
        Ok(match s {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            "diarized_json" => Self::DiarizedJson,
            other => {
                return Err(OpenAiError::invalid(
                    "response_format",
                    format!(
                        "unsupported response_format `{}`: use json, text, srt, vtt, verbose_json or diarized_json",
                        clip(other)
                    ),
                ));
            }
        })
    }
}

/// Waits for the job to end: events from the pub/sub listener, with a poll every 2 s in case
/// an event was missed (a lagging receiver, a control-plane restart of the listener).
async fn wait_for(
    st: &AppState,
    job: &JobSnapshot,
    mut events: tokio::sync::broadcast::Receiver<voxfleet_jobs::JobEvent>,
    timeout: Duration,
) -> Result<Option<JobSnapshot>, ApiError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(j) = current(st, job).await?
            && j.status.is_terminal()
        {
            return Ok(Some(j));
        }
        let poll = Instant::now() + Duration::from_secs(2);
        loop {
            let until = poll.min(deadline);
            match tokio::time::timeout_at(until.into(), events.recv()).await {
                Ok(Ok(ev)) if ev.id == job.id && ev.status.is_terminal() => break,
                Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => continue,
                Ok(Err(RecvError::Closed)) => {
                    tokio::time::sleep_until(until.into()).await;
                    break;
                }
                Err(_) => break,
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

async fn current(st: &AppState, job: &JobSnapshot) -> Result<Option<JobSnapshot>, ApiError> {
    if let Some(j) = st.queue.get(&job.queue, &job.id).await? {
        return Ok(Some(j));
    }
    Ok(voxfleet_store::jobs::get_job(&st.pool, job.id).await?)
}

/// Transcribe audio (OpenAI-compatible).
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content_type = "multipart/form-data", description = "file, model, language, prompt, response_format, temperature, timestamp_granularities[] (segment, word), stream, known_speaker_names[], known_speaker_references[]"),
    responses((status = 200, description = "json / text / srt / vtt / verbose_json / diarized_json, as OpenAI's API answers; with stream=true, text/event-stream of transcript.text.delta events and a transcript.text.done"),
              (status = 400, description = "OpenAI-format error"), (status = 504, description = "still running at the timeout")),
    security(("bearer" = [])))]
pub async fn transcriptions(
    State(st): State<AppState>,
    auth: Result<Auth, ApiError>,
    req: axum::extract::Request,
) -> Result<Response, OpenAiError> {
    audio(st, auth, req, Task::Transcribe).await
}

/// Translate audio into English text (OpenAI-compatible): Whisper's translate task on a
/// multilingual model (`whisper-1` runs on `base`).
#[utoipa::path(post, path = "/v1/audio/translations", tag = "openai",
    request_body(content_type = "multipart/form-data", description = "file, model, prompt, response_format, temperature"),
    responses((status = 200, description = "json / text / srt / vtt / verbose_json, as OpenAI's API answers"),
              (status = 400, description = "OpenAI-format error"), (status = 504, description = "still running at the timeout")),
    security(("bearer" = [])))]
pub async fn translations(
    State(st): State<AppState>,
    auth: Result<Auth, ApiError>,
    req: axum::extract::Request,
) -> Result<Response, OpenAiError> {
    audio(st, auth, req, Task::Translate).await
}

async fn audio(
    st: AppState,
    auth: Result<Auth, ApiError>,
    req: axum::extract::Request,
    task: Task,
) -> Result<Response, OpenAiError> {
    let auth = auth?;
    let mp = Multipart::from_request(req, &st).await.map_err(|e| {
        OpenAiError::invalid(
            "file",
            format!("expected a multipart/form-data body: {}", e.body_text()),
        )
        .with_code("invalid_body")
    })?;
    // Every field is checked here; nothing is stored before.
    let r = form::read(&st, mp, task).await?;
    let (format, diarize, words, stream) = (r.format, r.diarize(), r.words, r.stream);
    // Subscribed before any job is queued (or looked at), so no event falls in between.
    let events = st.events.subscribe();
    let request = dedupe::request_hash(auth.user_id, &r);
    let earlier = match &request {
        Some(hash) => dedupe::earlier(&st, hash).await,
        None => None,
    };
    let (file_id, submitted) = match earlier {
        Some(e) => {
            tracing::info!(file.id = %e.file_id, "the same request again: answering with its earlier work");
            metrics::counter!("voxfleet_openai_repeated_requests_total").increment(1);
            (e.file_id, e.jobs)
        }
        None => {
            let (file_id, submitted) = submit(&st, &auth, r).await?;
            if let Some(hash) = &request {
                dedupe::remember(&st, hash, file_id, &submitted).await;
            }
            (file_id, submitted)
        }
    };
    let warning = budget_warning(&st, auth.user_id, submitted.iter().map(|j| j.kind)).await;
    if stream && let Some(job) = submitted.first() {
        return Ok((warning, stream::respond(st, job.clone(), file_id, events)).into_response());
    }
    let deadline = Instant::now() + st.limits.openai_wait;
    for job in &submitted {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(done) = wait_for(&st, job, events.resubscribe(), left).await? else {
            return Err(timed_out(&st, job, file_id));
        };
        if done.status != JobStatus::Succeeded {
            return Err(job_failed(done));
        }
    }
    let stored = stored_transcript(&st, file_id, diarize).await?;
    let speakers = if diarize {
        openai_speaker_labels(&stored.segments, &stored.turns)
    } else {
        Vec::new()
    };
    let shape = Shape {
        format,
        task,
        words,
    };
    let mut answer = respond(
        shape,
        &stored.segments,
        &speakers,
        &stored.language,
        stored.duration,
    );
    answer.headers_mut().extend(warning);
    Ok(answer)
}

/// Stores the upload (and any known speakers' clips) and queues its jobs: the file's id and
/// the jobs, the transcription first.
async fn submit(
    st: &AppState,
    auth: &Auth,
    r: form::Form,
) -> Result<(Uuid, Vec<JobSnapshot>), OpenAiError> {
    let file_id = upload::store(st, auth.user_id, &r.file, None).await?;
    let mut stored = vec![file_id];
    let input = r.transcribe_input(file_id);
    let mut jobs = vec![(JobKind::Transcribe, to_value(&input)?)];
    if r.diarize() {
        let mut known_speakers = Vec::new();
        for (i, k) in r.known.iter().enumerate() {
            let spooled = upload::spool_bytes(
                st,
                &k.clip,
                format!("known-speaker-{i}"),
                Some(k.content_type.clone()),
            )
            .await?;
            let id = upload::store(st, auth.user_id, &spooled, None).await?;
            stored.push(id);
            known_speakers.push(KnownSpeaker {
                name: k.name.clone(),
                file_id: id,
            });
        }
        let d = DiarizeInput {
            file_id,
            num_speakers: None,
            min_speakers: None,
            max_speakers: None,
            profiles: None,
            known_speakers,
        };
        jobs.push((JobKind::Diarize, to_value(&d)?));
    }
    drop(r);
    // The payloads passed the same checks in `form::read`; what is left is the queue's.
    match upload::enqueue(st, auth, jobs, Priority::High).await {
        Ok(submitted) => Ok((file_id, submitted)),
        Err(e) => {
            // A refused submission (a spent budget, say) leaves no file behind.
            for id in stored {
                upload::discard(st, id).await;
            }
            Err(e.into())
        }
    }
}

/// A finished transcript as the answers show it.
struct Stored {
    /// Cut where the speaker changes when diarized.
    segments: Vec<SegmentRow>,
    turns: Vec<TurnRow>,
    language: String,
    duration: f64,
}

async fn stored_transcript(
    st: &AppState,
    file_id: Uuid,
    diarize: bool,
) -> Result<Stored, OpenAiError> {
    let file = voxfleet_store::files::get_file(&st.pool, file_id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let turns = if diarize {
        voxfleet_store::speakers::turns(&st.pool, file_id).await?
    } else {
        Vec::new()
    };
    let segments = transcript::split_at_turns(
        voxfleet_store::files::segments(&st.pool, file_id).await?,
        &turns,
    );
    let duration = file
        .file
        .duration_s
        .unwrap_or_else(|| segments.last().map_or(0.0, |s| s.end_s));
    Ok(Stored {
        segments,
        turns,
        language: file.language.clone().unwrap_or_default(),
        duration,
    })
}

/// A job still running when the request's wait is over (it goes on).
fn timed_out(st: &AppState, job: &JobSnapshot, file_id: Uuid) -> OpenAiError {
    OpenAiError {
        status: StatusCode::GATEWAY_TIMEOUT,
        kind: "server_error",
        message: format!(
            "the {} is still running after {} s; it continues as job {} (file {})",
            job.kind,
            st.limits.openai_wait.as_secs(),
            job.id,
            file_id
        ),
        param: None,
        code: Some("timeout".into()),
    }
}

/// How to answer: the format, the task and whether words were asked for.
#[derive(Debug, Clone, Copy)]
struct Shape {
    format: ResponseFormat,
    task: Task,
    words: bool,
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, OpenAiError> {
    serde_json::to_value(v).map_err(|_| ApiError::new(Code::Internal, "internal error").into())
}

/// `data:[<type>][;base64],<data>` → (content type, bytes). Reference clips are short: at most
/// 10 MiB each.
fn data_url(url: &str) -> Result<(String, Vec<u8>), OpenAiError> {
    use base64::Engine;
    let bad = |m: &str| OpenAiError::invalid("known_speaker_references", m.to_owned());
    let rest = url.trim().strip_prefix("data:").ok_or_else(|| {
        bad("each known speaker reference must be a data URL (data:audio/wav;base64,…)")
    })?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| bad("a data URL needs a comma before its data"))?;
    let Some(ctype) = meta.strip_suffix(";base64") else {
        return Err(bad("known speaker references must be base64 data URLs"));
    };
    if data.len() > form::MAX_REFERENCE_URL {
        return Err(bad("a known speaker reference is larger than 10 MiB"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| {
            bad(&format!(
                "a known speaker reference is not valid base64: {e}"
            ))
        })?;
    if bytes.is_empty() {
        return Err(bad("a known speaker reference is empty"));
    }
    let ctype = if ctype.is_empty() {
        "application/octet-stream"
    } else {
        ctype
    };
    Ok((ctype.to_owned(), bytes))
}

/// Each segment's speaker as OpenAI labels it: a known speaker's name, else `A`, `B`, … in
/// order of first appearance in the transcript (`AA`, `AB`, … past 26).
fn openai_speaker_labels(segments: &[SegmentRow], turns: &[TurnRow]) -> Vec<String> {
    let mut letters: Vec<Uuid> = Vec::new();
    transcript::segment_turns(segments, turns)
        .into_iter()
        .map(|who| match who {
            None => "unknown".to_owned(),
            Some(TurnRow {
                name: Some(name), ..
            }) => name.clone(),
            Some(t) => {
                let i = letters
                    .iter()
                    .position(|&l| l == t.speaker_id)
                    .unwrap_or_else(|| {
                        letters.push(t.speaker_id);
                        letters.len() - 1
                    });
                letter_label(i)
            }
        })
        .collect()
}

/// 0 → `A`, 25 → `Z`, 26 → `AA`, …
fn letter_label(mut i: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn respond(
    shape: Shape,
    segments: &[SegmentRow],
    speakers: &[String],
    language: &str,
    duration: f64,
) -> Response {
    let text_body =
        |body: String, ctype: &'static str| ([(header::CONTENT_TYPE, ctype)], body).into_response();
    let usage = json!({"type": "duration", "seconds": duration.ceil() as u64});
    let task = match shape.task {
        Task::Transcribe => "transcribe",
        Task::Translate => "translate",
    };
    match shape.format {
        ResponseFormat::Json => {
            Json(json!({"text": transcript::text(segments), "usage": usage})).into_response()
        }
        ResponseFormat::Text => text_body(
            format!("{}\n", transcript::text(segments)),
            "text/plain; charset=utf-8",
        ),
        ResponseFormat::Srt => {
            text_body(transcript::srt(segments, &[]), "text/plain; charset=utf-8")
        }
        ResponseFormat::Vtt => {
            text_body(transcript::vtt(segments, &[]), "text/plain; charset=utf-8")
        }
        ResponseFormat::DiarizedJson => {
            let segs: Vec<Value> = segments
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "type": "transcript.text.segment", "id": format!("seg_{}", s.idx),
                        "start": s.start_s, "end": s.end_s, "text": s.text.trim(),
                        "speaker": speakers.get(i).map_or("unknown", String::as_str),
                    })
                })
                .collect();
            Json(json!({
                "task": task,
                "duration": duration,
                "text": transcript::text(segments),
                "segments": segs,
                "usage": usage,
            }))
            .into_response()
        }
        ResponseFormat::VerboseJson => {
            let segs: Vec<Value> = segments
                .iter()
                .map(|s| {
                    json!({
                        "id": s.idx, "seek": 0, "start": s.start_s, "end": s.end_s,
                        "text": s.text, "tokens": [], "temperature": s.temperature,
                        "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
                        "no_speech_prob": s.no_speech_prob,
                    })
                })
                .collect();
            let mut body = json!({
                "task": task,
                "language": language_name(language),
                "duration": duration,
                "text": transcript::text(segments),
                "segments": segs,
                "usage": usage,
            });
            if shape.words {
                let words: Vec<Value> = segments
                    .iter()
                    .flat_map(|s| s.words.iter().flatten())
                    .map(|w| json!({"word": w.word.trim(), "start": w.start, "end": w.end}))
                    .collect();
                body["words"] = Value::Array(words);
            }
            Json(body).into_response()
        }
    }
}

/// Whether Whisper knows the language (`en`, `haw`, …).
fn is_language(code: &str) -> bool {
    LANGUAGES
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .any(|(c, _)| c == code)
}

/// OpenAI's verbose_json names the language in English words, as Whisper's table does.
fn language_name(code: &str) -> String {
    LANGUAGES
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_owned(), |(_, n)| n.to_owned())
}

/// Whisper's 99 languages (code:name), as in its tokenizer.
const LANGUAGES: &str = "en:english,zh:chinese,de:german,es:spanish,ru:russian,ko:korean,\
fr:french,ja:japanese,pt:portuguese,tr:turkish,pl:polish,ca:catalan,nl:dutch,ar:arabic,\
sv:swedish,it:italian,id:indonesian,hi:hindi,fi:finnish,vi:vietnamese,he:hebrew,uk:ukrainian,\
el:greek,ms:malay,cs:czech,ro:romanian,da:danish,hu:hungarian,ta:tamil,no:norwegian,th:thai,\
ur:urdu,hr:croatian,bg:bulgarian,lt:lithuanian,la:latin,mi:maori,ml:malayalam,cy:welsh,\
sk:slovak,te:telugu,fa:persian,lv:latvian,bn:bengali,sr:serbian,az:azerbaijani,sl:slovenian,\
kn:kannada,et:estonian,mk:macedonian,br:breton,eu:basque,is:icelandic,hy:armenian,ne:nepali,\
mn:mongolian,bs:bosnian,kk:kazakh,sq:albanian,sw:swahili,gl:galician,mr:marathi,pa:punjabi,\
si:sinhala,km:khmer,sn:shona,yo:yoruba,so:somali,af:afrikaans,oc:occitan,ka:georgian,\
be:belarusian,tg:tajik,sd:sindhi,gu:gujarati,am:amharic,yi:yiddish,lo:lao,uz:uzbek,\
fo:faroese,ht:haitian creole,ps:pashto,tk:turkmen,nn:nynorsk,mt:maltese,sa:sanskrit,\
lb:luxembourgish,my:myanmar,bo:tibetan,tl:tagalog,mg:malagasy,as:assamese,tt:tatar,\
haw:hawaiian,ln:lingala,ha:hausa,ba:bashkir,jw:javanese,su:sundanese";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_data_urls() {
        let labels: Vec<String> = [0, 1, 25, 26, 27, 701, 702].map(letter_label).to_vec();
        assert_eq!(labels, ["A", "B", "Z", "AA", "AB", "ZZ", "AAA"]);
        let (t, b) = data_url("data:audio/wav;base64,UklGRg==").unwrap();
        assert_eq!(
            (t.as_str(), b.as_slice()),
            ("audio/wav", b"RIFF".as_slice())
        );
        for bad in [
            "http://x/a.wav",
            "data:audio/wav,RIFF",
            "data:audio/wav;base64,@@",
            "data:;base64,",
        ] {
            assert!(data_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn languages_and_models() {
        assert_eq!(LANGUAGES.split(',').count(), 99);
        assert_eq!(language_name("en"), "english");
        assert_eq!(language_name("haw"), "hawaiian");
        assert_eq!(language_name("xx"), "xx");
        assert!(is_language("haw") && !is_language("zz") && !is_language("zzzz"));
        assert_eq!(model("whisper-1").ok(), Some(None));
        assert_eq!(model("base").ok(), Some(Some("base".into())));
        assert_eq!(
            model("gpt-5").err().and_then(|e| e.code),
            Some("model_not_found".into())
        );
    }
}
