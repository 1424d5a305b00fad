//! Search and maintenance end to end, on the real binaries, real Redis and PostgreSQL, and the
//! embedded index: transcripts of espeak-ng recordings become searchable (text and vectors,
//! scoped to their owner); planted orphans are found and cleaned by the integrity check; a
//! stop ends a reindex within seconds; a speaker removed from the index is repaired; a v3 → v4
//! migration survives a kill -9 of its worker, loses nothing, finalizes and rolls back.
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ADMIN, Env, run_tool};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use voxfleet_search::{SearchIndex, speakers_index};

fn speak(dir: &Path, name: &str, voice: &str, text: &str) -> PathBuf {
    let raw = dir.join(format!("{name}-raw.wav"));
    run_tool(
        Command::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-w"])
            .arg(&raw)
            .arg(text),
    );
    let out = dir.join(format!("{name}.wav"));
    run_tool(
        Command::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16"])
            .arg(&out),
    );
    out
}

/// Two voices taking turns, as one WAV.
fn dialogue(dir: &Path, name: &str, lines: &[(&str, &str)]) -> PathBuf {
    let gap = dir.join("gap.wav");
    if !gap.exists() {
        run_tool(
            Command::new("sox")
                .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
                .arg(&gap)
                .args(["trim", "0", "0.6"]),
        );
    }
    let mut parts = Vec::new();
    for (i, (voice, text)) in lines.iter().enumerate() {
        parts.push(speak(dir, &format!("{name}-{i}"), voice, text));
        parts.push(gap.clone());
    }
    let out = dir.join(format!("{name}.wav"));
    run_tool(Command::new("sox").args(&parts).arg(&out));
    out
}

async fn upload(env: &Env, token: &str, path: &Path, process: &str) -> (String, Vec<String>) {
    let (s, v) = env.upload(token, path, Some(process)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let jobs = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap().to_owned())
        .collect();
    (v["id"].as_str().unwrap().to_owned(), jobs)
}

async fn succeeded(env: &Env, job: &str) -> Value {
    let j = env.wait_ended(job, Duration::from_secs(300)).await;
    assert_eq!(
        j["status"],
        "succeeded",
        "{j}\nlogs in {}",
        env.logs.display()
    );
    j
}

