//! PostgreSQL access against the real server, each test in a fresh database.
mod common;

use common::{Db, base};
use serde_json::json;
use uuid::Uuid;
use voxfleet_jobs::{JobKind, JobStatus, Priority, QueueName, RetrySettings};
use voxfleet_store::jobs::{
    Inserted, get_job, insert_jobs, new_snapshot, reset_for_rerun, upsert_snapshots,
};
use voxfleet_store::settings::{RetrySettingsSource, get_retry, put_retry};
use voxfleet_store::tokens::{Role, create_token, ensure_bootstrap, find_token};

fn job(owner: Option<Uuid>, key: Option<&str>) -> voxfleet_jobs::JobSnapshot {
    new_snapshot(
        JobKind::Diagnostic,
        QueueName::cpu(),
        Priority::Normal,
        json!({}),
        owner,
        key.map(String::from),
        None,
    )
}

#[tokio::test]
async fn connect_creates_and_migrates_and_is_idempotent() {
    let db = Db::fresh().await;
    // a second connect to the same database finds it migrated
    let again = voxfleet_store::connect(&format!("{}/{}", base(), db.name), 2)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&again)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// A fleet starting at once on a fresh database: every process creates it "if missing" at the
/// same moment, and PostgreSQL answers the losers either "already exists" or a unique violation
/// on its catalog; each one must still connect.
#[tokio::test]
async fn many_processes_creating_the_same_new_database_at_once_all_connect() {
    let name = format!("vf_race_{}", Uuid::new_v4().simple());
    let url = format!("{}/{}", base(), name);
    let tries = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let pool = voxfleet_store::connect(&url, 1).await?;
            pool.close().await;
            Ok::<_, voxfleet_store::StoreError>(())
        })
    });
    let results = futures::future::join_all(tries).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| match r.unwrap() {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        })
        .collect();
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
        .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .status();
    assert_eq!(failed, Vec::<String>::new());
}

#[tokio::test]
async fn idempotency_keys_are_per_owner() {
    let db = Db::fresh().await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let first = insert_jobs(&db.pool, &[job(Some(alice), Some("k1"))])
        .await
        .unwrap();
    let Inserted::Created(a) = &first[0] else {
        panic!("created")
    };
    // same owner, same key: the existing job, also within one batch
    let again = insert_jobs(
        &db.pool,
        &[job(Some(alice), Some("k1")), job(Some(alice), None)],
    )
    .await
    .unwrap();
    match &again[0] {
        Inserted::Existing(e) => assert_eq!(e.id, a.id),
        other => panic!("expected the existing job, got {other:?}"),
    }
    assert!(matches!(again[1], Inserted::Created(_)));
    // another owner may use the same key
    let other = insert_jobs(&db.pool, &[job(Some(bob), Some("k1"))])
        .await
        .unwrap();
    assert!(matches!(other[0], Inserted::Created(_)));
}

#[tokio::test]
async fn an_older_state_never_overwrites_a_newer_one() {
    let db = Db::fresh().await;
    let j = job(None, None);
    insert_jobs(&db.pool, std::slice::from_ref(&j))
        .await
        .unwrap();
    let mut done = j.clone();
    done.status = JobStatus::Succeeded;
    done.attempts = 1;
    done.version = 3;
    done.result = Some(json!({"ok": true}));
    let mut stale = j.clone();
    stale.status = JobStatus::Running;
    stale.attempts = 1;
    stale.version = 2;
    assert_eq!(
        upsert_snapshots(&db.pool, &[done.clone()]).await.unwrap(),
        1
    );
    assert_eq!(upsert_snapshots(&db.pool, &[stale]).await.unwrap(), 0);
    let got = get_job(&db.pool, j.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.version, got.result),
        (JobStatus::Succeeded, 3, Some(json!({"ok": true})))
    );
    // only failed or cancelled jobs can be reset for a re-run
    assert!(reset_for_rerun(&db.pool, j.id).await.unwrap().is_none());
    let mut failed = done.clone();
    failed.status = JobStatus::Failed;
    failed.version = 4;
    failed.error_code = Some("boom".into());
    upsert_snapshots(&db.pool, &[failed]).await.unwrap();
    let reset = reset_for_rerun(&db.pool, j.id).await.unwrap().unwrap();
    assert_eq!(
        (
            reset.status,
            reset.attempts,
            reset.version,
            reset.error_code
        ),
        (JobStatus::Queued, 0, 5, None)
    );
}

