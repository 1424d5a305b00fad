//! Recurring jobs defined in settings: retention daily at `HH:MM` in an IANA timezone,
//! `collect_stats` every N seconds, integrity checks and embedding-consistency repairs every N
//! hours.
//!
//! Every control-plane replica runs this loop (unless started with `--no-scheduler`). Each
//! tick, per schedule, a replica takes a short Redis lock (`SET … NX PX`) so only one replica
//! evaluates a schedule at a time, reads the settings from PostgreSQL, and asks
//! [`voxfleet_store::schedules::claim`] whether the latest slot at or before now fires. That
//! compare-and-set is what makes a slot fire once across replicas (the lock only keeps
//! replicas from doing the same work twice); since only the latest slot is considered, a
//! schedule that missed runs during downtime fires once. A slot is consumed before its job is
//! submitted, so a replica dying in between loses that run rather than doubling it.
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use voxfleet_jobs::schedule::{DailyAt, interval_slot};
use voxfleet_jobs::{
    CollectStatsInput, EmbeddingRepairInput, IntegrityCheckInput, JobInput, Outage, RetentionInput,
};
use voxfleet_store::StoreError;
use voxfleet_store::schedules::{self, Claim, ScheduleRun};
use voxfleet_store::settings::{RetentionSettings, ScheduleSettings};

use crate::AppState;
use crate::error::{ApiError, Code};
use crate::services::sections::start_section_by;
use crate::services::submit::submit_many;

/// How long a replica may hold a schedule's lock (it is released as soon as the tick is done).
const LOCK_MS: u64 = 30_000;

/// The recurring jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleName {
    Retention,
    CollectStats,
    Integrity,
    Consistency,
}

impl ScheduleName {
    pub const ALL: [Self; 4] = [
        Self::Retention,
        Self::CollectStats,
        Self::Integrity,
        Self::Consistency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retention => "retention",
            Self::CollectStats => "collect_stats",
            Self::Integrity => "integrity",
            Self::Consistency => "consistency",
        }
    }
}

/// When a schedule is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    Off,
    Daily(DailyAt),
    /// Every this many seconds, aligned to the Unix epoch.
    Every(u64),
}

impl Cadence {
    /// `off`, `daily 02:30 America/New_York` or `every 60 s`; also the schedule's fingerprint
    /// (a changed cadence starts from a new baseline).
    pub fn describe(&self) -> String {
        match self {
            Self::Off => schedules::OFF.to_string(),
            Self::Daily(d) => format!("daily {} {}", d.time.format("%H:%M"), d.tz.name()),
            Self::Every(s) => format!("every {s} s"),
        }
    }

    /// The latest due instant at or before `now` (`None` when off).
    pub fn latest(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Off => None,
            Self::Daily(d) => Some(d.latest_at_or_before(now)),
            Self::Every(s) => Some(interval_slot(now, *s)),
        }
    }

    /// The first due instant after `now` (`None` when off).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Off => None,
            Self::Daily(d) => Some(d.next_after(now)),
            Self::Every(s) => Some(interval_slot(now, *s) + chrono::Duration::seconds(*s as i64)),
        }
    }

    /// When the schedule fires next, given its row: the latest slot if it is still to fire
    /// (missed while every replica was down), else the next one.
    pub fn next_due(&self, row: Option<&ScheduleRun>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let latest = self.latest(now)?;
        match row {
            Some(r) if r.fingerprint == self.describe() && r.slot < latest => Some(latest),
            _ => self.next_after(now),
        }
    }
}

/// A schedule's cadence under the current settings.
pub fn cadence(name: ScheduleName, retention: &RetentionSettings, s: &ScheduleSettings) -> Cadence {
    let hours = |h: u32| match h {
        0 => Cadence::Off,
        h => Cadence::Every(u64::from(h) * 3600),
    };
    match name {
        ScheduleName::Retention if retention.enabled => match retention.daily() {
            Ok(d) => Cadence::Daily(d),
            Err(e) => {
                tracing::warn!(error = %e, "retention schedule unreadable; not scheduling it");
                Cadence::Off
            }
        },
        ScheduleName::Retention => Cadence::Off,
        ScheduleName::CollectStats => match s.stats_every_seconds {
            0 => Cadence::Off,
            n => Cadence::Every(n),
        },
        ScheduleName::Integrity => hours(s.integrity_every_hours),
        ScheduleName::Consistency => hours(s.consistency_every_hours),
    }
}

