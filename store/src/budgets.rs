//! Transcription budgets: minutes of audio per calendar month per user (`users.
//! transcription_budget_minutes`; none: unlimited). The month starts at 00:00 on its first
//! day in the timezone of [`BudgetSettings`].
//!
//! Every transcription a user submits reserves its file's probed minutes in the transaction
//! that records the job, with the user's row locked, so concurrent submissions cannot
//! overshoot: a job is admitted only while used + reserved + its own minutes stay within the
//! budget. A reservation counts while its job is queued or running and has no usage row; the
//! usage row the worker writes on success then counts instead, and a failed or cancelled job
//! counts for nothing. At [`BudgetSettings::warn_percent`] responses carry a warning.
use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use voxfleet_jobs::{JobInput, JobKind, JobSnapshot};

use crate::db::StoreError;

const BUDGETS_KEY: &str = "budgets";

/// How budgets are counted (`GET/PUT /v1/settings/budgets`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSettings {
    /// IANA timezone in which a month starts (default UTC).
    pub timezone: String,
    /// Responses carry a warning from this share of a budget on (1–99, default 80).
    pub warn_percent: u8,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            warn_percent: 80,
        }
    }
}

impl BudgetSettings {
    pub fn validate(&self) -> Result<(), String> {
        voxfleet_jobs::schedule::parse_timezone(&self.timezone)?;
        if !(1..=99).contains(&self.warn_percent) {
            return Err(format!(
                "warn_percent must be 1-99, got {}",
                self.warn_percent
            ));
        }
        Ok(())
    }

    fn tz(&self) -> chrono_tz::Tz {
        voxfleet_jobs::schedule::parse_timezone(&self.timezone).unwrap_or(chrono_tz::UTC)
    }

    /// 00:00 on the first day of `year`-`month` in this timezone.
    fn first_instant(&self, year: i32, month: u32) -> Option<DateTime<Utc>> {
        NaiveDate::from_ymd_opt(year, month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|t| self.tz().from_local_datetime(&t).earliest())
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first instant of `now`'s month in this timezone (UTC if it does not parse).
    pub fn month_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let (y, m) = self.month_of(now);
        self.first_instant(y, m).unwrap_or(now)
    }

    /// The (year, month) `now` falls in, in this timezone.
    pub fn month_of(&self, now: DateTime<Utc>) -> (i32, u32) {
        let local = now.with_timezone(&self.tz());
        (local.year(), local.month())
    }

    /// [start, end) of the month `now` falls in.
    pub fn month_around(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let (y, m) = self.month_of(now);
        let from = self.month_start(now);
        self.month_range(y, m)
            .unwrap_or((from, from + chrono::Duration::days(31)))
    }

    /// [start, end) of `year`-`month` in this timezone; None for a month that does not exist.
    pub fn month_range(&self, year: i32, month: u32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (ny, nm) = if month == 12 {
            (year.checked_add(1)?, 1)
        } else {
            (year, month + 1)
        };
        Some((
            self.first_instant(year, month)?,
            self.first_instant(ny, nm)?,
        ))
    }
}

pub async fn get_budget_settings(pool: &PgPool) -> Result<BudgetSettings, StoreError> {
    crate::settings::get_setting(pool, BUDGETS_KEY).await
}

pub async fn put_budget_settings(
    pool: &PgPool,
    s: &BudgetSettings,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    crate::settings::put_setting(pool, BUDGETS_KEY, s, by).await
}

/// A user's transcription budget this month.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TranscriptionBudget {
    /// Minutes per month; None: unlimited.
    pub budget_minutes: Option<i32>,
    /// Transcribed this month.
    pub used_minutes: f64,
    /// Held by transcriptions queued or running.
    pub reserved_minutes: f64,
    /// (used + reserved) / budget × 100; None when unlimited.
    pub percent: Option<f64>,
    /// At or past the warning share.
    pub warning: bool,
    pub month_start: DateTime<Utc>,
}

impl TranscriptionBudget {
    /// The warning a response carries, when there is one.
    pub fn warning_text(&self) -> Option<String> {
        let (budget, percent) = (self.budget_minutes?, self.percent?);
        self.warning.then(|| {
            format!(
                "transcription budget {percent:.0}% used ({:.1} of {budget} minutes this month)",
                self.used_minutes + self.reserved_minutes
            )
        })
    }
}

/// Minutes used since `since` and minutes held by live reservations, for `owner`.
async fn used_and_reserved(
    con: &mut PgConnection,
    owner: Uuid,
    since: DateTime<Utc>,
) -> Result<(f64, f64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT coalesce(sum(audio_seconds), 0)::float8 / 60 FROM usage_records \
                  WHERE owner = $1 AND kind = 'transcribe' AND at >= $2), \
                (SELECT coalesce(sum(r.minutes), 0)::float8 FROM budget_reservations r \
                  JOIN jobs j ON j.id = r.job_id \
                  WHERE r.owner = $1 AND j.status IN ('queued', 'running') \
                    AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.job_id = r.job_id))",
    )
    .bind(owner)
    .bind(since)
    .fetch_one(con)
    .await?)
}

