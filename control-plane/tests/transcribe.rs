//! Transcription end to end: real speech generated with espeak-ng, converted with ffmpeg to
//! every supported container, uploaded to the real control plane, transcribed by the real
//! worker with tiny.en (models from `voxfleet-worker models fetch`), checked by word error
//! rate; bad inputs fail with their codes after one attempt; files are private and deletable.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ADMIN, Env, files_under, run_tool};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use voxfleet_asr::wer::word_error_rate;

const SPOKEN: &str = "The quick brown fox jumps over the lazy dog. \
    Speech recognition runs on the worker fleet.";

/// tiny.en on espeak-ng's voice gets most words (measured 0.19–0.38 here, the misses being
/// words like "brown fox" → "roundfoc"); a broken pipeline (wrong rate, channels mixed wrongly,
/// bad mel or decoding) scores near 1.0.
const MAX_WER: f64 = 0.45;

/// Speech as a WAV (espeak-ng's 22.05 kHz mono).
fn speech_wav(dir: &Path, text: &str) -> PathBuf {
    let out = dir.join("speech.wav");
    run_tool(
        Command::new("espeak-ng")
            .args(["-s", "150", "-w"])
            .arg(&out)
            .arg(text),
    );
    out
}

/// Converts with ffmpeg (`args` choose the codec).
fn convert(src: &Path, dst: &Path, args: &[&str]) {
    run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(src)
            .args(args)
            .arg(dst),
    );
}

async fn upload(env: &Env, token: &str, path: &Path, process: bool) -> (StatusCode, Value) {
    env.upload(token, path, process.then_some("transcribe"))
        .await
}

/// Waits until the file's transcription job has ended; returns the job.
async fn wait_file_job(env: &Env, file: &Value) -> Value {
    let job = file["jobs"][0].as_str().expect("a queued job").to_string();
    env.wait_ended(&job, Duration::from_secs(240)).await
}

