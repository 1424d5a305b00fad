//! `POST /v1/audio/transcriptions`, compatible with OpenAI's API as its official SDKs call it:
//! the upload becomes a file record and a high-priority `transcribe` job, the request waits
//! for the job (with a timeout) and answers in OpenAI's response shapes and error format.
//! The file and its transcript stay, like any upload, under the caller's token.
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use voxfleet_jobs::{JobSnapshot, JobStatus, Priority, TranscribeInput};
use voxfleet_store::files::SegmentRow;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, Code};
use crate::routes::files::small_text;
use crate::transcript;
use crate::upload;

/// An error in OpenAI's format: `{"error":{"message","type","param","code"}}`.
pub struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<&'static str>,
    code: Option<String>,
}

impl OpenAiError {
    fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: Some(param),
            code: None,
        }
    }

    fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let status = e.code.status();
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        Self {
            status,
            kind,
            message: e.message,
            param: None,
            code: Some(e.code.as_str().to_owned()),
        }
    }
}

impl From<voxfleet_store::StoreError> for OpenAiError {
    fn from(e: voxfleet_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind,
                                    "param": self.param, "code": self.code}});
        (self.status, Json(body)).into_response()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl ResponseFormat {
    fn parse(s: &str) -> Result<Self, OpenAiError> {
        Ok(match s {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            other => {
                return Err(OpenAiError::invalid(
                    "response_format",
                    format!(
                        "unsupported response_format `{other}`: use json, text, srt, vtt or verbose_json"
                    ),
                ));
            }
        })
    }
}

/// The request's parts, checked.
struct Request {
    file: Option<upload::Spooled>,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    temperature: Option<f32>,
    format: ResponseFormat,
}

/// OpenAI model names map to the worker's default model; voxfleet's own names pick one.
fn model(name: &str) -> Result<Option<String>, OpenAiError> {
    match name {
        "whisper-1" | "gpt-4o-transcribe" | "gpt-4o-mini-transcribe" | "default" => Ok(None),
        "tiny.en" | "whisper-tiny.en" => Ok(Some("tiny.en".into())),
        "base" | "whisper-base" => Ok(Some("base".into())),
        other => Err(OpenAiError::invalid(
            "model",
            format!(
                "model `{other}` does not exist here; use whisper-1 (the default), tiny.en or base"
            ),
        )
        .with_code("model_not_found")),
    }
}

async fn read_request(st: &AppState, mut mp: Multipart) -> Result<Request, OpenAiError> {
    let max = st.limits.max_upload_bytes;
    let mut r = Request {
        file: None,
        model: None,
        language: None,
        prompt: None,
        temperature: None,
        format: ResponseFormat::Json,
    };
    let mut saw_model = false;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| OpenAiError::from(upload::multipart_error(e, max)))?
    {
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            r.file = Some(upload::spool_field(st, field).await?);
            continue;
        }
        let v = small_text(field).await?;
        match name.as_str() {
            "model" => {
                saw_model = true;
                r.model = model(v.trim())?;
            }
            "language" if !v.is_empty() => r.language = Some(v.trim().to_ascii_lowercase()),
            "prompt" if !v.is_empty() => r.prompt = Some(v),
            "response_format" => r.format = ResponseFormat::parse(v.trim())?,
            "temperature" => {
                let t: f32 = v.trim().parse().map_err(|_| {
                    OpenAiError::invalid("temperature", "temperature must be a number")
                })?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(OpenAiError::invalid(
                        "temperature",
                        "temperature must be between 0 and 1",
                    ));
                }
                // OpenAI's 0 means "automatic": voxfleet's fallback schedule starting at 0.
                r.temperature = (t > 0.0).then_some(t);
            }
            "timestamp_granularities[]" | "timestamp_granularities" => match v.trim() {
                "segment" => {}
                "word" => {
                    return Err(OpenAiError::invalid(
                        "timestamp_granularities",
                        "word timestamps are not supported by this server; use segment",
                    ));
                }
                other => {
                    return Err(OpenAiError::invalid(
                        "timestamp_granularities",
                        format!("unknown granularity `{other}`"),
                    ));
                }
            },
            "stream" if v.trim() == "true" => {
                return Err(OpenAiError::invalid(
                    "stream",
                    "streaming responses are not supported by this server",
                ));
            }
            // Accepted for compatibility; they do not change the result here.
            "stream" | "chunking_strategy" | "include[]" | "include" | "language" | "prompt" => {}
            other => tracing::debug!(field = other, "ignoring an unknown transcription field"),
        }
    }
    if !saw_model {
        return Err(OpenAiError::invalid(
            "model",
            "you must provide a model parameter",
        ));
    }
    Ok(r)
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
    request_body(content_type = "multipart/form-data", description = "file, model, language, prompt, response_format, temperature, timestamp_granularities[]"),
    responses((status = 200, description = "json / text / srt / vtt / verbose_json, as OpenAI's API answers"),
              (status = 400, description = "OpenAI-format error"), (status = 504, description = "still running at the timeout")),
    security(("bearer" = [])))]
