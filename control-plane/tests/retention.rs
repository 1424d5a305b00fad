//! Retention end to end, with the real binaries, Redis, PostgreSQL, media folder and embedded
//! index: planted files of different ages, owners and statuses judged in two timezones on the
//! day after a DST change; the settings' checks and confirmations; and a worker killed with
//! `kill -9` in the middle of a file, after which nothing is left half-deleted and the job's
//! retry finishes the run; the same for a user's deletion.
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use common::{ADMIN, Env};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use voxfleet_search::{CHUNKS, ChunkDoc, SearchIndex, all_keys, chunk_id};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A user named `name` (the owner of planted files).
async fn token(pg: &sqlx::PgPool, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, name, role) VALUES ($1, $2, 'user')")
        .bind(id)
        .bind(name)
        .execute(pg)
        .await
        .unwrap();
    id
}

/// A file row created at `created`, in `status` (`transcribed`, `uploaded`, `failed`,
/// `cancelled`, `processing`), with its object in the media folder and two chunks in the index.
async fn plant(
    env: &Env,
    pg: &sqlx::PgPool,
    owner: Option<Uuid>,
    name: &str,
    created: DateTime<Utc>,
    status: &str,
) -> Uuid {
    let id = Uuid::new_v4();
    let key = format!("planted/{id}.wav");
    let body = format!("not really audio: {name}").repeat(10);
    let path = env.media_dir().join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &body).unwrap();
    let job = match status {
        "transcribed" | "uploaded" => None,
        "failed" => Some("failed"),
        "cancelled" => Some("cancelled"),
        "processing" => Some("running"),
        s => panic!("unknown planted status {s}"),
    };
    let job_id = job.map(|_| Uuid::new_v4());
    if let (Some(j), Some(s)) = (job_id, job) {
        sqlx::query(
            "INSERT INTO jobs (id, kind, queue, status, input, created_at) \
             VALUES ($1, 'transcribe', 'gpu', $2, jsonb_build_object('file_id', $3::text), $4)",
        )
        .bind(j)
        .bind(s)
        .bind(id.to_string())
        .bind(created)
        .execute(pg)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO files (id, owner, filename, size_bytes, sha256, storage_key, created_at, \
                            transcription_job, transcribed_at) \
         VALUES ($1, $2, $3, $4, 'x', $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(owner)
    .bind(name)
    .bind(body.len() as i64)
    .bind(&key)
    .bind(created)
    .bind(job_id)
    .bind((status == "transcribed").then_some(created))
    .execute(pg)
    .await
    .unwrap();
    let index = voxfleet_search::embedded::EmbeddedIndex::open(&env.index_dir()).unwrap();
    index.ensure_chunks(4).await.unwrap();
    let docs = (0..2)
        .map(|seq| ChunkDoc {
            id: chunk_id(id, seq),
            file_id: id,
            owner,
            seq,
            start_s: f64::from(seq),
            end_s: f64::from(seq + 1),
            speakers: vec![],
            text: format!("{name} chunk {seq}"),
            model: "planted".into(),
            vector: vec![0.5, 0.5, 0.5, 0.5],
        })
        .collect();
    index.replace_chunks(vec![(id, docs)]).await.unwrap();
    id
}

/// Which of `ids` still have rows, objects and index documents, and which are tombstoned.
struct Presence {
    rows: HashSet<Uuid>,
    objects: HashSet<Uuid>,
    docs: HashSet<Uuid>,
    tombstoned: HashSet<Uuid>,
}

async fn presence(env: &Env, pg: &sqlx::PgPool, ids: &[Uuid]) -> Presence {
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, deleting_at FROM files WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(pg)
            .await
            .unwrap();
    let index = voxfleet_search::embedded::EmbeddedIndex::open(&env.index_dir()).unwrap();
    let docs: HashSet<Uuid> = all_keys(&index, CHUNKS)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.file_id)
        .collect();
    Presence {
        tombstoned: rows
            .iter()
            .filter(|(_, d)| d.is_some())
            .map(|(i, _)| *i)
            .collect(),
        rows: rows.iter().map(|(i, _)| *i).collect(),
        objects: ids
            .iter()
            .copied()
            .filter(|i| env.media_dir().join(format!("planted/{i}.wav")).exists())
            .collect(),
        docs: ids.iter().copied().filter(|i| docs.contains(i)).collect(),
    }
}

