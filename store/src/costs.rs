//! Cost per connector. Every usage row names the connector that did the work and carries an
//! estimated cost in US dollars: `self_hosted` (voxfleet's own workers, or any engine the
//! platform runs itself) costs 0; other connectors are priced by the [`PriceTable`] setting
//! (`/v1/settings/prices`), seeded with the per-minute prices of OpenAI's hosted
//! transcription. A row's unit price is fixed when it is written (for an LLM reservation, when
//! it is reserved), so a price change never rewrites what was already spent.
//!
//! Transcriptions done by another connector (the platform called OpenAI itself, say) are
//! reported after the fact with [`report_transcription`]: their minutes count against the
//! user's transcription budget like voxfleet's own, since the budget covers every connector.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;

/// voxfleet's own workers, or an engine the platform hosts itself: always free.
pub const SELF_HOSTED: &str = "self_hosted";
const PRICES_KEY: &str = "prices";
/// Most connectors a table may name, per kind of work.
const MAX_CONNECTORS: usize = 100;
/// Longest reported transcription: a week of audio.
pub const MAX_REPORTED_SECONDS: f64 = 7.0 * 86_400.0;

/// Estimated prices by connector (`GET/PUT /v1/settings/prices`). `self_hosted` is always 0
/// whether listed or not; a connector not listed cannot be reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    /// US dollars per audio minute, by transcription connector.
    pub transcription_per_minute: BTreeMap<String, f64>,
    /// US dollars per million tokens (prompt and completion together), by LLM connector.
    pub llm_per_million_tokens: BTreeMap<String, f64>,
}

impl Default for PriceTable {
    /// OpenAI's published prices: whisper-1 and gpt-4o-transcribe $0.006 a minute,
    /// gpt-4o-mini-transcribe $0.003. No LLM prices: a platform enters its own.
    fn default() -> Self {
        let transcription = [
            (SELF_HOSTED, 0.0),
            ("openai_whisper", 0.006),
            ("openai_transcribe", 0.006),
            ("openai_transcribe_mini", 0.003),
        ];
        Self {
            transcription_per_minute: transcription
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            llm_per_million_tokens: [(SELF_HOSTED.to_string(), 0.0)].into_iter().collect(),
        }
    }
}

/// A connector's name: 1–64 lowercase letters, digits, `_`, `-` or `.`.
pub fn check_connector(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
    {
        return Err(format!(
            "a connector is 1-64 lowercase letters, digits, `_`, `-` or `.` (e.g. `openai_whisper`), got {name:?}"
        ));
    }
    Ok(())
}

impl PriceTable {
    pub fn validate(&self) -> Result<(), String> {
        for (what, table, max) in [
            (
                "transcription_per_minute",
                &self.transcription_per_minute,
                100.0,
            ),
            (
                "llm_per_million_tokens",
                &self.llm_per_million_tokens,
                10_000.0,
            ),
        ] {
            if table.len() > MAX_CONNECTORS {
                return Err(format!("{what}: at most {MAX_CONNECTORS} connectors"));
            }
            for (name, price) in table {
                check_connector(name).map_err(|e| format!("{what}: {e}"))?;
                if !price.is_finite() || !(0.0..=max).contains(price) {
                    return Err(format!(
                        "{what}.{name}: a price is 0-{max} US dollars, got {price}"
                    ));
                }
                if name == SELF_HOSTED && *price != 0.0 {
                    return Err(format!("{what}.{SELF_HOSTED} costs 0"));
                }
            }
        }
        Ok(())
    }

    /// US dollars per audio minute for `connector`; None when it is not priced.
    pub fn transcription_price(&self, connector: &str) -> Option<f64> {
        match connector {
            SELF_HOSTED => Some(0.0),
            c => self.transcription_per_minute.get(c).copied(),
        }
    }

    /// US dollars per million tokens for `connector`; None when it is not priced.
    pub fn llm_price(&self, connector: &str) -> Option<f64> {
        match connector {
            SELF_HOSTED => Some(0.0),
            c => self.llm_per_million_tokens.get(c).copied(),
        }
    }
}

