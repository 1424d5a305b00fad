//! Calendar arithmetic for recurring work: a daily wall-clock time in an IANA timezone (hours
//! *and* minutes), fixed intervals, and the age limit of retention.
//!
//! The rules on a day with a DST change, the same everywhere they are used:
//! - a wall time that does not exist that day (the clocks jump over it) happens at the first
//!   instant after the jump (02:30 on a 02:00→03:00 day runs at 03:00);
//! - a wall time that happens twice (the clocks fall back over it) happens once, at its first
//!   occurrence.
//!
//! Written here rather than taken from a cron crate: the scheduler needs "the latest due
//! instant at or before now" (to fire a missed run once) as well as "the next one", with the
//! DST rules above, and both are a few lines over chrono-tz.
use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A timezone name as IANA spells it (`UTC`, `Europe/Berlin`, `America/New_York`).
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown timezone `{name}` (use an IANA name such as Europe/Berlin)"))
}

/// `HH:MM`, 00:00–23:59.
pub fn parse_hhmm(s: &str) -> Result<NaiveTime, String> {
    let bad = || format!("run time must be HH:MM (00:00–23:59), got `{s}`");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

/// The instant a local wall time names in `tz`, by the DST rules of this module.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: the first valid minute after it (gaps are at most a few hours).
            let mut t = local;
            for _ in 0..(24 * 60) {
                t += chrono::Duration::minutes(1);
                if let Some(v) = tz.from_local_datetime(&t).earliest() {
                    return v.with_timezone(&Utc);
                }
            }
            // unreachable for real zones; fall back to reading the wall time as UTC
            Utc.from_utc_datetime(&local)
        }
    }
}

/// Every day at a wall-clock time in a timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyAt {
    pub time: NaiveTime,
    pub tz: Tz,
}

impl DailyAt {
    pub fn parse(hhmm: &str, tz: &str) -> Result<Self, String> {
        Ok(Self {
            time: parse_hhmm(hhmm)?,
            tz: parse_timezone(tz)?,
        })
    }

    /// When it happens on the local date `d`.
    pub fn on(&self, d: NaiveDate) -> DateTime<Utc> {
        resolve_local(self.tz, d.and_time(self.time))
    }

    /// The latest instant it happened at or before `now`.
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.tz).date_naive();
        // today, yesterday or (across a gap at midnight) the day before
        (0..3u64)
            .filter_map(|back| today.checked_sub_days(Days::new(back)))
            .map(|d| self.on(d))
            .find(|t| *t <= now)
            .unwrap_or(now)
    }

    /// The first instant it happens after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.tz).date_naive();
        (0..3u64)
            .filter_map(|ahead| today.checked_add_days(Days::new(ahead)))
            .map(|d| self.on(d))
            .find(|t| *t > now)
            .unwrap_or(now)
    }
}

/// The latest multiple of `every_s` seconds since the Unix epoch at or before `now`: the slot a
/// fixed-interval schedule is in.
pub fn interval_slot(now: DateTime<Utc>, every_s: u64) -> DateTime<Utc> {
    let every_ms = (every_s.max(1) * 1000) as i64;
    let ms = now.timestamp_millis();
    let slot = ms - ms.rem_euclid(every_ms);
    DateTime::from_timestamp_millis(slot).unwrap_or(now)
}

