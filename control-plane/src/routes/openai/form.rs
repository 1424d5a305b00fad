//! The multipart form of `POST /v1/audio/transcriptions`: every part bounded as it arrives
//! (how many, how large), and every field checked before anything is stored, each error
//! naming its field in `param`.
use std::collections::{BTreeSet, HashMap};

use axum::extract::Multipart;
use axum::extract::multipart::Field;
use serde_json::Value;
use uuid::Uuid;
use voxfleet_jobs::{DiarizeInput, JobKind, KnownSpeaker, Task, TranscribeInput};

use super::{OpenAiError, ResponseFormat, is_language, model};
use crate::AppState;
use crate::error::clip;
use crate::error::{ApiError, Code};
use crate::form::{SMALL_TEXT, TextBudget, text_part};
use crate::upload;

/// Most parts in one form: a file, a dozen options, four known speakers with their clips,
/// and room for the fields other clients add.
const MAX_PARTS: usize = 64;
/// Most values of a repeatable option (`timestamp_granularities[]`, `include[]`).
const MAX_REPEATS: usize = 8;
/// Longest prompt (the transcription job's limit).
const MAX_PROMPT_BYTES: usize = 2000;
/// Longest accepted data URL of a reference clip: 10 MiB of audio in base64, with its header.
pub(super) const MAX_REFERENCE_URL: usize = (10 << 20) / 3 * 4 + 4096;
/// Options that may appear once.
const SINGLE: [&str; 7] = [
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "stream",
    "chunking_strategy",
];

/// A known speaker: name, and the reference clip (content type, bytes).
pub(super) struct Known {
    pub name: String,
    pub content_type: String,
    pub clip: Vec<u8>,
}

/// The request, checked.
pub(super) struct Form {
    pub file: upload::Spooled,
    pub model: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub temperature: Option<f32>,
    pub format: ResponseFormat,
    /// The diarizing model was asked for.
    pub diarize_model: bool,
    pub known: Vec<Known>,
    /// `timestamp_granularities[]=word`.
    pub words: bool,
    /// `stream=true`: server-sent events as the text comes.
    pub stream: bool,
    pub task: Task,
}

impl Form {
    pub fn diarize(&self) -> bool {
        self.diarize_model || self.format == ResponseFormat::DiarizedJson
    }

    /// The transcription job for the stored `file_id`.
    pub fn transcribe_input(&self, file_id: Uuid) -> TranscribeInput {
        TranscribeInput {
            model: self.model.clone(),
            language: self.language.clone(),
            temperature: self.temperature,
            prompt: self.prompt.clone(),
            word_timestamps: self.words.then_some(true),
            task: (self.task == Task::Translate).then_some(Task::Translate),
            ..TranscribeInput::for_file(file_id)
        }
    }
}

/// A part's error with its field as `param`.
fn part_error(e: ApiError, param: &str) -> OpenAiError {
    OpenAiError::from(e).with_param(param)
}

/// The fields as they arrive.
#[derive(Default)]
struct Fields {
    model_given: bool,
    model: Option<String>,
    diarize_model: bool,
    language: Option<String>,
    prompt: Option<String>,
    temperature: Option<f32>,
    format: Option<ResponseFormat>,
    names: Vec<String>,
    references: Vec<String>,
    words: bool,
    stream: bool,
}

impl Fields {
    /// Checks one text field and keeps it.
    fn take(&mut self, key: &str, v: String) -> Result<(), OpenAiError> {
        let t = v.trim();
        match key {
            "model" => {
                self.model_given = true;
                self.diarize_model = t == "gpt-4o-transcribe-diarize";
                self.model = model(t)?;
            }
            "known_speaker_names" => self.names.push(v),
            "language" if !t.is_empty() => {
                let l = t.to_ascii_lowercase();
                if !is_language(&l) {
                    return Err(OpenAiError::invalid(
                        "language",
                        format!(
                            "language `{}` is not one Whisper knows: use an ISO 639-1 code such as `en`",
                            clip(&l)
                        ),
                    )
                    .with_code("unsupported_language"));
                }
                self.language = Some(l);
            }
            "prompt" if !v.is_empty() => {
                if v.len() > MAX_PROMPT_BYTES {
                    return Err(OpenAiError::invalid(
                        "prompt",
                        format!("prompt is longer than {MAX_PROMPT_BYTES} bytes"),
                    ));
                }
                if v.contains('\0') {
                    return Err(OpenAiError::invalid(
                        "prompt",
                        "prompt contains a NUL character",
                    ));
                }
                self.prompt = Some(v);
            }
            "response_format" => self.format = Some(ResponseFormat::parse(t)?),
            "temperature" => {
                let x: f32 = t.parse().map_err(|_| {
                    OpenAiError::invalid("temperature", "temperature must be a number")
                })?;
                if !(0.0..=1.0).contains(&x) {
                    return Err(OpenAiError::invalid(
                        "temperature",
                        "temperature must be between 0 and 1",
                    ));
                }
                // OpenAI's 0 means "automatic": voxfleet's fallback schedule starting at 0.
                self.temperature = (x > 0.0).then_some(x);
            }
            "timestamp_granularities" => match t {
                "segment" => {}
                "word" => self.words = true,
                other => {
                    return Err(OpenAiError::invalid(
                        "timestamp_granularities",
                        format!("unknown granularity `{}`: use word or segment", clip(other)),
                    ));
                }
            },
            "stream" => {
                self.stream = match t {
                    "true" => true,
                    "false" | "" => false,
                    _ => {
                        return Err(OpenAiError::invalid(
                            "stream",
                            "stream must be true or false",
                        ));
                    }
                }
            }
            // Accepted for compatibility; they do not change the result here.
            "chunking_strategy" | "include" | "language" | "prompt" => {}
            other => {
                tracing::debug!(
                    field = %clip(other),
                    "ignoring an unknown transcription field"
                )
            }
        }
        Ok(())
    }
}