pub async fn get_prices(pool: &PgPool) -> Result<PriceTable, StoreError> {
    crate::settings::get_setting(pool, PRICES_KEY).await
}

pub async fn put_prices(pool: &PgPool, p: &PriceTable, by: Option<Uuid>) -> Result<(), StoreError> {
    p.validate().map_err(StoreError::Invalid)?;
    crate::settings::put_setting(pool, PRICES_KEY, p, by).await
}

/// Why a usage report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("the connector `{0}` has no price in /v1/settings/prices")]
    UnknownConnector(String),
    #[error("no such file")]
    FileNotFound,
}

/// A transcription another connector did for a user.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionReport {
    /// A connector priced in `/v1/settings/prices` (e.g. `openai_whisper`), or `self_hosted`.
    pub connector: String,
    /// The model the connector ran (1-100 printable characters); default: the connector.
    pub model: Option<String>,
    /// Seconds of audio transcribed: more than 0, at most a week.
    pub audio_seconds: f64,
    /// The user's own file it was for, if voxfleet stores it.
    pub file_id: Option<Uuid>,
}

/// A usage row as written.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UsageRecord {
    /// The job's id, or the report's own.
    pub id: Uuid,
    pub file_id: Option<Uuid>,
    pub kind: String,
    pub connector: String,
    pub model: String,
    pub audio_seconds: f64,
    /// US dollars per audio minute when it was written.
    pub unit_price_usd: f64,
    pub cost_usd: f64,
    pub at: DateTime<Utc>,
}

/// Records `report` for `owner` at the price the table has now. Never refused for the
/// budget: the audio was transcribed already.
pub async fn report_transcription(
    pool: &PgPool,
    owner: Uuid,
    report: &TranscriptionReport,
) -> Result<UsageRecord, ReportError> {
    check_connector(&report.connector).map_err(ReportError::Invalid)?;
    if !report.audio_seconds.is_finite()
        || report.audio_seconds <= 0.0
        || report.audio_seconds > MAX_REPORTED_SECONDS
    {
        return Err(ReportError::Invalid(
            "`audio_seconds` must be more than 0 and at most 604800 (a week)".into(),
        ));
    }
    let model = report.model.as_deref().unwrap_or(&report.connector);
    if model.is_empty() || model.chars().count() > 100 || model.chars().any(char::is_control) {
        return Err(ReportError::Invalid(
            "`model` must be 1-100 characters without control characters".into(),
        ));
    }
    let price = get_prices(pool)
        .await?
        .transcription_price(&report.connector)
        .ok_or_else(|| ReportError::UnknownConnector(report.connector.clone()))?;
    if let Some(f) = report.file_id {
        let mine: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM files WHERE id = $1 AND owner = $2 \
                            AND deleting_at IS NULL)",
        )
        .bind(f)
        .bind(owner)
        .fetch_one(pool)
        .await
        .map_err(StoreError::from)?;
        if !mine {
            return Err(ReportError::FileNotFound);
        }
    }
    Ok(sqlx::query_as(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
             processing_seconds, connector, unit_price_usd, cost_usd) \
         VALUES ($1, $2, $3, 'transcribe', $4, $5, 0, $6, $7, $5 / 60 * $7) \
         RETURNING job_id AS id, file_id, kind, connector, model, audio_seconds, unit_price_usd, \
                   cost_usd, at",
    )
    .bind(Uuid::now_v7())
    .bind(owner)
    .bind(report.file_id)
    .bind(model)
    .bind(report.audio_seconds)
    .bind(&report.connector)
    .bind(price)
    .fetch_one(pool)
    .await
    .map_err(StoreError::from)?)
}

/// One connector's share of a month.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConnectorUsage {
    pub connector: String,
    /// Minutes of audio transcribed.
    pub minutes: f64,
    /// LLM tokens committed or reported.
    pub llm_tokens: i64,
    /// Estimated US dollars, transcription and LLM together.
    pub cost_usd: f64,
}

/// Usage and estimated cost over [from, to), in all and by connector.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UsageCost {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub minutes: f64,
    pub llm_tokens: i64,
    pub cost_usd: f64,
    /// Connectors with any usage, by name.
    pub by_connector: Vec<ConnectorUsage>,
}