/// Reads the settings `name` depends on.
pub async fn load_cadence(st: &AppState, name: ScheduleName) -> Result<Cadence, StoreError> {
    let (retention, sched) = match name {
        ScheduleName::Retention => (
            voxfleet_store::settings::get_retention_settings(&st.pool).await?,
            ScheduleSettings::default(),
        ),
        _ => (
            RetentionSettings::default(),
            voxfleet_store::settings::get_schedule_settings(&st.pool).await?,
        ),
    };
    Ok(cadence(name, &retention, &sched))
}

/// This replica's name in locks and in `fired_by`: host and process id.
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "control-plane".into());
    format!("{host}-{}", std::process::id())
}

/// Deletes the lock only if this replica still holds it.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) \
         else return 0 end",
    )
});

struct Scheduler {
    st: AppState,
    id: String,
    redis_outage: Outage,
    db_outage: Outage,
}

/// Runs the scheduler until `stop`; returns at once when this replica runs none
/// (`Limits::scheduler_tick` is `None`).
pub async fn run(st: AppState, stop: CancellationToken) {
    let Some(every) = st.limits.scheduler_tick else {
        tracing::info!("scheduler off on this replica");
        return;
    };
    let mut s = Scheduler {
        st,
        id: replica_id(),
        redis_outage: Outage::new("redis (scheduler)"),
        db_outage: Outage::new("postgres (scheduler)"),
    };
    tracing::debug!(replica = %s.id, tick_ms = every.as_millis() as u64, "scheduler started");
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
        for name in ScheduleName::ALL {
            if stop.is_cancelled() {
                return;
            }
            s.tick_one(name).await;
        }
    }
}

impl Scheduler {
    fn lock_key(&self, name: ScheduleName) -> String {
        self.st.queue.keys().schedule_lock(name.as_str())
    }

    async fn tick_one(&mut self, name: ScheduleName) {
        let key = self.lock_key(name);
        let mut con = self.st.queue.connection();
        let got: Result<Option<String>, _> = redis::cmd("SET")
            .arg(&key)
            .arg(&self.id)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_MS)
            .query_async(&mut con)
            .await;
        match got {
            Ok(Some(_)) => self.redis_outage.ok(),
            // another replica is on it
            Ok(None) => {
                self.redis_outage.ok();
                return;
            }
            Err(e) => {
                self.redis_outage.failed(&e);
                return;
            }
        }
        let res = self.evaluate(name).await;
        let released: Result<i64, _> = RELEASE.key(&key).arg(&self.id).invoke_async(&mut con).await;
        if let Err(e) = released {
            self.redis_outage.failed(&e);
        }
        match res {
            Ok(()) => self.db_outage.ok(),
            Err(e) => {
                self.db_outage.failed(&e);
            }
        }
    }

    /// With the lock held: decide the schedule's latest slot and submit its job if it fires.
    async fn evaluate(&mut self, name: ScheduleName) -> Result<(), StoreError> {
        let pool = &self.st.pool;
        let cadence = load_cadence(&self.st, name).await?;
        let now = Utc::now();
        let Some(slot) = cadence.latest(now) else {
            schedules::turn_off(pool, name.as_str()).await?;
            return Ok(());
        };
        let fingerprint = cadence.describe();
        match schedules::claim(pool, name.as_str(), slot, &fingerprint, &self.id).await? {
            Claim::NotDue => return Ok(()),
            Claim::Baseline => {
                tracing::debug!(schedule = name.as_str(), cadence = %fingerprint, %slot, "schedule baselined");
                return Ok(());
            }
            Claim::Fire => {}
        }
        match submit(&self.st, name).await {
            Ok(job) => {
                tracing::info!(schedule = name.as_str(), %slot, job.id = %job, "scheduled job submitted");
                schedules::set_job(pool, name.as_str(), slot, job).await?;
            }
            Err(e) if e.code == Code::AlreadyRunning => {
                tracing::info!(schedule = name.as_str(), %slot, reason = %e.message, "scheduled run skipped: the previous one is still running");
            }
            Err(e) if e.code == Code::Unavailable => {
                tracing::warn!(schedule = name.as_str(), %slot, error = %e.message, "scheduled run lost: a dependency is unreachable");
            }
            Err(e) => {
                tracing::warn!(schedule = name.as_str(), %slot, error = %e.message, "scheduled run failed to submit");
            }
        }
        Ok(())
    }
}

