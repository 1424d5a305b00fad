//! `GET /v1/models` and `GET /v1/models/{id}`: the model names the audio endpoints take, in
//! OpenAI's shapes, so clients that list models before choosing one (and SDKs that check a
//! name) find them. OpenAI's names run on the worker's default model; voxfleet's own pick one.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::OpenAiError;
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::error::clip;

/// Every name the audio endpoints take, with the voxfleet model it runs (`None`: the worker's
/// default; translations take `base` then).
const MODELS: [(&str, Option<&str>); 9] = [
    ("whisper-1", None),
    ("gpt-4o-transcribe", None),
    ("gpt-4o-mini-transcribe", None),
    ("gpt-4o-transcribe-diarize", None),
    ("default", None),
    ("tiny.en", Some("tiny.en")),
    ("whisper-tiny.en", Some("tiny.en")),
    ("base", Some("base")),
    ("whisper-base", Some("base")),
];

/// Whisper's release (2022-09-21), as the `created` time of every entry.
const CREATED: u64 = 1_663_718_400;

/// The voxfleet model a request's `model` names (`None`: the worker's default).
pub(super) fn model(name: &str) -> Result<Option<String>, OpenAiError> {
    MODELS
        .iter()
        .find(|(id, _)| *id == name)
        .map(|(_, m)| m.map(str::to_owned))
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> OpenAiError {
    OpenAiError::invalid(
        "model",
        format!(
            "model `{}` does not exist here; use whisper-1 (the default), tiny.en or base",
            clip(name)
        ),
    )
    .with_code("model_not_found")
}

fn entry(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": "voxfleet"})
}

/// The models the audio endpoints take (OpenAI-compatible).
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "{object: list, data: [{id, object: model, created, owned_by}]}")),
    security(("bearer" = [])))]
pub async fn list_models(
    State(_st): State<AppState>,
    auth: Result<Auth, ApiError>,
) -> Result<Json<Value>, OpenAiError> {
    auth?;
    let data: Vec<Value> = MODELS.iter().map(|(id, _)| entry(id)).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// One model the audio endpoints take (OpenAI-compatible); 404 for any other name.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "openai",
    params(("id" = String, Path, description = "a model name, such as whisper-1")),
    responses((status = 200, description = "{id, object: model, created, owned_by}"),
              (status = 404, description = "OpenAI-format error, code model_not_found")),
    security(("bearer" = [])))]
pub async fn get_model(
    State(_st): State<AppState>,
    auth: Result<Auth, ApiError>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    auth?;
    model(&id).map_err(|e| OpenAiError {
        status: StatusCode::NOT_FOUND,
        ..e
    })?;
    Ok(Json(entry(&id)))
}