/// Transcription rows and committed LLM rows in [$1, $2) as (owner, connector, minutes,
/// tokens, cost), for one owner ($3) or everyone (NULL); a macro for `concat!`.
macro_rules! usage_rows {
    () => {
        "SELECT owner, connector, audio_seconds / 60 AS minutes, 0::bigint AS tokens, cost_usd \
           FROM usage_records WHERE kind = 'transcribe' AND at >= $1 AND at < $2 \
            AND ($3::uuid IS NULL OR owner = $3) \
         UNION ALL \
         SELECT owner, connector, 0, tokens, cost_usd \
           FROM llm_usage WHERE state = 'committed' AND at >= $1 AND at < $2 \
            AND ($3::uuid IS NULL OR owner = $3)"
    };
}

/// Usage and cost of `owner` (everyone when None) over [from, to).
pub async fn usage_cost(
    pool: &PgPool,
    owner: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<UsageCost, StoreError> {
    let by_connector: Vec<ConnectorUsage> = sqlx::query_as(concat!(
        "SELECT connector, coalesce(sum(minutes), 0)::float8 AS minutes, \
                coalesce(sum(tokens), 0)::bigint AS llm_tokens, \
                coalesce(sum(cost_usd), 0)::float8 AS cost_usd FROM (",
        usage_rows!(),
        ") u GROUP BY connector ORDER BY connector"
    ))
    .bind(from)
    .bind(to)
    .bind(owner)
    .fetch_all(pool)
    .await?;
    Ok(UsageCost {
        from,
        to,
        minutes: by_connector.iter().map(|c| c.minutes).sum(),
        llm_tokens: by_connector.iter().map(|c| c.llm_tokens).sum(),
        cost_usd: by_connector.iter().map(|c| c.cost_usd).sum(),
        by_connector,
    })
}

/// One user's usage in a month (`/v1/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UserCost {
    /// None: users deleted since (their usage stays, detached).
    pub user_id: Option<Uuid>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub minutes: f64,
    pub llm_tokens: i64,
    pub cost_usd: f64,
}

/// Every user with usage over [from, to), most expensive first (then most minutes).
pub async fn usage_by_user(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UserCost>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT u.owner AS user_id, us.name, us.email, \
                coalesce(sum(u.minutes), 0)::float8 AS minutes, \
                coalesce(sum(u.tokens), 0)::bigint AS llm_tokens, \
                coalesce(sum(u.cost_usd), 0)::float8 AS cost_usd FROM (",
        usage_rows!(),
        ") u LEFT JOIN users us ON us.id = u.owner \
         GROUP BY u.owner, us.name, us.email \
         ORDER BY cost_usd DESC, minutes DESC, llm_tokens DESC, u.owner NULLS LAST"
    ))
    .bind(from)
    .bind(to)
    .bind(None::<Uuid>)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_holds_the_seed_prices_and_self_hosted_is_free() {
        let p = PriceTable::default();
        p.validate().unwrap();
        assert_eq!(p.transcription_price("openai_whisper"), Some(0.006));
        assert_eq!(p.transcription_price("openai_transcribe_mini"), Some(0.003));
        assert_eq!(p.transcription_price(SELF_HOSTED), Some(0.0));
        assert_eq!(p.llm_price(SELF_HOSTED), Some(0.0));
        assert_eq!(p.transcription_price("nobody"), None);
    }

    #[test]
    fn bad_tables_are_refused() {
        let mut p = PriceTable::default();
        p.transcription_per_minute.insert(SELF_HOSTED.into(), 0.01);
        assert!(p.validate().is_err());
        for (name, price) in [
            ("Upper", 0.1),
            ("", 0.1),
            ("ok", -1.0),
            ("ok", f64::NAN),
            ("ok", 1e9),
        ] {
            let mut p = PriceTable::default();
            p.llm_per_million_tokens.insert(name.into(), price);
            assert!(p.validate().is_err(), "{name:?} {price}");
        }
    }
}