#[tokio::test]
async fn every_field_of_a_batch_comes_back_as_it_was_written() {
    // Jobs travel to PostgreSQL as typed arrays, one per column: each field of each job
    // (set, unset, quoted, non-ASCII) must come back unchanged, through the insert and
    // through both paths of the persister's upsert (a row that exists, one that does not).
    use chrono::{SubsecRound, Utc};
    let db = Db::fresh().await;
    let now = || Utc::now().trunc_subsecs(6);
    let mut full = job(Some(Uuid::new_v4()), Some("key \"quoted\" ü"));
    full.created_at = now();
    full.max_retries = Some(7);
    full.priority = Priority::High;
    full.input = json!({"path": "a/b.wav", "n": [1, 2.5, null], "s": "é\t\\x"});
    let mut bare = job(None, None);
    bare.created_at = now();
    bare.queue = QueueName::gpu();
    bare.kind = JobKind::Transcribe;
    insert_jobs(&db.pool, &[full.clone(), bare.clone()])
        .await
        .unwrap();
    for j in [&full, &bare] {
        assert_eq!(&get_job(&db.pool, j.id).await.unwrap().unwrap(), j);
    }
    full.status = JobStatus::Failed;
    full.attempts = 3;
    full.version = 5;
    full.error_code = Some("bad_audio".into());
    full.error_message = Some("line 1\nline \"2\"".into());
    full.result = Some(json!({"partial": {"text": "ünïcode"}}));
    full.progress_done = Some(40);
    full.progress_total = Some(u64::from(u32::MAX) + 1);
    full.worker = Some("w-1".into());
    full.started_at = Some(now());
    full.finished_at = Some(now());
    let mut unseen = job(None, None);
    unseen.created_at = now();
    unseen.status = JobStatus::Succeeded;
    unseen.version = 2;
    unseen.result = Some(json!([]));
    assert_eq!(
        upsert_snapshots(&db.pool, &[full.clone(), bare.clone(), unseen.clone()])
            .await
            .unwrap(),
        2,
        "the changed row and the new one; `bare` is not newer"
    );
    for j in [&full, &bare, &unseen] {
        assert_eq!(&get_job(&db.pool, j.id).await.unwrap().unwrap(), j);
    }
}

#[tokio::test]
async fn the_retry_setting_round_trips_and_is_validated() {
    let db = Db::fresh().await;
    assert_eq!(get_retry(&db.pool).await.unwrap(), RetrySettings::default());
    let s = RetrySettings {
        limit_retries: false,
        max_retries: 7,
    };
    put_retry(&db.pool, s, None).await.unwrap();
    assert_eq!(get_retry(&db.pool).await.unwrap(), s);
    assert!(
        put_retry(
            &db.pool,
            RetrySettings {
                limit_retries: true,
                max_retries: 11
            },
            None
        )
        .await
        .is_err()
    );
    let src = RetrySettingsSource::new(db.pool.clone());
    assert_eq!(src.current().await, s);
    // PostgreSQL gone: the last value read is used
    db.pool.close().await;
    assert_eq!(src.current().await, s);
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_carry_roles() {
    let db = Db::fresh().await;
    let (info, plain) = create_token(&db.pool, "ops", Role::Admin).await.unwrap();
    assert!(plain.starts_with("vf_"));
    let stored: String = sqlx::query_scalar("SELECT token_sha256 FROM api_tokens WHERE id = $1")
        .bind(info.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_ne!(stored, plain, "the plaintext is not stored");
    assert_eq!(
        find_token(&db.pool, &plain).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert!(find_token(&db.pool, "vf_wrong").await.unwrap().is_none());
    let id = ensure_bootstrap(&db.pool, "bootstrap-token-0123456789")
        .await
        .unwrap();
    assert_eq!(
        ensure_bootstrap(&db.pool, "bootstrap-token-0123456789")
            .await
            .unwrap(),
        id,
        "idempotent"
    );
    assert_eq!(
        find_token(&db.pool, "bootstrap-token-0123456789")
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::SuperAdmin
    );
    assert!(ensure_bootstrap(&db.pool, "short").await.is_err());
    assert!(Role::SuperAdmin > Role::Admin && Role::Admin > Role::User);
}
