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
pub(crate) async fn get_setting<T: serde::de::DeserializeOwned + Default>(
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
pub(crate) async fn put_setting<T: serde::Serialize>(
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

const RETENTION_KEY: &str = "retention";

/// Automatic deletion of old files. Off until an admin turns it on with an explicit
/// confirmation (the route checks that; this is only the stored value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RetentionSettings {
    /// Whether the daily run happens.
    pub enabled: bool,
    /// Files older than this many days (1–3,650) are deleted.
    pub retention_days: u32,
    /// The daily run's wall-clock time, `HH:MM` (minutes honoured).
    pub run_time: String,
    /// IANA timezone of `run_time` and of the day count.
    pub timezone: String,
    /// Also delete old files whose processing failed (otherwise they are kept for a look).
    pub delete_error_files: bool,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            retention_days: 365,
            run_time: "02:00".into(),
            timezone: "UTC".into(),
            delete_error_files: false,
        }
    }
}

impl RetentionSettings {
    pub const MAX_DAYS: u32 = 3650;

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::MAX_DAYS).contains(&self.retention_days) {
            return Err(format!(
                "retention_days must be 1–{}, got {}",
                Self::MAX_DAYS,
                self.retention_days
            ));
        }
        self.daily().map(|_| ())
    }

    /// The daily run's time and zone.
    pub fn daily(&self) -> Result<voxfleet_jobs::schedule::DailyAt, String> {
        voxfleet_jobs::schedule::DailyAt::parse(&self.run_time, &self.timezone)
    }
}

pub async fn get_retention_settings(pool: &PgPool) -> Result<RetentionSettings, StoreError> {
    get_setting(pool, RETENTION_KEY).await
}

pub async fn put_retention_settings(
    pool: &PgPool,
    s: &RetentionSettings,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    put_setting(pool, RETENTION_KEY, s, by).await
}

const SCHEDULES_KEY: &str = "schedules";

/// The fixed-interval schedules (retention's daily run has its own setting). 0 turns one off.
/// Intervals are aligned to the Unix epoch: every 24 h means at 00:00 UTC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Seconds between `collect_stats` runs (10–86,400, or 0 for none; default 60).
    pub stats_every_seconds: u64,
    /// Hours between scheduled integrity checks (1–8,760, or 0 for none; default 0).
    pub integrity_every_hours: u32,
    /// Hours between scheduled embedding-consistency repairs of the active profile (1–8,760,
    /// or 0 for none; default 0).
    pub consistency_every_hours: u32,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            stats_every_seconds: 60,
            integrity_every_hours: 0,
            consistency_every_hours: 0,
        }
    }
}

impl ScheduleSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.stats_every_seconds != 0 && !(10..=86_400).contains(&self.stats_every_seconds) {
            return Err(format!(
                "stats_every_seconds must be 0 or 10–86400, got {}",
                self.stats_every_seconds
            ));
        }
        for (name, h) in [
            ("integrity_every_hours", self.integrity_every_hours),
            ("consistency_every_hours", self.consistency_every_hours),
        ] {
            if h > 8760 {
                return Err(format!("{name} must be 0–8760, got {h}"));
            }
        }
        Ok(())
    }
}

pub async fn get_schedule_settings(pool: &PgPool) -> Result<ScheduleSettings, StoreError> {
    get_setting(pool, SCHEDULES_KEY).await
}

pub async fn put_schedule_settings(
    pool: &PgPool,
    s: &ScheduleSettings,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    put_setting(pool, SCHEDULES_KEY, s, by).await
}