fn transcribe_worker(env: &mut Env, name: &str, extra: &[&str]) {
    let mut args = vec!["--queues", "gpu", "--preload"];
    args.extend_from_slice(extra);
    env.worker(name, &args);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_container_transcribes_close_to_the_spoken_text() {
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "asr", &[]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);
    let variants: Vec<(&str, Vec<&str>)> = vec![
        (
            "stereo-44k.wav",
            vec!["-ac", "2", "-ar", "44100", "-c:a", "pcm_s16le"],
        ),
        ("speech.flac", vec!["-c:a", "flac"]),
        ("speech.mp3", vec!["-c:a", "libmp3lame", "-b:a", "64k"]),
        ("speech.ogg", vec!["-c:a", "libvorbis"]),
        ("speech.m4a", vec!["-c:a", "aac", "-b:a", "96k"]),
    ];
    let mut files = vec![wav.clone()];
    for (name, args) in &variants {
        let dst = dir.join(name);
        convert(&wav, &dst, args);
        files.push(dst);
    }
    let mut uploaded = Vec::new();
    for f in &files {
        let (s, v) = upload(&env, ADMIN, f, true).await;
        assert_eq!(s, StatusCode::CREATED, "{}: {v}", f.display());
        assert!(
            v["duration_s"].as_f64().unwrap() > 3.0,
            "probed duration: {v}"
        );
        assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
        uploaded.push((f.clone(), v));
    }
    for (f, v) in &uploaded {
        let job = wait_file_job(&env, v).await;
        assert_eq!(job["status"], "succeeded", "{}: {job}", f.display());
        let id = v["id"].as_str().unwrap();
        assert_eq!(job["result"]["file_id"], id, "the job links its file");
        let (s, file) = env.get(&format!("/v1/files/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(file["status"], "transcribed", "{file}");
        assert_eq!(
            file["transcription_job_id"], job["id"],
            "the file links its job"
        );
        assert_eq!(file["language"], "en");
        let text = env
            .text_auth(&format!("/v1/files/{id}/transcript?format=txt"))
            .await;
        let wer = word_error_rate(SPOKEN, &text);
        println!("{}: WER {wer:.3}: {text}", f.display());
        assert!(wer <= MAX_WER, "{}: WER {wer} for `{text}`", f.display());
    }

    // The other renderings of one transcript.
    let id = uploaded[0].1["id"].as_str().unwrap();
    let srt = env
        .text_auth(&format!("/v1/files/{id}/transcript?format=srt"))
        .await;
    assert!(srt.starts_with("1\n00:00:0"), "{srt}");
    let vtt = env
        .text_auth(&format!("/v1/files/{id}/transcript?format=vtt"))
        .await;
    assert!(vtt.starts_with("WEBVTT\n\n00:00:0"), "{vtt}");
    let (s, j) = env.get(&format!("/v1/files/{id}/transcript")).await;
    assert_eq!(s, StatusCode::OK);
    let segs = j["segments"].as_array().unwrap();
    assert!(!segs.is_empty());
    let dur = uploaded[0].1["duration_s"].as_f64().unwrap();
    for s in segs {
        let (a, b) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(
            0.0 <= a && a < b && b <= dur + 0.5,
            "segment times {s} in {dur} s"
        );
    }

    // Usage: the minutes of all six files, recorded once each.
    let (_, u) = env.get("/v1/usage").await;
    assert_eq!(u["jobs"], 6, "{u}");
    let probed: f64 = uploaded
        .iter()
        .map(|(_, v)| v["duration_s"].as_f64().unwrap())
        .sum();
    assert!(
        (u["audio_seconds"].as_f64().unwrap() - probed).abs() < 1.5,
        "{u} vs {probed}"
    );

    // Listing with a status filter, newest first.
    let (_, l) = env.get("/v1/files?status=transcribed&limit=4").await;
    assert_eq!(l["files"].as_array().unwrap().len(), 4);
    assert!(l["next_cursor"].is_string());

    // The worker loaded the model once and says so in its heartbeat.
    let (_, w) = env.get("/v1/workers").await;
    let models = &w["workers"][0]["models"];
    assert!(
        models.as_array().is_some_and(|m| m.iter().any(|m| m["name"]
            .as_str()
            .is_some_and(|n| n.contains("tiny.en"))
            && m["bytes"].as_u64().unwrap_or(0) > 10_000_000)),
        "{w}"
    );
    let log = env.log("worker-asr.log");
    assert_eq!(log.matches("models preloaded").count(), 1, "{log}");
}

/// A transcription job may ask for batched decoding (`"batched": true`): the worker decodes
/// the VAD chunks together, without timestamps, and the transcript is as right; a value that
/// is not a boolean is refused before anything is queued.
#[tokio::test(flavor = "multi_thread")]
async fn a_batched_job_transcribes_its_vad_chunks() {
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "batched", &[]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);
    let (s, file) = upload(&env, ADMIN, &wav, false).await;
    assert_eq!(s, StatusCode::CREATED, "{file}");
    let id = file["id"].as_str().unwrap();
    let (s, v) = env
        .post(
            "/v1/jobs",
            json!({"kind": "transcribe", "input": {"file_id": id, "batched": "yes"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, job) = env
        .post(
            "/v1/jobs",
            json!({"kind": "transcribe", "input": {"file_id": id, "batched": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let job = env
        .wait_ended(job["id"].as_str().unwrap(), Duration::from_secs(240))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let text = env
        .text_auth(&format!("/v1/files/{id}/transcript?format=txt"))
        .await;
    let wer = word_error_rate(SPOKEN, &text);
    println!("batched: WER {wer:.3}: {text}");
    assert!(wer <= MAX_WER, "WER {wer} for `{text}`");
    let log = env.log("worker-batched.log");
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_audio_fails_once_with_its_code_and_silence_has_no_segments() {
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "asr", &["--max-audio-seconds", "20"]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);

    let empty = dir.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.join("notes.wav");
    std::fs::write(
        &text,
        "this is not audio at all, just some words\n".repeat(50),
    )
    .unwrap();
    // An Ogg/Vorbis file whose headers are intact and whose audio pages are scrambled.
    let ogg = dir.join("speech.ogg");
    convert(&wav, &ogg, &["-c:a", "libvorbis"]);
    let corrupt = dir.join("corrupt.ogg");
    let mut bytes = std::fs::read(&ogg).unwrap();
    let mut x = 0x1234_5678u32;
    for b in &mut bytes[4096..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&corrupt, &bytes).unwrap();
    let long = dir.join("long.flac");
    run_tool(
        Command::new("sox")
            .arg(&wav)
            .arg(&long)
            .args(["repeat", "8"]),
    );
    let silence = dir.join("silence.wav");
    run_tool(
        Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1"])
            .arg(&silence)
            .args(["trim", "0", "12"]),
    );

    let cases = [
        (&empty, Some("empty_audio")),
        (&text, Some("unsupported_format")),
        (&corrupt, Some("corrupt_audio")),
        (&long, Some("too_long")),
        (&silence, None),
    ];
    for (path, code) in cases {
        let (s, v) = upload(&env, ADMIN, path, true).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let job = wait_file_job(&env, &v).await;
        let id = v["id"].as_str().unwrap();
        let (_, file) = env.get(&format!("/v1/files/{id}")).await;
        match code {
            Some(code) => {
                assert_eq!(job["status"], "failed", "{}: {job}", path.display());
                assert_eq!(job["error"]["code"], code, "{}: {job}", path.display());
                assert_eq!(job["attempts"], 1, "bad input is not retried: {job}");
                assert_eq!(file["status"], "failed", "{file}");
                assert_eq!(file["error"]["code"], code, "{file}");
            }
            None => {
                assert_eq!(job["status"], "succeeded", "{job}");
                assert_eq!(job["result"]["segments"], 0, "silence: {job}");
                assert_eq!(file["status"], "transcribed");
            }
        }
    }
    // The worker is still there and still works.
    let (_, v) = upload(&env, ADMIN, &wav, true).await;
    assert_eq!(wait_file_job(&env, &v).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_private_limited_registered_and_deleted_with_their_object() {
    let mut env = Env::start().await;
    env.cp_env
        .push(("VOXFLEET_MAX_UPLOAD_BYTES".into(), "1000000".into()));
    env.restart_control_plane().await;
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);
    let user = env.mint_token("user");
    let other = env.mint_token("user");

    // Upload without processing: status uploaded, no job.
    let (s, v) = upload(&env, &user, &wav, false).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "uploaded");
    assert_eq!(v["jobs"], json!([]));
    let id = v["id"].as_str().unwrap().to_string();
    let sha = sha256_hex(&wav);
    assert_eq!(v["sha256"], sha);

    // Another user sees nothing of it.
    let (s, _) = env
        .call("GET", &format!("/v1/files/{id}"), Some(&other), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, l) = env.call("GET", "/v1/files", Some(&other), None).await;
    assert_eq!(l["files"], json!([]));
    let (s, _) = env
        .call(
            "POST",
            "/v1/jobs",
            Some(&other),
            Some(json!({"kind": "transcribe", "input": {"file_id": id}})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no transcribing others' files");
    let (s, t) = env
        .call(
            "GET",
            &format!("/v1/files/{id}/transcript"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(
        (s, t["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_ready"))
    );

    // Over the limit: 413, and nothing stored.
    let big = dir.join("big.wav");
    run_tool(
        Command::new("sox")
            .arg(&wav)
            .arg(&big)
            .args(["repeat", "5"]),
    );
    let before = files_under(&env.media_dir()).len();
    // The control plane refuses an over-limit Content-Length before looking at the token
    // (`extract::early_limit`), but reads a body this small to its end first, so the client
    // is not still sending when the connection closes (a client that is gets a reset and
    // drops the answer: this test failed three tries in a row that way before the drain).
    // security_limits.rs checks the answer to huge bodies on a raw socket. The tries stay as
    // a margin; each is asserted below only if an answer came back.
    let mut answer = None;
    for attempt in 1..=3 {
        let form = Form::new().part(
            "file",
            Part::bytes(std::fs::read(&big).unwrap()).file_name("big.wav"),
        );
        match env
            .http
            .post(format!("{}/v1/files", env.base))
            .bearer_auth(&user)
            .multipart(form)
            .send()
            .await
        {
            Ok(res) => {
                let status = res.status();
                answer = Some((status, res.json::<Value>().await.unwrap_or(Value::Null)));
                break;
            }
            Err(e) => eprintln!("over-limit upload, try {attempt}: no answer ({e})"),
        }
    }
    let (s, v) = answer.expect("three over-limit uploads ended without an answer");
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "file_too_large");
    assert_eq!(
        files_under(&env.media_dir()).len(),
        before,
        "nothing kept of a refused upload"
    );

    // Register an object already in storage by URI: a user from its own folder
    // (`users/<owner id>/`); outside the store is refused like a missing object.
    let (_, mine) = env
        .call("GET", &format!("/v1/files/{id}"), Some(&user), None)
        .await;
    let owner = mine["owner"].as_str().unwrap().to_string();
    let placed = env.media_dir().join("users").join(&owner).join("call.wav");
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::copy(&wav, &placed).unwrap();
    let (s, v) = env
        .call(
            "POST",
            "/v1/files",
            Some(&user),
            Some(json!({"uri": format!("file://{}", placed.display())})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["filename"], "call.wav");
    assert_eq!(v["sha256"], sha);
    assert_eq!(
        v["owns_object"], false,
        "a registered object stays the platform's"
    );
    let (s, v) = env
        .call(
            "POST",
            "/v1/files",
            Some(&user),
            Some(json!({"uri": format!("file://{}", wav.display())})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{v}"
    );

    // Delete: rows and the stored object go; a second delete is a 404.
    let stored = files_under(&env.media_dir()).len();
    let (s, _) = env
        .call("DELETE", &format!("/v1/files/{id}"), Some(&user), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(files_under(&env.media_dir()).len(), stored - 1);
    let (s, _) = env
        .call("GET", &format!("/v1/files/{id}"), Some(&user), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env
        .call("DELETE", &format!("/v1/files/{id}"), Some(&user), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

async fn openai(env: &Env, fields: &[(&str, &str)], file: Option<&Path>) -> (StatusCode, String) {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    if let Some(f) = file {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        form = form.part(
            "file",
            Part::bytes(std::fs::read(f).unwrap()).file_name(name),
        );
    }
    // Waited for: a transcription on 2 busy cores can pass the client's 30 s.
    env.post_form_within(
        "/v1/audio/transcriptions",
        ADMIN,
        form,
        Duration::from_secs(300),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_compatible_endpoint_answers_in_openai_shapes() {
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "asr", &[]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);

    let (s, body) = openai(&env, &[("model", "whisper-1")], Some(&wav)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(word_error_rate(SPOKEN, text) <= MAX_WER, "{text}");
    assert!(v["usage"]["seconds"].as_u64().unwrap() >= 3, "{v}");

    let (s, body) = openai(
        &env,
        &[
            ("model", "whisper-1"),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "segment"),
            ("language", "en"),
            ("temperature", "0"),
        ],
        Some(&wav),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["language"], "english");
    assert!(v["duration"].as_f64().unwrap() > 3.0);
    let seg = &v["segments"][0];
    for k in [
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    ] {
        assert!(!seg[k].is_null(), "segment field {k}: {v}");
    }

    for (format, prefix) in [("text", ""), ("srt", "1\n00:00:0"), ("vtt", "WEBVTT")] {
        let (s, body) = openai(
            &env,
            &[("model", "tiny.en"), ("response_format", format)],
            Some(&wav),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{format}: {body}");
        assert!(body.starts_with(prefix), "{format}: {body}");
        if format == "text" {
            assert!(word_error_rate(SPOKEN, &body) <= MAX_WER, "{body}");
        }
    }

    // Errors in OpenAI's format.
    let err =
        |body: &str| -> Value { serde_json::from_str::<Value>(body).unwrap()["error"].clone() };
    let (s, body) = openai(&env, &[("model", "whisper-1")], None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        (err(&body)["type"].as_str(), err(&body)["param"].as_str()),
        (Some("invalid_request_error"), Some("file"))
    );
    let (s, body) = openai(&env, &[("model", "gpt-9")], Some(&wav)).await;
    assert_eq!(
        (s, err(&body)["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("model_not_found"))
    );
    let (s, body) = openai(
        &env,
        &[("model", "whisper-1"), ("response_format", "xml")],
        Some(&wav),
    )
    .await;
    assert_eq!(
        (s, err(&body)["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("response_format"))
    );
    let junk = dir.join("junk.mp3");
    std::fs::write(&junk, "not audio ".repeat(300)).unwrap();
    let (s, body) = openai(&env, &[("model", "whisper-1")], Some(&junk)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(err(&body)["code"], "unsupported_format");
    let (s, body) = env
        .call("POST", "/v1/audio/transcriptions", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
}

/// The Python with the official OpenAI SDK (scripts/tools.sh installs it); fails the test
/// when it is missing.
fn sdk_python() -> String {
    let python = std::env::var("VOXFLEET_OPENAI_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/voxfleet/venv-openai/bin/python",
            std::env::var("HOME").unwrap()
        )
    });
    assert!(
        Path::new(&python).exists(),
        "{python} missing: run scripts/tools.sh (it installs the OpenAI SDK)"
    );
    python
}

/// Runs `scripts/checks/<script>` with the SDK against `env` (base URL and token first, then
/// `files`); its JSON output.
async fn run_sdk(python: String, env: &Env, script: &str, files: Vec<PathBuf>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/checks")
        .join(script);
    let base = format!("{}/v1", env.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([base.as_str(), ADMIN])
            .args(&files)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The official OpenAI Python SDK (installed by scripts/tools.sh) against this server.
#[tokio::test(flavor = "multi_thread")]
async fn the_official_openai_sdk_transcribes_through_voxfleet() {
    let python = sdk_python();
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "asr", &[]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);
    let v = run_sdk(python, &env, "openai_sdk.py", vec![wav]).await;
    for k in ["json", "text"] {
        let t = v[k].as_str().unwrap();
        assert!(word_error_rate(SPOKEN, t) <= MAX_WER, "{k}: {t}");
    }
    assert_eq!(v["verbose_language"], "english", "{v}");
    assert!(
        v["verbose_segments"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    assert!(v["srt"].as_str().unwrap().starts_with("1\n"), "{v}");
    assert_eq!(v["error"]["status"], 400, "{v}");
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");
}

/// Several sentences, about 35 s: two Whisper windows, so a stream has text before the end.
const SPOKEN_LONG: &str = "The weather was cold and clear on the morning of the first day. \
    She walked to the station and bought a ticket for the early train. \
    The train was late, so she read a book while she waited on the platform. \
    When the train arrived, she found a seat next to the window. \
    The fields outside were covered with a thin layer of white frost. \
    After an hour, the train stopped at a small town near the river. \
    She stepped off the train and looked for her brother in the crowd.";

/// The official OpenAI Python SDK on the rest of the audio API: word timestamps in
/// verbose_json, `stream=True` (text deltas as windows finish, then the whole text),
/// translations (German speech into English, on the multilingual `base`), and the models list.
#[tokio::test(flavor = "multi_thread")]
async fn the_openai_sdk_streams_translates_times_words_and_lists_models() {
    let python = sdk_python();
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "asr", &[]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let english = dir.join("english.wav");
    run_tool(
        Command::new("espeak-ng")
            .args(["-s", "150", "-w"])
            .arg(&english)
            .arg(SPOKEN_LONG),
    );
    let german = dir.join("german.wav");
    run_tool(
        Command::new("espeak-ng")
            .args(["-v", "de", "-s", "110", "-w"])
            .arg(&german)
            .arg("Ich habe heute keine Zeit. Morgen fahre ich mit dem Zug nach Berlin."),
    );
    let v = run_sdk(
        python,
        &env,
        "openai_sdk_features.py",
        vec![english, german],
    )
    .await;

    // Words: as many as were said, in order, spelling the text.
    let words = v["words"].as_array().expect("words");
    let text = v["words_text"].as_str().unwrap();
    assert!(word_error_rate(SPOKEN_LONG, text) <= MAX_WER, "{text}");
    let said = SPOKEN_LONG.split_whitespace().count();
    assert!(
        words.len() + 8 >= said && words.len() <= said + 8,
        "{} words for {said} said",
        words.len()
    );
    let spelled: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert!(
        word_error_rate(text, &spelled.join(" ")) <= 0.02,
        "words {spelled:?} vs text {text}"
    );
    let duration = v["words_segments"]
        .as_array()
        .and_then(|s| s.last())
        .map_or(0.0, |s| s["end"].as_f64().unwrap());
    let mut prev = 0.0;
    for w in words {
        let (a, b) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(
            a >= prev - 1e-6 && a <= b && b <= duration + 0.01,
            "{w} after {prev}"
        );
        prev = a;
    }

    // Stream: deltas, then one done with the whole text.
    let events = v["stream"].as_array().expect("events");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "transcript.text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert!(
        types
            .iter()
            .filter(|t| **t == "transcript.text.delta")
            .count()
            >= 2,
        "one delta per window, two windows: {types:?}"
    );
    assert_eq!(types.last(), Some(&"transcript.text.done"), "{types:?}");
    let done = events.last().unwrap()["text"].as_str().unwrap();
    assert_eq!(deltas, done);
    assert!(word_error_rate(SPOKEN_LONG, done) <= MAX_WER, "{done}");

    // Translation: English words out of German speech. (The sentence is one base renders
    // well from espeak-ng's German voice: a first one, "Guten Morgen. Das Wetter ist heute
    // sehr schön…" at 140 words a minute, came out garbled.)
    let t = v["translation"].as_str().unwrap().to_lowercase();
    eprintln!("translation: {t}");
    assert!(
        ["time", "today", "tomorrow", "train", "berlin"]
            .iter()
            .filter(|w| t.contains(**w))
            .count()
            >= 3,
        "{t}"
    );
    assert!(
        !["zeit", "morgen", "zug", "heute"]
            .iter()
            .any(|w| t.contains(w)),
        "{t}"
    );
    assert_eq!(v["translation_task"], "translate", "{v}");
    assert_eq!(v["translation_error"]["status"], 400, "{v}");
    assert_eq!(
        v["translation_error"]["code"], "model_not_multilingual",
        "{v}"
    );

    // Models.
    let ids: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for id in ["whisper-1", "tiny.en", "base"] {
        assert!(ids.contains(&id), "{ids:?}");
    }
    assert_eq!(v["model"]["id"], "whisper-1");
    assert_eq!(v["model"]["object"], "model");
    assert_eq!(v["model_error"]["status"], 404, "{v}");
    assert_eq!(v["model_error"]["code"], "model_not_found", "{v}");
}

/// The same request sent again (an SDK retrying with no idempotency key) gets the first
/// request's work: no second file, no second job. Other parameters, or another caller, do
/// start new work.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_request_is_answered_from_its_first_run() {
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "asr", &[]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);
    let count = |v: &Value, k: &str| v[k].as_array().map_or(0, Vec::len);

    let (s, first) = openai(&env, &[("model", "whisper-1")], Some(&wav)).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let (_, files) = env.call("GET", "/v1/files", Some(ADMIN), None).await;
    let (_, jobs) = env.call("GET", "/v1/jobs", Some(ADMIN), None).await;
    let (n_files, n_jobs) = (count(&files, "files"), count(&jobs, "jobs"));
    assert_eq!(n_files, 1, "{files}");

    // Again, as text this time: the same work answers every format.
    let (s, again) = openai(
        &env,
        &[("model", "whisper-1"), ("response_format", "text")],
        Some(&wav),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    let first_text = serde_json::from_str::<Value>(&first).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(again.trim(), first_text);
    let (_, files) = env.call("GET", "/v1/files", Some(ADMIN), None).await;
    let (_, jobs) = env.call("GET", "/v1/jobs", Some(ADMIN), None).await;
    assert_eq!(count(&files, "files"), n_files, "a second file: {files}");
    assert_eq!(count(&jobs, "jobs"), n_jobs, "a second job: {jobs}");

    // Another parameter: new work.
    let (s, _) = openai(
        &env,
        &[("model", "whisper-1"), ("prompt", "Quick brown fox.")],
        Some(&wav),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, files) = env.call("GET", "/v1/files", Some(ADMIN), None).await;
    assert_eq!(count(&files, "files"), n_files + 1, "{files}");

    // Once its file is deleted, the request is run again.
    let id = files["files"][0]["id"].as_str().unwrap().to_owned();
    let first_id = files["files"][1]["id"].as_str().unwrap().to_owned();
    for f in [&id, &first_id] {
        let (s, b) = env
            .call("DELETE", &format!("/v1/files/{f}"), Some(ADMIN), None)
            .await;
        assert!(s.is_success(), "{s} {b}");
    }
    let (s, _) = openai(&env, &[("model", "whisper-1")], Some(&wav)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, files) = env.call("GET", "/v1/files", Some(ADMIN), None).await;
    assert_eq!(count(&files, "files"), 1, "{files}");
}

/// A long recording reports progress per window with an ETA, and a cancel stops it between
/// windows: the job ends `cancelled`, the file says so, and the worker takes new work.
#[tokio::test(flavor = "multi_thread")]
async fn long_transcriptions_report_progress_and_stop_when_cancelled() {
    let mut env = Env::start().await;
    transcribe_worker(&mut env, "asr", &[]);
    let dir = env.logs.join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = speech_wav(&dir, SPOKEN);
    let long = dir.join("lecture.flac");
    run_tool(
        Command::new("sox")
            .arg(&wav)
            .arg(&long)
            .args(["pad", "0", "1", "repeat", "50"]),
    );
    let (s, v) = upload(&env, ADMIN, &long, true).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let job = v["jobs"][0].as_str().unwrap().to_string();
    let running = env
        .wait_job(&job, Duration::from_secs(120), |j| {
            j["progress"]["done"].as_u64().unwrap_or(0) > 0
                || j["status"] != "queued" && j["status"] != "running"
        })
        .await;
    assert_eq!(
        running["status"], "running",
        "still running after its first window: {running}"
    );
    let total = running["progress"]["total"].as_u64().unwrap();
    assert!(
        total > 300_000,
        "progress counts audio milliseconds: {running}"
    );
    assert!(
        running["progress"]["eta_seconds"].as_f64().is_some(),
        "{running}"
    );
    let (s, c) = env.post(&format!("/v1/jobs/{job}/cancel"), json!({})).await;
    assert!(s.is_success(), "{c}");
    let t0 = std::time::Instant::now();
    // The handler stops at the end of the window it is decoding: on two loaded cores (the
    // suite runs four tests at once) one 30 s window has taken over 60 s.
    let done = env
        .wait_status(&job, "cancelled", Duration::from_secs(180))
        .await;
    println!(
        "cancelled {:?} after the request, at {} of {total} ms",
        t0.elapsed(),
        done["progress"]["done"]
    );
    assert!(done["progress"]["done"].as_u64().unwrap() < total, "{done}");
    let id = v["id"].as_str().unwrap();
    let (_, f) = env.get(&format!("/v1/files/{id}")).await;
    assert_eq!(f["status"], "cancelled", "{f}");
    let (_, v) = upload(&env, ADMIN, &wav, true).await;
    assert_eq!(wait_file_job(&env, &v).await["status"], "succeeded");
}
