//! The scheduler's record against the real PostgreSQL: baselines never fire, a slot fires once
//! however many callers race, and a long gap fires once.
mod common;

use chrono::{DateTime, Duration, Utc};
use common::Db;
use voxfleet_store::schedules::{Claim, claim, list, set_job, turn_off};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn a_slot_fires_once_and_baselines_never_fire() {
    let db = Db::fresh().await;
    let p = &db.pool;
    let t0 = utc("2026-05-10T10:00:00Z");
    let every = "every 60 s";
    // first sight: baseline, not a fire
    assert_eq!(
        claim(p, "s", t0, every, "a").await.unwrap(),
        Claim::Baseline
    );
    assert_eq!(claim(p, "s", t0, every, "b").await.unwrap(), Claim::NotDue);

    // the next slot, raced by 16 callers: exactly one fires
    let t1 = t0 + Duration::seconds(60);
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { claim(&p, "s", t1, every, &format!("r{i}")).await })
        })
        .collect();
    let mut fired = vec![];
    for (i, r) in racers.into_iter().enumerate() {
        if r.await.unwrap().unwrap() == Claim::Fire {
            fired.push(format!("r{i}"));
        }
    }
    assert_eq!(fired.len(), 1, "{fired:?}");
    let job = uuid::Uuid::new_v4();
    set_job(p, "s", t1, job).await.unwrap();
    let row = list(p).await.unwrap().pop().unwrap();
    assert_eq!(
        (row.slot, row.fired_by.as_deref(), row.job_id),
        (t1, Some(fired[0].as_str()), Some(job))
    );
    assert!(row.fired_at.is_some());

    // ten slots later (downtime): one fire for the latest slot
    let t11 = t1 + Duration::seconds(600);
    assert_eq!(claim(p, "s", t11, every, "a").await.unwrap(), Claim::Fire);
    assert_eq!(claim(p, "s", t11, every, "b").await.unwrap(), Claim::NotDue);
    // an older slot (a replica with a slow clock) never fires
    assert_eq!(claim(p, "s", t1, every, "c").await.unwrap(), Claim::NotDue);

    // a changed configuration re-baselines at its current slot without firing
    let t12 = t11 + Duration::seconds(30);
    assert_eq!(
        claim(p, "s", t12, "every 30 s", "a").await.unwrap(),
        Claim::Baseline
    );
    assert_eq!(
        claim(p, "s", t12, "every 30 s", "b").await.unwrap(),
        Claim::NotDue
    );

    // off, then on again with the old configuration: a baseline, not the missed slot
    turn_off(p, "s").await.unwrap();
    let later = t12 + Duration::seconds(300);
    assert_eq!(
        claim(p, "s", later, "every 30 s", "a").await.unwrap(),
        Claim::Baseline
    );
    let row = list(p).await.unwrap().pop().unwrap();
    assert_eq!((row.slot, row.fingerprint.as_str()), (later, "every 30 s"));
    // schedules are independent
    assert_eq!(
        claim(p, "t", later, every, "a").await.unwrap(),
        Claim::Baseline
    );
    assert_eq!(list(p).await.unwrap().len(), 2);
}