/// `owner`'s budget now.
pub async fn transcription_status(
    pool: &PgPool,
    owner: Uuid,
    now: DateTime<Utc>,
) -> Result<TranscriptionBudget, StoreError> {
    let settings = get_budget_settings(pool).await?;
    let since = settings.month_start(now);
    let mut con = pool.acquire().await?;
    let budget: Option<i32> =
        sqlx::query_scalar("SELECT transcription_budget_minutes FROM users WHERE id = $1")
            .bind(owner)
            .fetch_optional(&mut *con)
            .await?
            .flatten();
    let (used, reserved) = used_and_reserved(&mut con, owner, since).await?;
    let percent = budget.map(|b| (used + reserved) / f64::from(b.max(1)) * 100.0);
    Ok(TranscriptionBudget {
        budget_minutes: budget,
        used_minutes: used,
        reserved_minutes: reserved,
        percent,
        warning: percent.is_some_and(|p| p >= f64::from(settings.warn_percent)),
        month_start: since,
    })
}

/// Reserves the minutes of each new transcription in `jobs` that has an owner, inside the
/// transaction that records them; refuses (the whole submission) with
/// [`StoreError::BudgetExceeded`] when one would take its owner past their budget.
pub(crate) async fn reserve(
    con: &mut PgConnection,
    jobs: &[&JobSnapshot],
    since: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut by_owner: BTreeMap<Uuid, Vec<&JobSnapshot>> = BTreeMap::new();
    for j in jobs.iter().filter(|j| j.kind == JobKind::Transcribe) {
        if let Some(owner) = j.owner {
            by_owner.entry(owner).or_default().push(j);
        }
    }
    // Owners in a fixed order, so two batches lock the same rows in the same order.
    for (owner, jobs) in by_owner {
        let budget: Option<Option<i32>> = sqlx::query_scalar(
            "SELECT transcription_budget_minutes FROM users WHERE id = $1 FOR UPDATE",
        )
        .bind(owner)
        .fetch_optional(&mut *con)
        .await?;
        let budget = budget.flatten();
        let (used, reserved) = match budget {
            Some(_) => used_and_reserved(con, owner, since).await?,
            None => (0.0, 0.0),
        };
        let mut held = used + reserved;
        // Every file's probed minutes in one query (a batch may hold up to 1,000 jobs).
        let files: Vec<Option<Uuid>> = jobs
            .iter()
            .map(|j| match j.kind.parse_input(&j.input) {
                Ok(JobInput::Transcribe(t)) => Some(t.file_id),
                _ => None,
            })
            .collect();
        let ids: Vec<Uuid> = files.iter().flatten().copied().collect();
        let durations: std::collections::HashMap<Uuid, f64> = sqlx::query_as::<_, (Uuid, f64)>(
            "SELECT id, duration_s / 60 FROM files WHERE id = ANY($1) AND duration_s IS NOT NULL",
        )
        .bind(&ids)
        .fetch_all(&mut *con)
        .await?
        .into_iter()
        .collect();
        for (j, file) in jobs.into_iter().zip(files) {
            let minutes = file.and_then(|f| durations.get(&f).copied()).unwrap_or(0.0);
            if let Some(b) = budget
                && held + minutes > f64::from(b) + 1e-9
            {
                return Err(StoreError::BudgetExceeded {
                    budget: b,
                    held,
                    needed: minutes,
                });
            }
            held += minutes;
            sqlx::query(
                "INSERT INTO budget_reservations (job_id, owner, minutes) VALUES ($1, $2, $3) \
                 ON CONFLICT (job_id) DO NOTHING",
            )
            .bind(j.id.0)
            .bind(owner)
            .bind(minutes)
            .execute(&mut *con)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_starts_at_local_midnight_on_its_first_day() {
        let s = BudgetSettings {
            timezone: "Europe/Berlin".into(),
            ..Default::default()
        };
        // 23:30 UTC on 30 November is already 1 December in Berlin.
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 23, 30, 0).unwrap();
        assert_eq!(
            s.month_start(now),
            Utc.with_ymd_and_hms(2026, 11, 30, 23, 0, 0).unwrap()
        );
        let (from, to) = s.month_range(2026, 12).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 30, 23, 0, 0).unwrap());
        assert_eq!(to, Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap());
        assert_eq!(s.month_of(now), (2026, 12));
        assert!(s.month_range(2026, 13).is_none());
        let utc = BudgetSettings::default();
        assert_eq!(
            utc.month_start(now),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        );
        assert!(
            BudgetSettings {
                timezone: "Mars/Olympus".into(),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            BudgetSettings {
                warn_percent: 100,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