fn set(ids: &[Uuid]) -> HashSet<Uuid> {
    ids.iter().copied().collect()
}

async fn put_settings(env: &Env, body: Value) -> (StatusCode, Value) {
    env.call("PUT", "/v1/settings/retention", Some(ADMIN), Some(body))
        .await
}

async fn preview(env: &Env, as_of: &str) -> Value {
    let (s, v) = env
        .get(&format!(
            "/v1/admin/retention/preview?as_of={}",
            as_of.replace('+', "%2B")
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn preview_ids(v: &Value) -> Vec<Uuid> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Starts a confirmed run and waits for its job; the section afterwards.
async fn run_retention(env: &Env, body: Value) -> Value {
    let (s, v) = env.post("/v1/admin/retention/run", body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job = v["job"]["id"].as_str().unwrap().to_string();
    let j = env.wait_ended(&job, Duration::from_secs(120)).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    let (_, st) = env.get("/v1/admin/retention").await;
    st
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_by_age_owner_and_status_in_two_timezones() {
    let mut env = Env::start().await;
    env.worker("w1", &[]);
    let pg = env.pg().await;
    let alice = token(&pg, "alice").await;
    let bob = token(&pg, "bob").await;

    // As of 2026-03-08 12:00 UTC with a 1-day limit. New York sprang forward that night, so one
    // local day back is 23 hours there (cutoff 03-07 13:00 UTC) and 24 in Tokyo (12:00 UTC).
    let as_of = "2026-03-08T12:00:00Z";
    let ny_only = plant(
        &env,
        &pg,
        Some(alice),
        "ny-only.wav",
        at("2026-03-07T12:30:00Z"),
        "transcribed",
    )
    .await;
    let both = plant(
        &env,
        &pg,
        Some(bob),
        "both.wav",
        at("2026-03-07T11:30:00Z"),
        "transcribed",
    )
    .await;
    let fresh = plant(
        &env,
        &pg,
        Some(alice),
        "fresh.wav",
        at("2026-03-07T13:30:00Z"),
        "transcribed",
    )
    .await;
    let failed = plant(
        &env,
        &pg,
        Some(bob),
        "failed.wav",
        at("2026-03-01T00:00:00Z"),
        "failed",
    )
    .await;
    let busy = plant(
        &env,
        &pg,
        Some(alice),
        "busy.wav",
        at("2026-03-01T00:00:00Z"),
        "processing",
    )
    .await;
    let uploaded = plant(
        &env,
        &pg,
        None,
        "uploaded.wav",
        at("2026-02-01T00:00:00Z"),
        "uploaded",
    )
    .await;
    let cancelled = plant(
        &env,
        &pg,
        Some(alice),
        "cancelled.wav",
        at("2026-02-15T00:00:00Z"),
        "cancelled",
    )
    .await;
    let later = plant(
        &env,
        &pg,
        Some(bob),
        "later.wav",
        at("2026-03-08T12:30:00Z"),
        "transcribed",
    )
    .await;
    let all = [
        ny_only, both, fresh, failed, busy, uploaded, cancelled, later,
    ];

    // Settings: checked, and turning retention on needs a confirmation.
    let (s, v) = env.get("/v1/settings/retention").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"enabled": false, "retention_days": 365, "run_time": "02:00", "timezone": "UTC", "delete_error_files": false})
    );
    for bad in [
        json!({"retention_days": 0}),
        json!({"retention_days": 3651}),
        json!({"run_time": "24:00"}),
        json!({"run_time": "2:30"}),
        json!({"timezone": "Mars/Olympus_Mons"}),
    ] {
        let (s, v) = put_settings(&env, bad.clone()).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting"),
            "{bad}: {v}"
        );
    }
    let (s, v) = put_settings(&env, json!({"enabled": true})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "confirmation_required"),
        "{v}"
    );
    let (_, v) = env.get("/v1/settings/retention").await;
    assert_eq!(v["enabled"], false, "an unconfirmed change is not stored");
    // A run time about 12 h away, so the scheduler's daily run cannot fire during the test.
    let run_time = format!("{:02}:17", (Utc::now().hour() + 12) % 24);
    let (s, v) = put_settings(
        &env,
        json!({"enabled": true, "confirm": true, "retention_days": 1, "timezone": "Asia/Tokyo", "run_time": run_time}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env
        .call(
            "GET",
            "/v1/settings/retention",
            Some(&env.mint_token("user")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // The preview, in Tokyo and in New York.
    let v = preview(&env, as_of).await;
    assert_eq!(v["cutoff"], "2026-03-07T12:00:00Z", "{v}");
    assert_eq!(preview_ids(&v), [uploaded, cancelled, both], "{v}");
    assert_eq!(v["total_files"], 3);
    let first = &v["files"][0];
    assert_eq!(first["filename"], "uploaded.wav");
    assert_eq!(first["status"], "uploaded");
    assert_eq!(first["age_days"], 35);
    assert!(first["size_bytes"].as_i64().unwrap() > 0);
    assert_eq!(v["files"][2]["owner_name"], "bob");
    assert_eq!(v["files"][2]["owner"], bob.to_string());
    put_settings(&env, json!({"timezone": "America/New_York"})).await;
    let v = preview(&env, as_of).await;
    assert_eq!(v["cutoff"], "2026-03-07T13:00:00Z", "{v}");
    assert_eq!(preview_ids(&v), [uploaded, cancelled, both, ny_only], "{v}");
    put_settings(&env, json!({"delete_error_files": true})).await;
    assert_eq!(
        preview_ids(&preview(&env, as_of).await),
        [uploaded, cancelled, failed, both, ny_only]
    );
    put_settings(
        &env,
        json!({"delete_error_files": false, "timezone": "Asia/Tokyo"}),
    )
    .await;

    // A run needs a confirmation, then deletes what the Tokyo preview listed: rows, objects
    // and index documents; everything else is untouched.
    let (s, v) = env.post("/v1/admin/retention/run", json!({})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "confirmation_required"),
        "{v}"
    );
    let st = run_retention(&env, json!({"confirm": true, "as_of": as_of})).await;
    let report = &st["last_run"]["report"];
    assert_eq!(st["last_run"]["state"], "completed", "{st}");
    assert_eq!(report["files_deleted"], 3, "{st}");
    assert_eq!(report["cutoff"], "2026-03-07T12:00:00Z", "{st}");
    assert!(report["bytes_freed"].as_u64().unwrap() > 0, "{st}");
    let gone = set(&[uploaded, cancelled, both]);
    let p = presence(&env, &pg, &all).await;
    let kept: HashSet<Uuid> = set(&all).difference(&gone).copied().collect();
    assert_eq!(p.rows, kept);
    assert_eq!(p.objects, kept);
    assert_eq!(p.docs, kept);
    assert!(p.tombstoned.is_empty());
    let (s, _) = env.get(&format!("/v1/files/{both}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE input->>'file_id' = $1")
        .bind(busy.to_string())
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(n, 1, "the busy file's job is untouched");

    // Status: the last run, and the next daily run at HH:17 Tokyo time.
    let next: DateTime<Utc> = st["next_run"].as_str().unwrap().parse().unwrap();
    let local = next.with_timezone(&chrono_tz::Asia::Tokyo);
    assert_eq!(
        format!("{:02}:{:02}", local.hour(), local.minute()),
        run_time
    );
    assert!(
        next > Utc::now() && next < Utc::now() + chrono::Duration::hours(24),
        "{st}"
    );
    assert_eq!(st["pending_deletion"], 0);

    // New York's extra DST hour takes the file uploaded in it.
    put_settings(&env, json!({"timezone": "America/New_York"})).await;
    let st = run_retention(&env, json!({"confirm": true, "as_of": as_of})).await;
    assert_eq!(st["last_run"]["report"]["files_deleted"], 1, "{st}");
    let p = presence(&env, &pg, &all).await;
    assert_eq!(p.rows, set(&[fresh, failed, busy, later]));
    assert_eq!(p.objects, p.rows);
    assert_eq!(p.docs, p.rows);

    // Failed files go only when the settings say so; a file being processed never.
    put_settings(&env, json!({"delete_error_files": true})).await;
    let st = run_retention(&env, json!({"confirm": true, "as_of": as_of})).await;
    assert_eq!(st["last_run"]["report"]["files_deleted"], 1, "{st}");
    let p = presence(&env, &pg, &all).await;
    assert_eq!(p.rows, set(&[fresh, busy, later]));
    assert_eq!(p.objects, p.rows);
    assert_eq!(p.docs, p.rows);

    // A dry run counts and deletes nothing (no confirmation needed).
    let st = run_retention(
        &env,
        json!({"dry_run": true, "as_of": "2027-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(st["last_run"]["report"]["eligible"], 2, "{st}"); // fresh and later
    assert_eq!(st["last_run"]["report"]["files_deleted"], 0, "{st}");
    assert_eq!(presence(&env, &pg, &all).await.rows.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_retention_leaves_nothing_half_deleted() {
    let mut env = Env::start().await;
    let w1 = env.worker("w1", &["--allow-crash", "--lease-seconds", "3"]);
    let pg = env.pg().await;
    let owner = token(&pg, "carol").await;
    let old = Utc::now() - chrono::Duration::days(400);
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            plant(
                &env,
                &pg,
                Some(owner),
                &format!("old-{i}.wav"),
                old,
                "transcribed",
            )
            .await,
        );
    }
    let young = plant(
        &env,
        &pg,
        Some(owner),
        "young.wav",
        Utc::now(),
        "transcribed",
    )
    .await;

    // The default limit (365 days), retention off: a manual run still works once confirmed.
    // The drill stops the worker in the 5th file, after its object went and before its rows.
    let (s, v) = env
        .post(
            "/v1/admin/retention/run",
            json!({"confirm": true, "stall_after": 4}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job = v["job"]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !env.log("worker-w1.log").contains("retention stalled") {
        assert!(
            Instant::now() < deadline,
            "no stall; logs in {}",
            env.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.signal(w1, "-KILL");

    // Killed mid-file: 4 files are gone entirely, one is tombstoned (object and documents
    // gone, rows kept, hidden from the API), the rest are whole.
    let p = presence(&env, &pg, &ids).await;
    assert_eq!(p.rows.len(), 8, "4 of 12 deleted before the kill");
    assert_eq!(p.tombstoned.len(), 1);
    let half = *p.tombstoned.iter().next().unwrap();
    assert!(!p.objects.contains(&half) && !p.docs.contains(&half));
    let whole: HashSet<Uuid> = p.rows.iter().copied().filter(|i| *i != half).collect();
    assert_eq!(whole.len(), 7);
    assert!(
        whole
            .iter()
            .all(|i| p.objects.contains(i) && p.docs.contains(i))
    );
    let (s, _) = env.get(&format!("/v1/files/{half}")).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a file being deleted is not served"
    );
    let (_, list) = env.get("/v1/files?limit=100").await;
    let listed: HashSet<String> = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!listed.contains(&half.to_string()), "{list}");
    assert!(listed.contains(&young.to_string()), "{list}");
    let (_, st) = env.get("/v1/admin/retention").await;
    assert_eq!(st["pending_deletion"], 1, "{st}");

    // Another worker takes the job over when the dead one's lease expires, finishes the
    // tombstoned file first, then the rest.
    env.worker("w2", &["--lease-seconds", "3"]);
    let j = env.wait_ended(&job, Duration::from_secs(120)).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["attempts"], 2, "{j}");
    assert_eq!(j["result"]["resumed"], 1, "{j}");
    assert_eq!(j["result"]["files_deleted"], 8, "{j}");
    let p = presence(&env, &pg, &ids).await;
    assert!(p.rows.is_empty() && p.objects.is_empty() && p.docs.is_empty());
    let p = presence(&env, &pg, &[young]).await;
    assert_eq!((p.rows.len(), p.objects.len(), p.docs.len()), (1, 1, 1));
    let (_, st) = env.get("/v1/admin/retention").await;
    assert_eq!(st["pending_deletion"], 0, "{st}");
    assert_eq!(st["last_run"]["state"], "completed", "{st}");
}

/// Issue 17: deleting a user is crash-safe the way retention is. The account and every file
/// of theirs disappear from the API at once; a worker killed in the middle of a file leaves
/// nothing half there in sight, and the job's next attempt finishes it. Usage rows stay,
/// detached from the person; another user's files are untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_user_deletion_leaves_nothing_visible_and_the_retry_finishes() {
    let mut env = Env::start().await;
    let w1 = env.worker("w1", &["--allow-crash", "--lease-seconds", "3"]);
    let pg = env.pg().await;
    let (s, dave) = env
        .post(
            "/v1/users",
            json!({"email": "dave@example.org", "name": "Dave"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{dave}");
    let dave_id: Uuid = dave["id"].as_str().unwrap().parse().unwrap();
    let (s, t) = env
        .post(
            &format!("/v1/users/{dave_id}/tokens"),
            json!({"name": "phone"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let dave_token = t["token"].as_str().unwrap().to_string();
    let carol = token(&pg, "carol").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            plant(
                &env,
                &pg,
                Some(dave_id),
                &format!("dave-{i}.wav"),
                Utc::now(),
                "transcribed",
            )
            .await,
        );
    }
    let kept = plant(
        &env,
        &pg,
        Some(carol),
        "carol.wav",
        Utc::now(),
        "transcribed",
    )
    .await;
    sqlx::query(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
            processing_seconds) VALUES ($1, $2, $3, 'transcribe', 'tiny.en', 60, 2)",
    )
    .bind(Uuid::new_v4())
    .bind(dave_id)
    .bind(ids[0])
    .execute(&pg)
    .await
    .unwrap();

    // A user cannot delete accounts; the admin deletes dave, with the drill after two files.
    let (s, v) = env
        .call(
            "DELETE",
            &format!("/v1/users/{dave_id}"),
            Some(&dave_token),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (s, v) = env
        .call(
            "DELETE",
            &format!("/v1/users/{dave_id}?stall_after=2"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["kind"], "delete_user", "{v}");
    let job = v["id"].as_str().unwrap().to_string();

    // At once: the account, its token and its files are gone from the API.
    let (s, _) = env.get(&format!("/v1/users/{dave_id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env.call("GET", "/v1/me", Some(&dave_token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, list) = env.get("/v1/users?limit=500").await;
    assert!(!list.to_string().contains(&dave_id.to_string()), "{list}");
    for id in &ids {
        let (s, _) = env.get(&format!("/v1/files/{id}")).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "a file of a deleted user is not served"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while !env.log("worker-w1.log").contains("user deletion stalled") {
        assert!(
            Instant::now() < deadline,
            "no stall; logs in {}",
            env.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.signal(w1, "-KILL");
    let p = presence(&env, &pg, &ids).await;
    assert_eq!(p.rows.len(), 4, "2 of 6 deleted before the kill");
    assert_eq!(p.tombstoned.len(), 4, "the rest hidden");
    assert_eq!(p.objects.len(), 3, "one file's object went before the kill");
    let (s, _) = env.get(&format!("/v1/files/{kept}")).await;
    assert_eq!(s, StatusCode::OK, "carol's file is untouched");

    // Another worker takes the job over and finishes it.
    env.worker("w2", &["--lease-seconds", "3"]);
    let j = env.wait_ended(&job, Duration::from_secs(120)).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["attempts"], 2, "{j}");
    assert_eq!(j["result"]["files_deleted"], 4, "{j}");
    assert_eq!(j["result"]["usage_rows_detached"], 1, "{j}");
    let p = presence(&env, &pg, &ids).await;
    assert!(p.rows.is_empty() && p.objects.is_empty() && p.docs.is_empty());
    let p = presence(&env, &pg, &[kept]).await;
    assert_eq!((p.rows.len(), p.objects.len(), p.docs.len()), (1, 1, 1));
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users WHERE id = $1), \
                (SELECT count(*) FROM api_tokens WHERE user_id = $1), \
                (SELECT count(*) FROM usage_records WHERE owner IS NULL AND file_id = $2)",
    )
    .bind(dave_id)
    .bind(ids[0])
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(
        left,
        (0, 0, 1),
        "account and tokens gone, usage kept and detached"
    );
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE target = $1 AND action LIKE 'admin.user.delete%' ORDER BY id",
    )
    .bind(dave_id.to_string())
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(audited, ["admin.user.delete", "admin.user.deleted"]);
}