/// Reads and checks the whole form; the file is only spooled (a temporary file, gone on
/// drop). A form past its bounds (parts, sizes) is answered at once; a field that is merely
/// wrong is answered once the form has been read (the rest drained, bounded all the same), so
/// that a client still sending its file reads the answer rather than a reset connection.
pub(super) async fn read(
    st: &AppState,
    mut mp: Multipart,
    task: Task,
) -> Result<Form, OpenAiError> {
    let max = st.limits.max_upload_bytes;
    let mut budget = TextBudget::new(st.limits.max_body_bytes);
    let (mut parts, mut counts) = (0usize, HashMap::<String, usize>::new());
    let mut file = None;
    let mut fields = Fields::default();
    let mut wrong: Option<OpenAiError> = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| OpenAiError::from(upload::multipart_error(e, max)))?
    {
        parts += 1;
        let name = field.name().unwrap_or("").to_owned();
        let key = name.strip_suffix("[]").unwrap_or(&name).to_owned();
        if parts > MAX_PARTS {
            return Err(OpenAiError::invalid(
                &key,
                format!("a form of more than {MAX_PARTS} fields"),
            ));
        }
        let n = counts.entry(key.clone()).or_default();
        *n += 1;
        let cap = match key.as_str() {
            "file" => 1,
            "known_speaker_references" | "known_speaker_names" => DiarizeInput::MAX_KNOWN_SPEAKERS,
            "timestamp_granularities" | "include" => MAX_REPEATS,
            k if SINGLE.contains(&k) => 1,
            _ => MAX_PARTS,
        };
        if *n > cap {
            let what = match key.as_str() {
                "file" => "one file per request".to_owned(),
                _ if cap == 1 => format!("`{key}` given twice"),
                _ => format!("at most {cap} `{key}` values"),
            };
            return Err(OpenAiError::invalid(&key, what));
        }
        match key.as_str() {
            // Once the answer is an error, the file is read to its end but not kept.
            "file" if wrong.is_some() => drain(st, field).await?,
            "file" => file = Some(upload::spool_field(st, field).await?),
            // A short clip as a base64 data URL (≤ 10 MiB of audio); four at most.
            "known_speaker_references" => {
                let v = text_part(field, MAX_REFERENCE_URL)
                    .await
                    .map_err(|e| part_error(e, &key))?;
                fields.references.push(v);
            }
            _ => {
                let v = budget
                    .read(field, SMALL_TEXT)
                    .await
                    .map_err(|e| part_error(e, &key))?;
                if wrong.is_none()
                    && let Err(e) = fields
                        .check_for(task, &key)
                        .and_then(|_| fields.take(&key, v))
                {
                    wrong = Some(e);
                }
            }
        }
    }
    if let Some(e) = wrong {
        return Err(e);
    }
    if !fields.model_given {
        return Err(OpenAiError::invalid(
            "model",
            "you must provide a model parameter",
        ));
    }
    let file = file.ok_or_else(|| OpenAiError::invalid("file", "you must provide a file"))?;
    let format = fields.format.unwrap_or(ResponseFormat::Json);
    if fields.words && format != ResponseFormat::VerboseJson {
        return Err(OpenAiError::invalid(
            "timestamp_granularities",
            "timestamp_granularities[]=word needs response_format=verbose_json",
        ));
    }
    if fields.stream && !matches!(format, ResponseFormat::Json | ResponseFormat::Text) {
        return Err(OpenAiError::invalid(
            "stream",
            "stream=true answers with text events: use response_format json or text",
        ));
    }
    if fields.stream && fields.diarize_model {
        return Err(OpenAiError::invalid(
            "stream",
            "streaming is not offered for diarization: leave stream out",
        ));
    }
    let mut model = fields.model;
    if task == Task::Translate {
        if format == ResponseFormat::DiarizedJson || fields.diarize_model {
            return Err(OpenAiError::invalid(
                "response_format",
                "translations are not diarized: use json, text, srt, vtt or verbose_json",
            ));
        }
        model = translation_model(model)?;
    }
    let mut form = Form {
        file,
        model,
        language: fields.language,
        prompt: fields.prompt,
        temperature: fields.temperature,
        format,
        diarize_model: fields.diarize_model,
        known: Vec::new(),
        words: fields.words,
        stream: fields.stream,
        task,
    };
    form.known = known_speakers(&form, fields.names, fields.references).await?;
    check_jobs(&form)?;
    Ok(form)
}