/// Submits the schedule's job; its id.
async fn submit(st: &AppState, name: ScheduleName) -> Result<Uuid, ApiError> {
    let input: JobInput = match name {
        ScheduleName::Retention => RetentionInput {
            dry_run: false,
            as_of: None,
            stall_after: None,
        }
        .into(),
        ScheduleName::Integrity => IntegrityCheckInput { dry_run: false }.into(),
        ScheduleName::Consistency => {
            let profile = voxfleet_store::settings::get_embedding_settings(&st.pool)
                .await?
                .active_profile;
            EmbeddingRepairInput {
                profile: Some(profile),
            }
            .into()
        }
        ScheduleName::CollectStats => {
            let job = voxfleet_store::submit::new_job(&CollectStatsInput {}.into(), None);
            let inserted = submit_many(st, vec![job]).await?;
            return inserted
                .first()
                .map(|i| i.job().id.0)
                .ok_or_else(|| ApiError::new(Code::Internal, "the job was not inserted"));
        }
    };
    let v = start_section_by(st, Default::default(), input).await?;
    v.job
        .map(|j| j.id.0)
        .ok_or_else(|| ApiError::new(Code::Internal, "the section run has no job"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn row(slot: &str, fingerprint: &str) -> ScheduleRun {
        ScheduleRun {
            name: "x".into(),
            slot: utc(slot),
            fingerprint: fingerprint.into(),
            job_id: None,
            fired_at: None,
            fired_by: None,
            updated_at: utc(slot),
        }
    }

    #[test]
    fn cadences_read_from_settings_and_describe_themselves() {
        let retention = RetentionSettings {
            enabled: true,
            run_time: "02:30".into(),
            timezone: "America/New_York".into(),
            ..RetentionSettings::default()
        };
        let s = ScheduleSettings {
            stats_every_seconds: 60,
            integrity_every_hours: 0,
            consistency_every_hours: 6,
        };
        let d = |n| cadence(n, &retention, &s).describe();
        assert_eq!(d(ScheduleName::Retention), "daily 02:30 America/New_York");
        assert_eq!(d(ScheduleName::CollectStats), "every 60 s");
        assert_eq!(d(ScheduleName::Integrity), "off");
        assert_eq!(d(ScheduleName::Consistency), "every 21600 s");
        let off = RetentionSettings::default();
        assert_eq!(
            cadence(ScheduleName::Retention, &off, &s),
            Cadence::Off,
            "retention is off until enabled"
        );
        // minutes are part of the fingerprint: moving the time re-baselines
        let moved = RetentionSettings {
            run_time: "02:31".into(),
            ..retention.clone()
        };
        assert_ne!(
            cadence(ScheduleName::Retention, &moved, &s).describe(),
            d(ScheduleName::Retention)
        );
    }

    #[test]
    fn next_due_is_the_missed_slot_or_the_next_one() {
        let every = Cadence::Every(60);
        let now = utc("2026-05-10T10:00:30Z");
        assert_eq!(every.latest(now), Some(utc("2026-05-10T10:00:00Z")));
        assert_eq!(every.next_after(now), Some(utc("2026-05-10T10:01:00Z")));
        // fired for the current slot: the next one
        let fired = row("2026-05-10T10:00:00Z", "every 60 s");
        assert_eq!(
            every.next_due(Some(&fired), now),
            Some(utc("2026-05-10T10:01:00Z"))
        );
        // behind (downtime): the current slot, at the next tick
        let behind = row("2026-05-10T09:55:00Z", "every 60 s");
        assert_eq!(
            every.next_due(Some(&behind), now),
            Some(utc("2026-05-10T10:00:00Z"))
        );
        // another configuration: it re-baselines, so the next slot
        let other = row("2026-05-10T09:55:00Z", "every 30 s");
        assert_eq!(
            every.next_due(Some(&other), now),
            Some(utc("2026-05-10T10:01:00Z"))
        );
        assert_eq!(Cadence::Off.next_due(Some(&fired), now), None);

        let tokyo = Cadence::Daily(DailyAt::parse("02:30", "Asia/Tokyo").unwrap());
        let now = utc("2026-06-01T12:00:00Z"); // 21:00 JST
        assert_eq!(tokyo.latest(now), Some(utc("2026-05-31T17:30:00Z")));
        assert_eq!(tokyo.next_due(None, now), Some(utc("2026-06-01T17:30:00Z")));
    }

    #[test]
    fn replica_ids_name_the_process() {
        assert!(replica_id().ends_with(&format!("-{}", std::process::id())));
    }
}