/// Retention's age limit: files created before the returned instant are older than `days`.
/// It is the same wall-clock time `days` calendar days before `as_of` in `tz`, so on a day
/// with a DST change "365 days" is 365 local days (one hour more or less than 365 × 24 h).
pub fn retention_cutoff(as_of: DateTime<Utc>, days: u32, tz: Tz) -> DateTime<Utc> {
    let local = as_of.with_timezone(&tz).naive_local();
    match local.checked_sub_days(Days::new(u64::from(days))) {
        Some(l) => resolve_local(tz, l),
        None => DateTime::<Utc>::MIN_UTC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn hh_mm_and_timezones_are_checked() {
        assert_eq!(
            parse_hhmm("02:30").unwrap(),
            NaiveTime::from_hms_opt(2, 30, 0).unwrap()
        );
        for bad in ["2:30", "24:00", "12:60", "1230", "ab:cd", "", "12:3"] {
            assert!(parse_hhmm(bad).is_err(), "{bad}");
        }
        assert!(parse_timezone("Europe/Berlin").is_ok());
        assert!(parse_timezone("UTC").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn minutes_are_honoured() {
        let d = DailyAt::parse("02:45", "UTC").unwrap();
        let now = utc("2026-05-10T02:44:59Z");
        assert_eq!(d.next_after(now), utc("2026-05-10T02:45:00Z"));
        assert_eq!(d.latest_at_or_before(now), utc("2026-05-09T02:45:00Z"));
        assert_eq!(
            d.latest_at_or_before(utc("2026-05-10T02:45:00Z")),
            utc("2026-05-10T02:45:00Z")
        );
    }

    #[test]
    fn a_timezone_moves_the_instant() {
        let ny = DailyAt::parse("02:30", "America/New_York").unwrap();
        let tokyo = DailyAt::parse("02:30", "Asia/Tokyo").unwrap();
        let now = utc("2026-06-01T12:00:00Z");
        // EDT is UTC-4, JST is UTC+9
        assert_eq!(ny.next_after(now), utc("2026-06-02T06:30:00Z"));
        assert_eq!(tokyo.next_after(now), utc("2026-06-01T17:30:00Z"));
    }

    #[test]
    fn a_skipped_wall_time_runs_once_right_after_the_jump() {
        // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC)
        let d = DailyAt::parse("02:30", "America/New_York").unwrap();
        let day_before = utc("2026-03-07T12:00:00Z");
        let jump = utc("2026-03-08T07:00:00Z");
        assert_eq!(d.next_after(day_before), jump);
        assert_eq!(d.next_after(jump), utc("2026-03-09T06:30:00Z"));
        assert_eq!(d.latest_at_or_before(utc("2026-03-08T12:00:00Z")), jump);
        // the day before, it was still EST (UTC-5)
        assert_eq!(
            d.latest_at_or_before(utc("2026-03-08T06:59:00Z")),
            utc("2026-03-07T07:30:00Z")
        );
    }

    #[test]
    fn a_repeated_wall_time_runs_once_at_its_first_occurrence() {
        // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice
        let d = DailyAt::parse("01:30", "America/New_York").unwrap();
        let first = utc("2026-11-01T05:30:00Z"); // 01:30 EDT
        let second = utc("2026-11-01T06:30:00Z"); // 01:30 EST
        assert_eq!(d.next_after(utc("2026-10-31T12:00:00Z")), first);
        assert_eq!(d.next_after(first), utc("2026-11-02T06:30:00Z"));
        assert_eq!(d.latest_at_or_before(second), first);
    }

    #[test]
    fn interval_slots_are_aligned() {
        let t = utc("2026-05-10T10:00:59Z");
        assert_eq!(interval_slot(t, 60), utc("2026-05-10T10:00:00Z"));
        assert_eq!(interval_slot(t, 30), utc("2026-05-10T10:00:30Z"));
        assert_eq!(interval_slot(t, 3600), utc("2026-05-10T10:00:00Z"));
    }

    #[test]
    fn retention_counts_local_calendar_days() {
        let tokyo = parse_timezone("Asia/Tokyo").unwrap();
        let ny = parse_timezone("America/New_York").unwrap();
        // an ordinary day: exactly days × 24 h
        let as_of = utc("2026-06-10T12:00:00Z");
        assert_eq!(
            retention_cutoff(as_of, 30, tokyo),
            utc("2026-05-11T12:00:00Z")
        );
        assert_eq!(retention_cutoff(as_of, 30, ny), utc("2026-05-11T12:00:00Z"));
        // across New York's spring-forward night, one local day is 23 hours
        let as_of = utc("2026-03-08T12:00:00Z"); // 08:00 EDT on the change day
        assert_eq!(retention_cutoff(as_of, 1, ny), utc("2026-03-07T13:00:00Z")); // 08:00 EST
        assert_eq!(
            retention_cutoff(as_of, 1, tokyo),
            utc("2026-03-07T12:00:00Z")
        );
        // the day after the fall-back night both ends are EST: 24 hours
        let as_of = utc("2026-11-02T13:00:00Z"); // 08:00 EST
        assert_eq!(retention_cutoff(as_of, 1, ny), utc("2026-11-01T13:00:00Z")); // 08:00 EST
        // on the change day itself, one local day back is 25 hours
        let as_of = utc("2026-11-01T14:00:00Z"); // 09:00 EST
        assert_eq!(retention_cutoff(as_of, 1, ny), utc("2026-10-31T13:00:00Z")); // 09:00 EDT
    }
}
