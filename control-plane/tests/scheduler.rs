//! The scheduler end to end: two control-plane replicas (real binaries) on one Redis prefix
//! and one database, proving that each schedule fires once per slot, that a run missed
//! during downtime fires once, and that retention's daily run follows its timezone. No
//! worker runs: the scheduled jobs stay queued, where they are counted.
mod common;

use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::{ADMIN, Env};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voxfleet_store::schedules::ScheduleRun;
use voxfleet_store::settings::RetentionSettings;

const T: Duration = Duration::from_secs(45);

/// One more control-plane replica of `env` (same Redis prefix, same database), its scheduler
/// ticking every 200 ms.
struct Replica {
    name: String,
    child: Child,
    base: String,
}

impl Replica {
    async fn start(env: &Env, name: &str) -> Replica {
        let port_file = env.logs.join(format!("port-{name}"));
        let _ = std::fs::remove_file(&port_file);
        let log_path = env.logs.join(format!("{name}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let child = Command::new(common::control_plane_bin())
            .env("VOXFLEET_REDIS_URL", &env.redis_url)
            .env("VOXFLEET_DATABASE_URL", &env.db_url)
            .env("VOXFLEET_KEY_PREFIX", &env.prefix)
            .env("VOXFLEET_LOG", "info,sqlx=warn")
            .env(
                "VOXFLEET_STORAGE_URL",
                format!("file://{}", env.media_dir().display()),
            )
            .env("VOXFLEET_INDEX_DIR", env.index_dir())
            .env("VOXFLEET_ADMIN_TOKEN", ADMIN)
            .env_remove("VOXFLEET_NO_SCHEDULER")
            .args(["--bind", "127.0.0.1:0", "--scheduler-tick-ms", "200"])
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            if let Ok(addr) = std::fs::read_to_string(&port_file)
                && !addr.is_empty()
            {
                break format!("http://{addr}");
            }
            assert!(
                Instant::now() < deadline,
                "replica {name} did not start: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Replica {
            name: name.into(),
            child,
            base,
        }
    }

    /// The replica id it writes into `fired_by` ends with its pid.
    fn owns(&self, fired_by: &str) -> bool {
        fired_by.ends_with(&format!("-{}", self.child.id()))
    }

    /// SIGTERM (a graceful stop releases its locks), SIGKILL after 10 s.
    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                eprintln!("replica {} ignored SIGTERM; killing it", self.name);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn get(&self, env: &Env, path: &str) -> (StatusCode, Value) {
        let res = env
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let s = res.status();
        (s, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn row(pg: &sqlx::PgPool, name: &str) -> Option<ScheduleRun> {
    voxfleet_store::schedules::list(pg)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == name)
}

/// Polls `name`'s row until `pred` holds.
async fn wait_row(
    env: &Env,
    pg: &sqlx::PgPool,
    name: &str,
    pred: impl Fn(&ScheduleRun) -> bool,
) -> ScheduleRun {
    let deadline = Instant::now() + T;
    loop {
        let r = row(pg, name).await;
        if let Some(r) = &r
            && pred(r)
        {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on schedule {name}: {r:?}\nlogs in {}",
            env.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count_jobs(pg: &sqlx::PgPool, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = $1")
        .bind(kind)
        .fetch_one(pg)
        .await
        .unwrap()
}

/// The 10-s slot `t` is in.
fn slot10(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(10)).unwrap()
}

/// Sleeps until the current 10-s slot is between `lo_ms` and `hi_ms` into it.
async fn sleep_into_slot(lo_ms: i64, hi_ms: i64) {
    loop {
        let ms = Utc::now().timestamp_millis().rem_euclid(10_000);
        if (lo_ms..hi_ms).contains(&ms) {
            return;
        }
        let wait = (lo_ms - ms).rem_euclid(10_000);
        tokio::time::sleep(Duration::from_millis(wait as u64 + 1)).await;
    }
}

fn rfc3339(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn schedule<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {list}"))
}

#[tokio::test]
async fn two_replicas_fire_each_slot_once_and_a_missed_run_once() {
    let mut env = Env::start().await;
    // The harness's own control plane serves the API only: the two replicas below schedule.
    env.cp_env
        .push(("VOXFLEET_NO_SCHEDULER".into(), "true".into()));
    env.restart_control_plane().await;
    let pg = env.pg().await;

    // the setting: admins only, checked
    let user = env.mint_token("user");
    let (s, _) = env.call("GET", "/v1/schedules", Some(&user), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = env.get("/v1/settings/schedules").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stats_every_seconds"], 60, "{v}");
    for bad in [
        json!({"stats_every_seconds": 5}),
        json!({"stats_every_seconds": 86_401}),
        json!({"integrity_every_hours": 9000}),
    ] {
        let (s, v) = env
            .call("PUT", "/v1/settings/schedules", Some(ADMIN), Some(bad))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["code"], "invalid_setting", "{v}");
    }
    let every10 = json!({"stats_every_seconds": 10, "integrity_every_hours": 0, "consistency_every_hours": 0});
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/schedules",
            Some(ADMIN),
            Some(every10.clone()),
        )
        .await;
    assert_eq!((s, &v), (StatusCode::OK, &every10));
    assert_eq!(env.get("/v1/settings/schedules").await.1, every10);

    // Jobs the harness's control plane may have fired in the second it ran a scheduler.
    let before = count_jobs(&pg, "collect_stats").await;

    // a) two replicas, started early in a slot: they baseline the current slot (no fire),
    // then fire every following slot exactly once between them.
    sleep_into_slot(500, 3000).await;
    let started = Utc::now();
    let a = Replica::start(&env, "a").await;
    let b = Replica::start(&env, "b").await;
    let base = wait_row(&env, &pg, "collect_stats", |r| {
        r.fingerprint == "every 10 s"
    })
    .await;
    // The baseline is the slot current when the first replica's scheduler first ran. That is
    // the slot the replicas were started in on an idle machine, but a loaded one (CI, 2 cores)
    // has taken 20 s to bring a replica up, so the test checks the rule, not the timing: the
    // baseline slot is not before the start, it was written while it was the current slot
    // (with a margin for a tick that read the clock just before a boundary), and nothing fired.
    assert!(base.slot >= slot10(started), "{base:?} (started {started})");
    assert!(
        base.slot <= base.updated_at && base.updated_at < base.slot + TimeDelta::seconds(12),
        "the baseline is the slot current when it was written: {base:?}"
    );
    assert_eq!((base.job_id, base.fired_at), (None, None), "{base:?}");
    assert_eq!(count_jobs(&pg, "collect_stats").await, before);

    // ~35 s later, in the middle of a slot (its fire is done, the next is 5 s away)
    tokio::time::sleep(Duration::from_secs(33)).await;
    sleep_into_slot(5000, 6000).await;
    let now = Utc::now();
    let last = row(&pg, "collect_stats").await.unwrap();
    assert_eq!(
        last.slot,
        slot10(now),
        "the current slot has fired: {last:?}"
    );
    let slots = (last.slot - base.slot).num_seconds() / 10;
    assert!(slots >= 3, "{slots} slots passed");
    let fired = count_jobs(&pg, "collect_stats").await - before;
    assert_eq!(
        fired,
        slots,
        "one job per slot since the baseline {} (now {now}); logs in {}",
        base.slot,
        env.logs.display()
    );
    // never two in one slot
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT floor(extract(epoch FROM created_at) / 10)) FROM jobs \
         WHERE kind = 'collect_stats' AND created_at >= $1",
    )
    .bind(base.slot)
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(distinct, fired);
    let fired_by = last.fired_by.clone().unwrap();
    assert!(a.owns(&fired_by) || b.owns(&fired_by), "{fired_by}");
    // the API agrees
    let (s, v) = env.get("/v1/jobs?kind=collect_stats&limit=100").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let listed = v["jobs"].as_array().unwrap();
    assert_eq!(listed.len() as i64, fired + before, "{v}");
    assert!(listed.iter().all(|j| j["status"] == "queued"));
    let (s, v) = a.get(&env, "/v1/schedules").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let stats = schedule(&v, "collect_stats");
    assert_eq!(stats["enabled"], true, "{stats}");
    assert_eq!(stats["cadence"], "every 10 s", "{stats}");
    assert_eq!(rfc3339(&stats["last_slot"]), last.slot, "{stats}");
    assert_eq!(
        rfc3339(&stats["next_due"]),
        last.slot + TimeDelta::seconds(10),
        "{stats}"
    );
    assert_eq!(stats["fired_by"], fired_by.as_str(), "{stats}");
    assert_eq!(
        stats["last_job_id"],
        last.job_id.unwrap().to_string(),
        "{stats}"
    );
    assert!(
        listed
            .iter()
            .any(|j| j["id"] == last.job_id.unwrap().to_string())
    );
    let integrity = schedule(&v, "integrity");
    assert_eq!(
        (
            &integrity["enabled"],
            &integrity["cadence"],
            &integrity["next_due"]
        ),
        (&json!(false), &json!("off"), &Value::Null)
    );

    // b) downtime: both replicas stop, the record says the last run was 5 slots ago; on
    // restart exactly one run fires (for the current slot), not five.
    sleep_into_slot(1000, 3000).await;
    a.stop().await;
    b.stop().await;
    let moved: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE schedule_runs SET slot = slot - interval '50 seconds' \
         WHERE name = 'collect_stats' RETURNING slot",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    let n1 = count_jobs(&pg, "collect_stats").await;
    let _a = Replica::start(&env, "a").await;
    let _b = Replica::start(&env, "b").await;
    let caught_up = wait_row(&env, &pg, "collect_stats", |r| {
        r.slot > moved && r.job_id.is_some()
    })
    .await;
    assert!(
        (caught_up.slot - moved).num_seconds() >= 50,
        "{caught_up:?}"
    );
    // a dozen ticks of each replica later
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = row(&pg, "collect_stats").await.unwrap();
    let boundaries = (after.slot - caught_up.slot).num_seconds() / 10;
    assert_eq!(
        count_jobs(&pg, "collect_stats").await - n1,
        1 + boundaries,
        "a missed run fires once (slot moved back to {moved}, caught up at {}); logs in {}",
        caught_up.slot,
        env.logs.display()
    );
}

#[tokio::test]
async fn a_daily_retention_run_missed_for_days_fires_once_in_its_timezone() {
    // The harness's control plane (ticking every 1 s) is a third replica here.
    let env = Env::start().await;
    let pg = env.pg().await;
    let _a = Replica::start(&env, "a").await;
    let b = Replica::start(&env, "b").await;

    // An hour ago, to the minute, in Tokyo (UTC+9 all year): a run time that has passed
    // today (or late yesterday), so enabling must not fire it.
    let due = (Utc::now() - TimeDelta::hours(1))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();
    let run_time = (due + TimeDelta::hours(9)).format("%H:%M").to_string();
    let settings = RetentionSettings {
        enabled: true,
        retention_days: 3650,
        run_time: run_time.clone(),
        timezone: "Asia/Tokyo".into(),
        delete_error_files: false,
    };
    voxfleet_store::settings::put_retention_settings(&pg, &settings, None)
        .await
        .unwrap();
    let cadence = format!("daily {run_time} Asia/Tokyo");
    let base = wait_row(&env, &pg, "retention", |r| r.fingerprint == cadence).await;
    assert_eq!(base.slot, due, "{base:?}");
    assert_eq!((base.fired_at, base.job_id), (None, None), "{base:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(count_jobs(&pg, "retention").await, 0, "enabling fired");

    // two days of downtime
    sqlx::query(
        "UPDATE schedule_runs SET slot = slot - interval '2 days' WHERE name = 'retention'",
    )
    .execute(&pg)
    .await
    .unwrap();
    let fired = wait_row(&env, &pg, "retention", |r| {
        r.slot == due && r.job_id.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_jobs(&pg, "retention").await, 1, "fired once");
    let job_id = fired.job_id.unwrap().to_string();
    let j = env.job(&job_id).await;
    assert_eq!(
        (&j["kind"], &j["status"]),
        (&json!("retention"), &json!("queued"))
    );

    let (s, v) = b.get(&env, "/v1/schedules").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = schedule(&v, "retention");
    assert_eq!(r["enabled"], true, "{r}");
    assert_eq!(r["cadence"], cadence.as_str(), "{r}");
    assert_eq!(rfc3339(&r["last_slot"]), due, "{r}");
    assert_eq!(r["last_job_id"], job_id.as_str(), "{r}");
    assert!(r["last_fired_at"].is_string(), "{r}");
    assert_eq!(
        rfc3339(&r["next_due"]),
        due + TimeDelta::days(1),
        "the next run is tomorrow at {run_time} Tokyo time: {r}"
    );
}