/// Waits until PostgreSQL says every indexable file's documents are current and no reindex
/// job is left to run (a follow-up reindex, e.g. after voiceprints were extracted, may still
/// be queued for a file PostgreSQL already counts as indexed).
async fn wait_indexed(env: &Env, files: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (s, v) = env.get("/v1/jobs?kind=reindex&limit=500").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let busy = v["jobs"].as_array().unwrap().iter().any(|j| {
            !matches!(
                j["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        });
        if busy {
            assert!(Instant::now() < deadline, "reindex jobs still running: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let (s, v) = env.get("/v1/admin/search").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["counts"]["indexed"] == files && v["counts"]["pending"] == 0 {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "files not indexed: {v}\nlogs in {}",
            env.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a maintenance section's run has ended; returns the section view.
async fn wait_section(env: &Env, path: &str, pick: impl Fn(&Value) -> Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (s, v) = env.get(path).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let run = pick(&v);
        let state = run["state"].as_str().unwrap_or("");
        if !matches!(state, "running" | "queued" | "") {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still running: {v}\nlogs in {}",
            env.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn search(env: &Env, token: &str, q: &str) -> Value {
    let (s, v) = env
        .call(
            "GET",
            &format!("/v1/search?q={}", q.replace(' ', "+")),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn hit_files(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["file_id"].as_str().unwrap().to_owned())
        .collect()
}

fn index_report<'a>(report: &'a Value, index: &str) -> &'a Value {
    report["indices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["index"] == index)
        .unwrap_or_else(|| panic!("no {index} in {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn transcripts_are_searchable_scoped_checked_and_reindexable() {
    let mut env = Env::start().await;
    env.worker("speech", &["--queues", "gpu", "--concurrency", "2"]);
    let alice = env.mint_token("user");
    let bob = env.mint_token("user");
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let a = dialogue(
        &dir,
        "budget",
        &[
            (
                "en-us",
                "The quarterly budget review covers marketing spend and hiring plans.",
            ),
            (
                "en-us+f3",
                "We should cut the travel budget and invest in the new accounting software.",
            ),
        ],
    );
    let b = dialogue(
        &dir,
        "hiking",
        &[
            ("en-us", "Our hiking trip to the mountains starts at dawn."),
            (
                "en-us+f3",
                "Bring warm boots, a rain jacket and plenty of water for the trail.",
            ),
        ],
    );
    let (fa, ja) = upload(&env, &alice, &a, "transcribe,diarize").await;
    let (fb, jb) = upload(&env, &bob, &b, "transcribe,diarize").await;
    for j in ja.iter().chain(&jb) {
        succeeded(&env, j).await;
    }
    // Each finished transcription and diarization queued a reindex of its file.
    let status = wait_indexed(&env, 2).await;
    assert_eq!(status["health"], "ok", "{status}");
    assert!(
        status["counts"]["chunks"].as_i64().unwrap() >= 2,
        "{status}"
    );

    // Text ranking, scoped: alice finds her file, bob does not see it, an admin does.
    let r = search(&env, &alice, "budget").await;
    assert_eq!(r["mode"], "hybrid", "{r}");
    let files = hit_files(&r);
    assert_eq!(files.first(), Some(&fa), "{r}");
    assert!(!files.contains(&fb), "alice must not see bob's file: {r}");
    let hit = &r["hits"][0];
    assert!(hit["text_rank"] == 1, "{r}");
    assert!(
        hit["snippet"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("budget"),
        "{r}"
    );
    assert!(
        hit["end_s"].as_f64().unwrap() > hit["start_s"].as_f64().unwrap(),
        "{r}"
    );
    assert!(!hit["speakers"].as_array().unwrap().is_empty(), "{r}");
    let r = search(&env, &bob, "budget").await;
    assert!(
        !hit_files(&r).contains(&fa),
        "bob must not see alice's file: {r}"
    );
    let r = search(&env, ADMIN, "mountain trail").await;
    assert_eq!(hit_files(&r).first(), Some(&fb), "{r}");
    // Vector ranking: no word in common with the transcript, same meaning.
    let r = search(&env, ADMIN, "money finances expenses").await;
    assert_eq!(hit_files(&r).first(), Some(&fa), "{r}");
    assert_eq!(r["hits"][0]["vector_rank"], 1, "{r}");
    // Bad queries are 400s.
    let (s, v) = env.call("GET", "/v1/search?q=", Some(ADMIN), None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    // Admin sections are admin-only.
    let (s, _) = env
        .call("GET", "/v1/admin/search", Some(&alice), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env
        .call(
            "POST",
            "/v1/admin/integrity/check",
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Orphans: bob's rows vanish from PostgreSQL behind the index's back.
    let pg = env.pg().await;
    let bob_speakers: i64 = sqlx::query_scalar("SELECT count(*) FROM speakers WHERE file_id = $1")
        .bind(Uuid::parse_str(&fb).unwrap())
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(bob_speakers, 2);
    let (_, before) = env.get("/v1/admin/integrity").await;
    sqlx::query("DELETE FROM files WHERE id = $1")
        .bind(Uuid::parse_str(&fb).unwrap())
        .execute(&pg)
        .await
        .unwrap();
    let (s, v) = env.post("/v1/admin/integrity/check", json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let run = wait_section(&env, "/v1/admin/integrity", |v| v["check"].clone()).await;
    assert_eq!(run["state"], "completed", "{run}");
    let chunks = index_report(&run["report"], "transcript_chunks");
    let bob_chunks = before["indices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["index"] == "transcript_chunks")
        .unwrap()["docs"]
        .as_u64()
        .unwrap()
        - 1;
    assert!(chunks["orphans"].as_u64().unwrap() >= 1, "{run}");
    assert_eq!(chunks["orphans"], chunks["cleaned"], "{run}");
    assert!(
        chunks["orphans"].as_u64().unwrap() <= bob_chunks.max(1),
        "{run}"
    );
    let v4 = index_report(&run["report"], "speakers_v4");
    assert_eq!(v4["orphans"], 2, "{run}");
    assert_eq!(v4["cleaned"], 2, "{run}");
    assert_eq!(run["report"]["references"]["files"], 1, "{run}");
    assert_eq!(run["report"]["references"]["speakers"], 2, "{run}");
    // A second check finds nothing; alice's documents were never touched.
    env.post("/v1/admin/integrity/check", json!({})).await;
    let run = wait_section(&env, "/v1/admin/integrity", |v| v["check"].clone()).await;
    assert_eq!(run["report"]["orphans"], 0, "{run}");
    assert_eq!(
        hit_files(&search(&env, ADMIN, "budget").await).first(),
        Some(&fa)
    );

    // A big pending corpus (transcripts planted in PostgreSQL), then reindex all and stop it.
    let mut tx = pg.begin().await.unwrap();
    for i in 0..300 {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO files (id, owner, filename, size_bytes, sha256, storage_key, transcribed_at) \
             VALUES ($1, NULL, $2, 1, 'x', $3, now())",
        )
        .bind(id)
        .bind(format!("planted-{i}.wav"))
        .bind(format!("planted/{id}"))
        .execute(&mut *tx)
        .await
        .unwrap();
        let words: Vec<String> = (0..10)
            .map(|w| format!("word{} topic{}", (w * 7 + i) % 97, i % 13))
            .collect();
        sqlx::query(
            "INSERT INTO transcript_segments (file_id, idx, start_s, end_s, text, avg_logprob, \
             no_speech_prob, temperature, compression_ratio, language) \
             VALUES ($1, 0, 0, 120, $2, 0, 0, 0, 1, 'en')",
        )
        .bind(id)
        .bind(words.join(" "))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let (s, v) = env
        .post("/v1/admin/search/reindex", json!({"mode": "all"}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job = v["job"]["id"].as_str().unwrap().to_owned();
    // A second start while it runs is refused.
    let (s, v) = env
        .post("/v1/admin/search/reindex", json!({"mode": "pending"}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_running")),
        "{v}"
    );
    // The job's event stream, read while it is stopped: a `stopped` event comes before the
    // final `cancelled` status.
    let events_path = format!("/v1/jobs/{job}/events");
    let watch = common::read_events(&env, &events_path, Duration::from_secs(120), |v| {
        v["status"] == "cancelled"
    });
    let stop = async {
        env.wait_job(&job, Duration::from_secs(120), |j| {
            j["progress"]["done"].as_u64().unwrap_or(0) >= 8
        })
        .await;
        let asked = Instant::now();
        let (s, v) = env.post("/v1/admin/search/reindex/stop", json!({})).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let j = env.wait_ended(&job, Duration::from_secs(60)).await;
        (asked.elapsed(), j)
    };
    let (events, (took, j)) = tokio::join!(watch, stop);
    assert_eq!(j["status"], "cancelled", "{j}");
    assert!(took < Duration::from_secs(15), "stop took {took:?}");
    let stopped = events
        .iter()
        .find(|(name, _)| name == "stopped")
        .unwrap_or_else(|| panic!("no stopped event in {events:?}"));
    assert!(
        stopped.1["progress"]["done"].as_u64().unwrap() >= 8,
        "{stopped:?}"
    );
    let (_, st) = env.get("/v1/admin/search").await;
    let run = &st["reindex"];
    assert_eq!(run["state"], "stopped", "{st}");
    let done = run["report"]["files_done"].as_u64().unwrap();
    assert!((8..301).contains(&done), "{st}");
    assert!(st["counts"]["pending"].as_i64().unwrap() > 0, "{st}");
    assert_eq!(st["health"], "needs_repair", "{st}");
    println!("reindex stopped {took:?} after the request, {done} of 301 files done");

    // Pending picks up the rest and only the rest.
    let (s, v) = env
        .post("/v1/admin/search/reindex", json!({"mode": "pending"}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let run = wait_section(&env, "/v1/admin/search", |v| v["reindex"].clone()).await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(
        run["report"]["files_total"].as_u64().unwrap(),
        301 - done,
        "{run}"
    );
    let st = wait_indexed(&env, 301).await;
    assert_eq!(st["health"], "ok", "{st}");
    assert_eq!(
        st["index_chunks"].as_i64(),
        st["counts"]["chunks"].as_i64(),
        "{st}"
    );

    // The model is a setting: a change needs a confirmation and rebuilds everything.
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/search",
            Some(ADMIN),
            Some(json!({"model": "all-minilm-l6-v2"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("confirmation_required")),
        "{v}"
    );
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/search",
            Some(ADMIN),
            Some(json!({"model": "nope"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = env
        .call(
            "PUT",
            "/v1/settings/search",
            Some(ADMIN),
            Some(json!({"model": "all-minilm-l6-v2", "confirm": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reindex"]["job"]["input"]["recreate"], true, "{v}");
    let run = wait_section(&env, "/v1/admin/search", |v| v["reindex"].clone()).await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["report"]["files_total"], 301, "{run}");
    let st = wait_indexed(&env, 301).await;
    assert_eq!(st["model"], "all-minilm-l6-v2", "{st}");
    assert_eq!(st["counts"]["models"], json!(["all-minilm-l6-v2"]), "{st}");
    assert_eq!(st["health"], "ok", "{st}");
    let r = search(&env, ADMIN, "money finances expenses").await;
    assert_eq!(r["model"], "all-minilm-l6-v2");
    assert_eq!(hit_files(&r).first(), Some(&fa), "{r}");
}

async fn voiceprints(pg: &sqlx::PgPool, profile: &str) -> Vec<(Uuid, Vec<f32>)> {
    sqlx::query_as(
        "SELECT speaker_id, vector FROM speaker_embeddings WHERE profile = $1 ORDER BY speaker_id",
    )
    .bind(profile)
    .fetch_all(pg)
    .await
    .unwrap()
}

/// Polls the consistency counts until the v4 profile's satisfy `pred` (10 s at most); returns
/// the last answer and its v4 entry.
async fn poll_v4(env: &Env, pred: impl Fn(&Value) -> bool) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, c) = env.get("/v1/admin/embeddings/consistency").await;
        assert_eq!(s, StatusCode::OK, "{c}");
        let v4 = c["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["profile"] == "v4")
            .unwrap()
            .clone();
        if pred(&v4) || Instant::now() > deadline {
            return (c, v4);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn migration(env: &Env) -> Value {
    let (s, v) = env.get("/v1/admin/embeddings/migration").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_are_repaired_and_migrated_through_a_killed_worker() {
    const FILES: usize = 8;
    let mut env = Env::start().await;
    let w = env.worker(
        "w1",
        &[
            "--queues",
            "gpu",
            "--concurrency",
            "2",
            "--lease-seconds",
            "3",
        ],
    );
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dialogue(
        &dir,
        "talk",
        &[
            (
                "en-us",
                "Welcome back to the show, today we talk about rivers and lakes.",
            ),
            (
                "en-us+f3",
                "Thanks for having me, I have studied river deltas for twenty years.",
            ),
            (
                "en-us",
                "What surprised you most about the way deltas grow over time?",
            ),
            (
                "en-us+f3",
                "How quickly a single flood can move the main channel by kilometres.",
            ),
        ],
    );
    let mut files = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..FILES {
        let (f, j) = upload(&env, ADMIN, &wav, "diarize,embed").await;
        files.push(f);
        jobs.extend(j);
    }
    for j in &jobs {
        succeeded(&env, j).await;
    }
    wait_indexed(&env, FILES as i64).await;
    let pg = env.pg().await;
    let v3_before = voiceprints(&pg, "v3").await;
    let v4_before = voiceprints(&pg, "v4").await;
    assert_eq!(v3_before.len(), FILES * 2);
    assert_eq!(v4_before.len(), FILES * 2);

    // Consistency: everything indexed. Then a speaker's document goes missing from the index,
    // and another loses both its document and its stored v4 voiceprint.
    let (_, c) = env.get("/v1/admin/embeddings/consistency").await;
    let v4 = c["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "v4")
        .unwrap()
        .clone();
    assert_eq!(
        (v4["indexed"].as_u64(), v4["missing"].as_u64()),
        (Some(FILES as u64 * 2), Some(0)),
        "{c}"
    );
    let (gone_doc, gone_print) = (v4_before[0].0, v4_before[1].0);
    {
        let idx = voxfleet_search::embedded::EmbeddedIndex::open(&env.index_dir()).unwrap();
        let n = idx
            .delete_docs(
                &speakers_index("v4"),
                &[gone_doc.to_string(), gone_print.to_string()],
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
    }
    sqlx::query("DELETE FROM speaker_embeddings WHERE speaker_id = $1 AND profile = 'v4'")
        .bind(gone_print)
        .execute(&pg)
        .await
        .unwrap();
    // The control plane sees another process's index writes within about a second.
    let (c, v4) = poll_v4(&env, |v4| v4["missing"] == 2).await;
    assert_eq!(v4["missing"], 2, "{c}");
    assert_eq!(v4["missing_with_voiceprint"], 1, "{c}");
    assert_eq!(v4["unrepairable"], 0, "{c}");
    let (s, v) = env
        .post("/v1/admin/embeddings/repair", json!({"profile": "v4"}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let run = wait_section(&env, "/v1/admin/embeddings/consistency", |v| {
        v["repair"].clone()
    })
    .await;
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["report"]["missing"], 2, "{run}");
    assert_eq!(run["report"]["restored_from_db"], 1, "{run}");
    assert_eq!(run["report"]["reextracted"], 1, "{run}");
    let (_, c) = env.get("/v1/admin/embeddings/consistency").await;
    let v4 = c["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "v4")
        .unwrap()
        .clone();
    assert_eq!(
        (v4["indexed"].as_u64(), v4["missing"].as_u64()),
        (Some(FILES as u64 * 2), Some(0)),
        "{c}"
    );
    assert_eq!(voiceprints(&pg, "v4").await.len(), FILES * 2);

    // A v3-era install: v3 is the active mode, no v4 voiceprint exists, the v4 index is empty.
    let (s, v) = env
        .post("/v1/admin/embeddings/migration/rollback", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["mode"], "v3", "{v}");
    sqlx::query("DELETE FROM speaker_embeddings WHERE profile = 'v4'")
        .execute(&pg)
        .await
        .unwrap();
    {
        let idx = voxfleet_search::embedded::EmbeddedIndex::open(&env.index_dir()).unwrap();
        let dim = v4_before[0].1.len();
        idx.recreate_speakers("v4", dim).await.unwrap();
    }
    let mut m = migration(&env).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while m["v4_docs"] != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = migration(&env).await;
    }
    assert_eq!(
        (m["mode"].as_str(), m["v4_docs"].as_u64()),
        (Some("v3"), Some(0)),
        "{m}"
    );
    assert_eq!(m["remaining"], FILES * 2, "{m}");
    let (s, v) = env
        .post("/v1/admin/embeddings/migration/finalize", json!({}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_finalizable")),
        "{v}"
    );

    // Start, and kill -9 the worker once part of the speakers are done.
    let (s, v) = env
        .post("/v1/admin/embeddings/migration/start", json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let job = v["run"]["job"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM speaker_embeddings WHERE profile = 'v4'")
                .fetch_one(&pg)
                .await
                .unwrap();
        if n >= 2 {
            env.signal(w, "-KILL");
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "migration made no progress; logs in {}",
            env.logs.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        at_kill < (FILES * 2) as i64,
        "the migration finished before the kill ({at_kill})"
    );
    let m = migration(&env).await;
    assert!(m["migrating"].as_bool().unwrap(), "{m}");
    // Another worker takes the job over once the dead one's lease expires, and resumes.
    env.worker("w2", &["--queues", "gpu", "--lease-seconds", "3"]);
    let j = env.wait_ended(&job, Duration::from_secs(180)).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert!(j["attempts"].as_u64().unwrap() >= 2, "{j}");
    // It resumed: the second attempt only did what the first had not.
    assert!(
        j["result"]["total"].as_i64().unwrap() <= FILES as i64 * 2 - at_kill + 2,
        "{j}"
    );
    let m = migration(&env).await;
    assert_eq!(
        (
            m["processed"].as_u64(),
            m["remaining"].as_u64(),
            m["failed"].as_u64()
        ),
        (Some(FILES as u64 * 2), Some(0), Some(0)),
        "{m}"
    );
    assert_eq!(m["v4_docs"], FILES * 2, "{m}");
    assert!(m["can_finalize"].as_bool().unwrap(), "{m}");
    // Nothing lost: every speaker has both voiceprints, the v3 ones untouched.
    assert_eq!(voiceprints(&pg, "v3").await, v3_before);
    let v4_after = voiceprints(&pg, "v4").await;
    let ids: HashSet<Uuid> = v4_after.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        ids,
        v3_before.iter().map(|(s, _)| *s).collect::<HashSet<_>>()
    );

    // Finalize: the alias swaps to v4, and voices are found across recordings through it.
    let (s, v) = env
        .post("/v1/admin/embeddings/migration/finalize", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["mode"].as_str(), v["active_profile"].as_str()),
        (Some("v4"), Some("v4")),
        "{v}"
    );
    assert_eq!(v["run"]["state"], "finalized", "{v}");
    let (_, sp) = env.get(&format!("/v1/files/{}/speakers", files[0])).await;
    let first = sp["speakers"][0]["id"].as_str().unwrap().to_owned();
    let (s, sim) = env
        .get(&format!("/v1/speakers/{first}/similar?limit=7"))
        .await;
    assert_eq!(s, StatusCode::OK, "{sim}");
    assert_eq!(sim["profile"], "v4", "{sim}");
    let hits = sim["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 7, "{sim}");
    // The same voice in the seven other copies of the recording outranks the other voice.
    for h in hits {
        assert_ne!(h["speaker_id"].as_str().unwrap(), first);
        assert!(h["score"].as_f64().unwrap() > 0.9, "{sim}");
    }
    // Rollback swaps the alias back; v3 voiceprints answer again.
    let (s, v) = env
        .post("/v1/admin/embeddings/migration/rollback", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["mode"], "v3", "{v}");
    let (s, sim) = env
        .get(&format!("/v1/speakers/{first}/similar?limit=3"))
        .await;
    assert_eq!(s, StatusCode::OK, "{sim}");
    assert_eq!(sim["profile"], "v3", "{sim}");
    let (s, v) = env
        .post("/v1/admin/embeddings/migration/launch", json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// The search settings list the models an admin may choose; PUT accepts every listed name
/// and refuses any other with `invalid_setting`.
#[tokio::test(flavor = "multi_thread")]
async fn search_settings_list_the_models_the_setting_accepts() {
    let env = Env::start().await;
    let (s, v) = env.get("/v1/settings/search").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let current = v["model"].as_str().unwrap().to_owned();
    let models = v["models"].as_array().expect("a list of models");
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.len() >= 2, "{v}");
    assert!(names.contains(&current.as_str()), "{v}");
    let defaults: Vec<&Value> = models.iter().filter(|m| m["default"] == true).collect();
    assert_eq!(defaults.len(), 1, "{v}");
    for m in models {
        assert_eq!(m["dimension"], 384, "{m}");
        assert!(!m["description"].as_str().unwrap().is_empty(), "{m}");
    }

    // Every listed name passes the setting's check: the current one changes nothing, another
    // only asks for the confirmation a model change needs (nothing is re-embedded here).
    for name in &names {
        let (s, v) = env
            .call(
                "PUT",
                "/v1/settings/search",
                Some(ADMIN),
                Some(json!({"model": name})),
            )
            .await;
        if *name == current {
            assert_eq!(s, StatusCode::OK, "{name}: {v}");
            assert!(v["reindex"].is_null(), "{name}: {v}");
        } else {
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (StatusCode::CONFLICT, Some("confirmation_required")),
                "{name}: {v}"
            );
        }
    }
    // A name not listed (an alias of the models registry included) gets the coded 422.
    for name in ["nope", "minilm", ""] {
        assert!(!names.contains(&name));
        let (s, v) = env
            .call(
                "PUT",
                "/v1/settings/search",
                Some(ADMIN),
                Some(json!({"model": name, "confirm": true})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_setting")),
            "{name}: {v}"
        );
    }
    let (_, v) = env.get("/v1/settings/search").await;
    assert_eq!(v["model"], current.as_str(), "{v}");

    // A plain user sees no settings.
    let user = env.mint_token("user");
    let (s, v) = env
        .call("GET", "/v1/settings/search", Some(&user), None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{v}"
    );
}
