//! Issue 13, the storage and submission holes, each tried as a hostile user would against the
//! real control plane (and a real worker where a job must run): registering others' objects,
//! deleting a shared object, others' known-speaker references, host path disclosure, queues and
//! priorities, model names, a half-applied failed submission, and lossy URI-to-key mapping.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Env, run_tool};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// One second of a tone (any real audio does: nothing here is transcribed).
fn tone(dir: &Path, name: &str, hz: u32) -> PathBuf {
    let out = dir.join(name);
    run_tool(
        Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(&out)
            .args(["synth", "1", "sine", &hz.to_string()]),
    );
    out
}

fn file_uri(p: &Path) -> String {
    url::Url::from_file_path(p).unwrap().to_string()
}

async fn register(env: &Env, token: &str, body: Value) -> (StatusCode, Value) {
    env.call("POST", "/v1/files", Some(token), Some(body)).await
}

async fn delete(env: &Env, token: &str, id: &str) -> StatusCode {
    env.call("DELETE", &format!("/v1/files/{id}"), Some(token), None)
        .await
        .0
}

fn audio_dir(env: &Env) -> PathBuf {
    let d = env.logs.join("audio");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Item 1: registering by URI checks the owner, not only the path; deleting a record deletes
/// an object only if the record owns it and nothing else uses it.
#[tokio::test(flavor = "multi_thread")]
async fn registering_by_uri_reaches_only_ones_own_objects() {
    let env = Env::start().await;
    let dir = audio_dir(&env);
    let wav = tone(&dir, "a.wav", 440);
    let (u1, u2) = (env.mint_token("user"), env.mint_token("user"));

    // u1's upload: its object lives in the uploads folder.
    let (s, v) = env.upload(&u1, &wav, None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let f1 = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["owns_object"], true);
    let u1_object = env.media_dir().join("files").join(&f1);
    assert!(u1_object.exists());

    // u2 (and even an admin) cannot register it: uploads belong to their records.
    for t in [&u2, &u1, &ADMIN.to_string()] {
        let (s, v) = register(&env, t, json!({"uri": file_uri(&u1_object)})).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    }

    // An object the operator put in storage and an admin registered: not a user's to take.
    let placed = env.media_dir().join("incoming").join("call.wav");
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::copy(&wav, &placed).unwrap();
    let (s, v) = register(&env, ADMIN, json!({"uri": file_uri(&placed)})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["owns_object"], false);
    let admin_file = v["id"].as_str().unwrap().to_string();
    let (s, v) = register(&env, &u2, json!({"uri": file_uri(&placed)})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    // Only admins take ownership of a registered object.
    let (s, v) = register(
        &env,
        &u2,
        json!({"uri": file_uri(&placed), "delete_with_file": true}),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");

    // u2's own folder: `users/<u2's owner id>/`.
    let (_, mine) = env.upload(&u2, &wav, None).await;
    let u2_id = mine["owner"].as_str().unwrap().to_string();
    let own = env.media_dir().join("users").join(&u2_id).join("mine.wav");
    std::fs::create_dir_all(own.parent().unwrap()).unwrap();
    std::fs::copy(&wav, &own).unwrap();
    let (s, a) = register(&env, &u2, json!({"uri": file_uri(&own)})).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (s, b) = register(&env, &u2, json!({"uri": file_uri(&own)})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // ... and not u1's.
    let (s, v) = register(&env, &u1, json!({"uri": file_uri(&own)})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");

    // An admin makes one record own that object; a second owner is refused.
    let (s, owned) = register(
        &env,
        ADMIN,
        json!({"uri": file_uri(&own), "delete_with_file": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{owned}");
    assert_eq!(owned["owns_object"], true);
    let (s, v) = register(
        &env,
        ADMIN,
        json!({"uri": file_uri(&own), "delete_with_file": true}),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "object_in_use"),
        "{v}"
    );

    // Deleting the owning record while u2's records use the object keeps it; deleting u2's
    // (not owning) records keeps it too: voxfleet never deletes a registered object it was
    // not asked to.
    assert_eq!(
        delete(&env, ADMIN, owned["id"].as_str().unwrap()).await,
        StatusCode::NO_CONTENT
    );
    assert!(own.exists(), "another record still uses the object");
    for r in [&a, &b] {
        assert_eq!(
            delete(&env, &u2, r["id"].as_str().unwrap()).await,
            StatusCode::NO_CONTENT
        );
    }
    assert!(
        own.exists(),
        "registered without delete_with_file: left alone"
    );
    assert_eq!(
        delete(&env, ADMIN, &admin_file).await,
        StatusCode::NO_CONTENT
    );
    assert!(
        placed.exists(),
        "registered without delete_with_file: left alone"
    );

    // An owning record that is the object's last user takes it along.
    let (s, last) = register(
        &env,
        ADMIN,
        json!({"uri": file_uri(&own), "delete_with_file": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{last}");
    assert_eq!(
        delete(&env, ADMIN, last["id"].as_str().unwrap()).await,
        StatusCode::NO_CONTENT
    );
    assert!(!own.exists(), "the owning record was the last user");

    // u1's upload survived all of it, and goes with u1's delete.
    assert!(u1_object.exists());
    let (s, v) = env
        .call("GET", &format!("/v1/files/{f1}"), Some(&u1), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(delete(&env, &u1, &f1).await, StatusCode::NO_CONTENT);
    assert!(!u1_object.exists());
}

/// Item 2: known speakers on upload get the same ownership check as on `POST /v1/jobs`, before
/// anything is stored, and an unknown id answers exactly like someone else's.
#[tokio::test(flavor = "multi_thread")]
async fn known_speakers_on_upload_must_be_the_callers() {
    let env = Env::start().await;
    let dir = audio_dir(&env);
    let wav = tone(&dir, "ref.wav", 300);
    let (u1, u2) = (env.mint_token("user"), env.mint_token("user"));
    let (_, r) = env.upload(&u1, &wav, None).await;
    let u1_ref = r["id"].as_str().unwrap().to_string();

    let try_upload = |reference: String| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(&wav).unwrap()).file_name("c.wav"),
            )
            .text("process", "diarize")
            .text(
                "diarize_options",
                json!({"known_speakers": [{"name": "Ann", "file_id": reference}]}).to_string(),
            );
        let (env, u2) = (&env, &u2);
        async move {
            let (s, text) = env.post_form("/v1/files", u2, form).await;
            (s, serde_json::from_str::<Value>(&text).unwrap())
        }
    };
    let (s, others) = try_upload(u1_ref.clone()).await;
    assert_eq!(
        (s, code(&others)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{others}"
    );
    let random = uuid::Uuid::now_v7().to_string();
    let (s, missing) = try_upload(random.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        others.to_string().replace(&u1_ref, "ID"),
        missing.to_string().replace(&random, "ID"),
        "someone else's file and no file answer alike"
    );
    // Nothing of the refused uploads was kept.
    let (_, l) = env.call("GET", "/v1/files", Some(&u2), None).await;
    assert_eq!(l["files"], json!([]), "{l}");
    let (_, j) = env.call("GET", "/v1/jobs", Some(&u2), None).await;
    assert_eq!(j["jobs"], json!([]), "{j}");

    // The same list through POST /v1/jobs is refused the same way (the one check).
    let (_, own) = env.upload(&u2, &wav, None).await;
    let (s, v) = env
        .call(
            "POST",
            "/v1/jobs",
            Some(&u2),
            Some(json!({"kind": "diarize", "input": {"file_id": own["id"],
                "known_speakers": [{"name": "Ann", "file_id": u1_ref}]}})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
}

/// Item 4: outside the store and missing answer alike (no probing the host's files), and no
/// error a user reads holds a host path.
#[tokio::test(flavor = "multi_thread")]
async fn host_paths_are_neither_probed_nor_shown() {
    let mut env = Env::start().await;
    let dir = audio_dir(&env);
    let wav = tone(&dir, "gone.wav", 500);
    let user = env.mint_token("user");
    let store = env.media_dir().display().to_string();

    let mut answers = Vec::new();
    for uri in [
        "file:///etc/hostname".to_string(),
        "file:///nonexistent/x.wav".to_string(),
        format!("file://{store}/../../../../etc/hostname"),
        format!("file://{store}/nothing-here.wav"),
        "s3://another-bucket/x.wav".to_string(),
    ] {
        let (s, v) = register(&env, &user, json!({"uri": uri})).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}: {v}"
        );
        assert!(!v.to_string().contains("/etc"), "{v}");
        assert!(!v.to_string().contains(&store), "{v}");
        answers.push(v);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    // A stored object that vanished: the job fails `file_missing` without the store's path.
    let (_, v) = env.upload(&user, &wav, None).await;
    let id = v["id"].as_str().unwrap().to_string();
    std::fs::remove_file(env.media_dir().join("files").join(&id)).unwrap();
    env.worker("w", &["--queues", "gpu"]);
    let (s, job) = env
        .call(
            "POST",
            "/v1/jobs",
            Some(&user),
            Some(json!({"kind": "transcribe", "input": {"file_id": id}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let done = env
        .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(60), |j| {
            j["status"] == "failed"
        })
        .await;
    assert_eq!(done["error"]["code"], "file_missing", "{done}");
    let (_, f) = env
        .call("GET", &format!("/v1/files/{id}"), Some(&user), None)
        .await;
    for text in [done.to_string(), f.to_string()] {
        assert!(
            !text.contains(&store),
            "a host path reached the user: {text}"
        );
    }
}

/// Item 6: users cannot pick queues or raise priorities; admins pick among queues that exist.
#[tokio::test(flavor = "multi_thread")]
async fn queues_and_priorities_are_the_operators() {
    let mut env = Env::start().await;
    let dir = audio_dir(&env);
    let wav = tone(&dir, "q.wav", 600);
    let user = env.mint_token("user");
    let (_, f) = env.upload(&user, &wav, None).await;
    let job = |extra: Value| {
        let mut b = json!({"kind": "transcribe", "input": {"file_id": f["id"]}});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for extra in [
        json!({"queue": "anything"}),
        json!({"queue": "gpu"}),
        json!({"priority": "high"}),
    ] {
        let (s, v) = env
            .call("POST", "/v1/jobs", Some(&user), Some(job(extra.clone())))
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{extra}: {v}"
        );
    }
    let (s, v) = env
        .call(
            "POST",
            "/v1/jobs/batch",
            Some(&user),
            Some(json!({"jobs": [job(json!({"queue": "x1"}))]})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    // Lowering one's own job is allowed.
    let (s, v) = env
        .call(
            "POST",
            "/v1/jobs",
            Some(&user),
            Some(job(json!({"priority": "low"}))),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");

    // Admins: a queue nobody serves is refused; a served one (default, or a worker's) works.
    let (s, v) = env
        .post("/v1/jobs", job(json!({"queue": "anything"})))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_queue"),
        "{v}"
    );
    let (s, v) = env
        .post("/v1/jobs", job(json!({"queue": "cpu", "priority": "high"})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    env.worker("special", &["--queues", "special"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = env.post("/v1/jobs", job(json!({"queue": "special"}))).await;
        if s == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(code(&v), "invalid_queue", "{v}");
        assert!(
            std::time::Instant::now() < deadline,
            "the worker's queue never counted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // No queue was made up along the way.
    let (_, q) = env.get("/v1/queues").await;
    let names: Vec<&str> = q["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["queue"].as_str())
        .collect();
    assert!(
        !names.contains(&"anything") && !names.contains(&"x1"),
        "{names:?}"
    );
}

/// Item 7: a model name must exist before a job is queued (the worker's cache is guarded by
/// the asr crate's `unknown_model_names_leave_no_cache_entry`).
#[tokio::test(flavor = "multi_thread")]
async fn unknown_model_names_are_refused_at_the_door() {
    let env = Env::start().await;
    let dir = audio_dir(&env);
    let wav = tone(&dir, "m.wav", 700);
    let user = env.mint_token("user");
    let (_, f) = env.upload(&user, &wav, None).await;
    for model in [
        "large-v9".to_string(),
        "m".repeat(100_000),
        "tiny.en\u{0}".into(),
    ] {
        let (s, v) = env
            .call(
                "POST",
                "/v1/jobs",
                Some(&user),
                Some(json!({"kind": "transcribe", "input": {"file_id": f["id"], "model": model}})),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            "{}",
            &v.to_string()[..v.to_string().len().min(300)]
        );
        assert!(v.to_string().len() < 2000, "the name is not echoed whole");
    }
    for model in ["tiny.en", "whisper-base", "base"] {
        let (s, v) = env
            .call(
                "POST",
                "/v1/jobs",
                Some(&user),
                Some(json!({"kind": "transcribe", "input": {"file_id": f["id"], "model": model}})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{model}: {v}");
    }
}

/// Item 8: a submission that fails leaves the file pointing at the job it had; NUL in a text
/// field is a 422 (PostgreSQL cannot store it), never a 500.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_submission_leaves_the_file_as_it_was() {
    let env = Env::start().await;
    let dir = audio_dir(&env);
    let wav = tone(&dir, "n.wav", 800);
    let user = env.mint_token("user");
    let (s, v) = env.upload(&user, &wav, Some("transcribe")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (id, first) = (v["id"].clone(), v["jobs"][0].clone());
    assert_eq!(v["transcription_job_id"], first);

    for input in [
        json!({"file_id": id, "prompt": "a\u{0}b"}),
        json!({"file_id": id, "language": "e\u{0}"}),
        json!({"file_id": id, "prompt": "x", "\u{0}": 1}),
    ] {
        let (s, v) = env
            .call(
                "POST",
                "/v1/jobs",
                Some(&user),
                Some(json!({"kind": "transcribe", "input": input})),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            "{v}"
        );
    }
    let (s, v) = env
        .call(
            "POST",
            "/v1/jobs",
            Some(&user),
            Some(json!({"kind": "transcribe", "input": {"file_id": id},
                        "idempotency_key": "k\u{0}"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{v}"
    );
    let (_, f) = env
        .call(
            "GET",
            &format!("/v1/files/{}", id.as_str().unwrap()),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(f["transcription_job_id"], first, "{f}");
    assert_eq!(f["status"], "queued", "the first job still stands: {f}");
    let (_, j) = env.call("GET", "/v1/jobs", Some(&user), None).await;
    assert_eq!(j["jobs"].as_array().unwrap().len(), 1, "{j}");
}

/// Item 11: a URI names exactly one key: `%` in a key works (no double encoding), and a path
/// that is not UTF-8 is refused instead of being mapped to another object.
#[tokio::test(flavor = "multi_thread")]
async fn uris_map_to_exactly_the_key_they_name() {
    let env = Env::start().await;
    let dir = audio_dir(&env);
    let wav = tone(&dir, "k.wav", 900);
    let other = tone(&dir, "other.wav", 1000);
    let user = env.mint_token("user");
    let (_, v) = env.upload(&user, &wav, None).await;
    let owner = v["owner"].as_str().unwrap().to_string();
    let folder = env.media_dir().join("users").join(&owner);
    std::fs::create_dir_all(folder.join("calls")).unwrap();

    // `a%20b c.wav` on disk: its URI is `a%2520b%20c.wav`.
    let odd = folder.join("calls").join("a%20b c.wav");
    std::fs::copy(&wav, &odd).unwrap();
    // A decoy at the name a double-decoding mapper would land on.
    std::fs::copy(&other, folder.join("calls").join("a b c.wav")).unwrap();
    let (s, v) = register(&env, &user, json!({"uri": file_uri(&odd)})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["filename"], "a%20b c.wav");
    assert_eq!(v["size_bytes"], std::fs::metadata(&odd).unwrap().len());
    let want = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&odd).unwrap()))
    };
    assert_eq!(v["sha256"], want, "the very object named");

    // Not UTF-8: a 422, not the object at the name without that segment.
    use std::os::unix::ffi::OsStrExt;
    let latin1 = folder
        .join("calls")
        .join(std::ffi::OsStr::from_bytes(b"\xff"));
    std::fs::create_dir_all(&latin1).unwrap();
    std::fs::copy(&wav, latin1.join("x.wav")).unwrap();
    std::fs::copy(&other, folder.join("calls").join("x.wav")).unwrap();
    let uri = format!("{}/calls/%FF/x.wav", file_uri(&folder));
    let (s, v) = register(&env, &user, json!({"uri": uri})).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{uri}: {v}"
    );
}
