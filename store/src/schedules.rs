//! The scheduler's durable record (`schedule_runs`): per schedule, the latest slot (due
//! instant) it fired or was baselined at, and the configuration (`fingerprint`) that slot was
//! computed from.
//!
//! [`claim`] is the whole protocol. Given the latest slot at or before now:
//! - no row, or a row of another fingerprint (the schedule was just turned on or changed):
//!   the row is (re)written with this slot *without firing*, so enabling a schedule or moving
//!   its time never fires a slot that had already passed;
//! - the same fingerprint and an older slot: the slot fires, decided by one compare-and-set
//!   `UPDATE … WHERE slot < $slot`, so each slot fires once however many replicas race;
//! - otherwise it is not due.
//!
//! Only the latest slot at or before now is ever considered, so a schedule that missed several
//! slots while every replica was down fires once when one comes back, not once per slot.
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;

/// What [`claim`] decided for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The row was written (new schedule, or its configuration changed); nothing fires.
    Baseline,
    /// This caller won the slot: it submits the job.
    Fire,
    /// The slot has fired already (or an earlier one is recorded as newer).
    NotDue,
}

/// One row of `schedule_runs`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleRun {
    pub name: String,
    pub slot: DateTime<Utc>,
    pub fingerprint: String,
    pub job_id: Option<Uuid>,
    pub fired_at: Option<DateTime<Utc>>,
    pub fired_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Decides whether `name`'s `slot` (the latest due instant at or before now, computed from the
/// configuration `fingerprint`) fires, and records the decision; `by` names the replica.
pub async fn claim(
    pool: &PgPool,
    name: &str,
    slot: DateTime<Utc>,
    fingerprint: &str,
    by: &str,
) -> Result<Claim, StoreError> {
    // Baseline: insert, or rewrite a row whose configuration changed. A row of the same
    // fingerprint is left alone (the WHERE of the upsert is false: no row comes back).
    let baselined: Option<String> = sqlx::query_scalar(
        "INSERT INTO schedule_runs (name, slot, fingerprint) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET slot = EXCLUDED.slot, fingerprint = EXCLUDED.fingerprint, \
         updated_at = now() WHERE schedule_runs.fingerprint <> EXCLUDED.fingerprint \
         RETURNING name",
    )
    .bind(name)
    .bind(slot)
    .bind(fingerprint)
    .fetch_optional(pool)
    .await?;
    if baselined.is_some() {
        return Ok(Claim::Baseline);
    }
    // Fire: one compare-and-set; of racing replicas exactly one moves the slot forward.
    let fired: Option<String> = sqlx::query_scalar(
        "UPDATE schedule_runs SET slot = $2, fired_at = now(), fired_by = $4, job_id = NULL, \
         updated_at = now() WHERE name = $1 AND fingerprint = $3 AND slot < $2 RETURNING name",
    )
    .bind(name)
    .bind(slot)
    .bind(fingerprint)
    .bind(by)
    .fetch_optional(pool)
    .await?;
    Ok(if fired.is_some() {
        Claim::Fire
    } else {
        Claim::NotDue
    })
}

/// The fingerprint of a schedule that is turned off.
pub const OFF: &str = "off";

/// Marks `name` as turned off (if it has a row), so turning it on again starts from a
/// baseline instead of firing the slot it missed while off.
pub async fn turn_off(pool: &PgPool, name: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE schedule_runs SET fingerprint = $2, updated_at = now() \
         WHERE name = $1 AND fingerprint <> $2",
    )
    .bind(name)
    .bind(OFF)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the job a fired slot submitted (nothing happens if the row has moved on).
pub async fn set_job(
    pool: &PgPool,
    name: &str,
    slot: DateTime<Utc>,
    job_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE schedule_runs SET job_id = $3, updated_at = now() WHERE name = $1 AND slot = $2",
    )
    .bind(name)
    .bind(slot)
    .bind(job_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every schedule's row, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<ScheduleRun>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT name, slot, fingerprint, job_id, fired_at, fired_by, updated_at \
         FROM schedule_runs ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}