/// The model a translation runs on: translating needs a multilingual model, so OpenAI's
/// names (and none) take `base`; an English-only model is refused.
fn translation_model(model: Option<String>) -> Result<Option<String>, OpenAiError> {
    match model.as_deref() {
        None => Ok(Some(TRANSLATION_MODEL.to_owned())),
        Some(m) if m.ends_with(".en") => Err(OpenAiError::invalid(
            "model",
            format!(
                "model `{m}` is English-only and cannot translate; use whisper-1 or {TRANSLATION_MODEL}"
            ),
        )
        .with_code("model_not_multilingual")),
        Some(_) => Ok(model),
    }
}

/// The multilingual model translations run on when the request names OpenAI's model.
pub(super) const TRANSLATION_MODEL: &str = "base";

impl Fields {
    /// Translations take the fields of OpenAI's translation endpoint: file, model, prompt,
    /// response_format and temperature (others are refused by name, not ignored: a
    /// `language` would not do what the caller meant).
    fn check_for(&self, task: Task, key: &str) -> Result<(), OpenAiError> {
        const NOT_FOR_TRANSLATIONS: [&str; 6] = [
            "language",
            "timestamp_granularities",
            "stream",
            "known_speaker_names",
            "include",
            "chunking_strategy",
        ];
        if task == Task::Translate && NOT_FOR_TRANSLATIONS.contains(&key) {
            return Err(OpenAiError::invalid(
                key,
                format!("`{key}` is not a field of translations (the text is always English)"),
            ));
        }
        Ok(())
    }
}

/// Reads a file part to its end without keeping it (the upload limit still holds).
async fn drain(st: &AppState, mut field: Field<'_>) -> Result<(), OpenAiError> {
    let max = st.limits.max_upload_bytes;
    let mut size = 0u64;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| OpenAiError::from(upload::multipart_error(e, max)))?
    {
        size += chunk.len() as u64;
        if size > max {
            return Err(ApiError::new(
                Code::FileTooLarge,
                format!("the file is larger than the limit of {max} bytes"),
            )
            .into());
        }
    }
    Ok(())
}

/// Known speakers' names and clips: as many names as clips, diarization asked for, names
/// 1–100 characters and distinct, clips valid base64 data URLs (decoded off the runtime).
async fn known_speakers(
    form: &Form,
    names: Vec<String>,
    references: Vec<String>,
) -> Result<Vec<Known>, OpenAiError> {
    if names.is_empty() && references.is_empty() {
        return Ok(Vec::new());
    }
    if !form.diarize() {
        return Err(OpenAiError::invalid(
            "known_speaker_names",
            "known speakers need diarization: use response_format=diarized_json",
        ));
    }
    if names.len() != references.len() {
        return Err(OpenAiError::invalid(
            "known_speaker_references",
            "known_speaker_names[] and known_speaker_references[] must have the same length",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut trimmed = Vec::new();
    for n in &names {
        let n = n.trim();
        if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
            return Err(OpenAiError::invalid(
                "known_speaker_names",
                "a known speaker's name must have 1–100 characters, none of them control characters",
            ));
        }
        if !seen.insert(n) {
            return Err(OpenAiError::invalid(
                "known_speaker_names",
                format!("known speaker `{}` is named twice", clip(n)),
            ));
        }
        trimmed.push(n.to_owned());
    }
    // Up to 4 × 13 MiB of base64: decoded on the blocking pool.
    let clips = tokio::task::spawn_blocking(move || {
        references
            .iter()
            .map(|u| super::data_url(u))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| OpenAiError::from(ApiError::new(Code::Internal, "internal error")))??;
    Ok(trimmed
        .into_iter()
        .zip(clips)
        .map(|(name, (content_type, clip))| Known {
            name,
            content_type,
            clip,
        })
        .collect())
}

/// The jobs' own validation (the same as `POST /v1/jobs`), on their payloads with
/// placeholder ids, before anything is stored.
fn check_jobs(form: &Form) -> Result<(), OpenAiError> {
    let t = form.transcribe_input(Uuid::nil());
    let mut jobs = vec![(JobKind::Transcribe, serde_json::to_value(&t))];
    if form.diarize() {
        let d = DiarizeInput {
            file_id: Uuid::nil(),
            num_speakers: None,
            min_speakers: None,
            max_speakers: None,
            profiles: None,
            known_speakers: form
                .known
                .iter()
                .map(|k| KnownSpeaker {
                    name: k.name.clone(),
                    file_id: Uuid::nil(),
                })
                .collect(),
        };
        jobs.push((JobKind::Diarize, serde_json::to_value(&d)));
    }
    for (kind, v) in jobs {
        let v: Value =
            v.map_err(|_| OpenAiError::from(ApiError::new(Code::Internal, "internal error")))?;
        crate::services::submit::parse_input(kind, &v).map_err(OpenAiError::from)?;
    }
    Ok(())
}