pub async fn transcriptions(
    State(st): State<AppState>,
    auth: Auth,
    mp: Multipart,
) -> Result<Response, OpenAiError> {
    let r = read_request(&st, mp).await?;
    let sp = r
        .file
        .ok_or_else(|| OpenAiError::invalid("file", "you must provide a file"))?;
    let file_id = upload::store(&st, auth.token_id, &sp, None).await?;
    drop(sp);
    let input = TranscribeInput {
        file_id,
        model: r.model,
        language: r.language,
        beam_size: None,
        temperature: r.temperature,
        prompt: r.prompt,
        vad: None,
    };
    let events = st.events.subscribe();
    let job = upload::enqueue_transcribe(&st, auth.token_id, input, Priority::High)
        .await
        .map_err(|e| match e.code {
            Code::InvalidInput => OpenAiError::invalid("language", e.message),
            _ => e.into(),
        })?;
    let Some(done) = wait_for(&st, &job, events, st.limits.openai_wait).await? else {
        return Err(OpenAiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            kind: "server_error",
            message: format!(
                "the transcription is still running after {} s; it continues as job {} (file {})",
                st.limits.openai_wait.as_secs(),
                job.id,
                file_id
            ),
            param: None,
            code: Some("timeout".into()),
        });
    };
    if done.status != JobStatus::Succeeded {
        let code = done.error_code.unwrap_or_else(|| done.status.to_string());
        let message = done
            .error_message
            .unwrap_or_else(|| format!("the transcription ended {}", done.status));
        let client_fault = matches!(
            code.as_str(),
            "empty_audio"
                | "unsupported_format"
                | "corrupt_audio"
                | "too_long"
                | "unsupported_language"
        );
        return Err(OpenAiError {
            status: if client_fault {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            kind: if client_fault {
                "invalid_request_error"
            } else {
                "server_error"
            },
            message,
            param: client_fault.then_some("file"),
            code: Some(code),
        });
    }
    let file = voxfleet_store::files::get_file(&st.pool, file_id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let segments = voxfleet_store::files::segments(&st.pool, file_id).await?;
    let duration = file
        .file
        .duration_s
        .unwrap_or_else(|| segments.last().map_or(0.0, |s| s.end_s));
    let language = file.language.clone().unwrap_or_default();
    Ok(respond(r.format, &segments, &language, duration))
}

fn respond(
    format: ResponseFormat,
    segments: &[SegmentRow],
    language: &str,
    duration: f64,
) -> Response {
    let text_body =
        |body: String, ctype: &'static str| ([(header::CONTENT_TYPE, ctype)], body).into_response();
    let usage = json!({"type": "duration", "seconds": duration.ceil() as u64});
    match format {
        ResponseFormat::Json => {
            Json(json!({"text": transcript::text(segments), "usage": usage})).into_response()
        }
        ResponseFormat::Text => text_body(
            format!("{}\n", transcript::text(segments)),
            "text/plain; charset=utf-8",
        ),
        ResponseFormat::Srt => text_body(transcript::srt(segments), "text/plain; charset=utf-8"),
        ResponseFormat::Vtt => text_body(transcript::vtt(segments), "text/plain; charset=utf-8"),
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
            Json(json!({
                "task": "transcribe",
                "language": language_name(language),
                "duration": duration,
                "text": transcript::text(segments),
                "segments": segs,
                "usage": usage,
            }))
            .into_response()
        }
    }
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
    fn languages_and_models() {
        assert_eq!(LANGUAGES.split(',').count(), 99);
        assert_eq!(language_name("en"), "english");
        assert_eq!(language_name("haw"), "hawaiian");
        assert_eq!(language_name("xx"), "xx");
        assert_eq!(model("whisper-1").ok(), Some(None));
        assert_eq!(model("base").ok(), Some(Some("base".into())));
        assert_eq!(
            model("gpt-5").err().and_then(|e| e.code),
            Some("model_not_found".into())
        );
    }
}
