//! Settings stored in PostgreSQL. The retry setting is read at the moment a retry is decided,
//! so a change applies at once, without restarts; if PostgreSQL cannot be reached at that
//! moment, the last value read is used (and the default before any read succeeded).
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use voxfleet_jobs::{EMBEDDING_PROFILES, RetrySettings};

use crate::db::StoreError;

const RETRY_KEY: &str = "retry";

/// The setting stored under `key`, or its default when it was never set.
async fn get_setting<T: serde::de::DeserializeOwned + Default>(
    pool: &PgPool,
    key: &str,
) -> Result<T, StoreError> {
    let v: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
    match v {
        Some(v) => serde_json::from_value(v).map_err(|e| StoreError::Invalid(e.to_string())),
        None => Ok(T::default()),
    }
}

/// Stores `value` under `key`, with who changed it.
async fn put_setting<T: serde::Serialize>(
    pool: &PgPool,
    key: &str,
    value: &T,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_by) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by",
    )
    .bind(key)
    .bind(serde_json::to_value(value).map_err(|e| StoreError::Invalid(e.to_string()))?)
    .bind(by)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get_retry(pool: &PgPool) -> Result<RetrySettings, StoreError> {
    get_setting(pool, RETRY_KEY).await
}

pub async fn put_retry(
    pool: &PgPool,
    s: RetrySettings,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    put_setting(pool, RETRY_KEY, &s, by).await
}

/// The retry setting as a deciding process sees it: fresh from PostgreSQL each time, the last
/// known value when PostgreSQL does not answer within a second.
#[derive(Clone)]
pub struct RetrySettingsSource {
    pool: PgPool,
    last: Arc<Mutex<RetrySettings>>,
}

impl RetrySettingsSource {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            last: Arc::new(Mutex::new(RetrySettings::default())),
        }
    }

    pub async fn current(&self) -> RetrySettings {
        match tokio::time::timeout(Duration::from_secs(1), get_retry(&self.pool)).await {
            Ok(Ok(s)) => {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = s;
                s
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "retry setting unreadable; using the last known value");
                *self.last.lock().unwrap_or_else(|e| e.into_inner())
            }
            Err(_) => {
                tracing::warn!("retry setting read timed out; using the last known value");
                *self.last.lock().unwrap_or_else(|e| e.into_inner())
            }
        }
    }
}

const EMBEDDINGS_KEY: &str = "embeddings";

/// `{"active_profile":"v4"}` — which voiceprint profile new diarizations compute and voice
/// matching compares. Voiceprints of the other profile stay stored (switching back needs no
/// recomputation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct EmbeddingSettings {
    /// `v3` or `v4`.
    pub active_profile: String,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            active_profile: "v4".into(),
        }
    }
}

impl EmbeddingSettings {
    pub fn validate(&self) -> Result<(), String> {
        if EMBEDDING_PROFILES.contains(&self.active_profile.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "active_profile must be one of {}, got `{}`",
                EMBEDDING_PROFILES.join(", "),
                self.active_profile
            ))
        }
    }
}

pub async fn get_embedding_settings(pool: &PgPool) -> Result<EmbeddingSettings, StoreError> {
    get_setting(pool, EMBEDDINGS_KEY).await
}

pub async fn put_embedding_settings(
    pool: &PgPool,
    s: &EmbeddingSettings,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    put_setting(pool, EMBEDDINGS_KEY, s, by).await
}

const SEARCH_KEY: &str = "search";

/// The text-embedding models search can use (all 384-d; their vectors are not comparable
/// with each other, so changing the model means a full reindex). Names as in the models
/// registry. The first is the default: the int8 ONNX build of all-MiniLM-L6-v2 embeds about
/// twice as fast on CPU (where reindexing runs: the cpu queue) as the F32 one, and its vectors
/// agree with F32's to a cosine above 0.99.
pub const TEXT_EMBEDDING_MODELS: [&str; 2] = ["all-minilm-l6-v2-int8", "all-minilm-l6-v2"];

/// `{"model":"all-minilm-l6-v2-int8"}` — the model transcript chunks and queries are embedded
/// with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct SearchSettings {
    pub model: String,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            model: TEXT_EMBEDDING_MODELS[0].into(),
        }
    }
}

impl SearchSettings {
    pub fn validate(&self) -> Result<(), String> {
        if TEXT_EMBEDDING_MODELS.contains(&self.model.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "model must be one of {}, got `{}`",
                TEXT_EMBEDDING_MODELS.join(", "),
                self.model
            ))
        }
    }
}

pub async fn get_search_settings(pool: &PgPool) -> Result<SearchSettings, StoreError> {
    get_setting(pool, SEARCH_KEY).await
}

pub async fn put_search_settings(
    pool: &PgPool,
    s: &SearchSettings,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    put_setting(pool, SEARCH_KEY, s, by).await
}
