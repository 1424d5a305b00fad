//! Issue 13, items 3, 9 and 10, end to end against the real control plane: request size,
//! shape and time limits; the OpenAI endpoint checks every field before it stores anything;
//! out-of-range values and framework rejections answer coded 4xx errors, never 500.
mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, Env, files_under};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// What a raw connection got back.
#[derive(Debug)]
struct Raw {
    /// `None`: the server closed the connection without answering.
    status: Option<u16>,
    body: Value,
    /// The server closed the connection (EOF or reset) instead of keeping it waiting.
    closed: bool,
    /// No answer and no close within the wait.
    waited_out: bool,
    elapsed: Duration,
}

fn addr(env: &Env) -> String {
    env.base.trim_start_matches("http://").to_owned()
}

/// Writes `sent` on a fresh connection, sends nothing more, and reads for up to `wait`: the
/// response (status and JSON body) if one comes, or whether the connection was closed.
async fn raw(env: &Env, sent: &[u8], wait: Duration) -> Raw {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr(env)).await.unwrap();
    s.write_all(sent).await.unwrap();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let (mut closed, mut waited_out) = (false, false);
    loop {
        if let Some((status, body)) = parse_response(&buf) {
            return Raw {
                status: Some(status),
                body,
                closed,
                waited_out,
                elapsed: start.elapsed(),
            };
        }
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                waited_out = true;
                break;
            }
        }
    }
    let (status, body) = parse_response(&buf).map_or((None, Value::Null), |(s, b)| (Some(s), b));
    Raw {
        status,
        body,
        closed,
        waited_out,
        elapsed: start.elapsed(),
    }
}

/// A complete HTTP/1.1 response with a Content-Length body: (status, body as JSON or text).
fn parse_response(buf: &[u8]) -> Option<(u16, Value)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let body = buf.get(end + 4..end + 4 + len)?;
    let text = String::from_utf8_lossy(body).into_owned();
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn head(method: &str, path: &str, token: &str, ctype: &str, len: u64) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\n\
         content-type: {ctype}\r\ncontent-length: {len}\r\n\r\n"
    )
}

fn text_part(boundary: &str, name: &str, value: &str) -> String {
    format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
}

/// Item 3: early 413 from Content-Length, the JSON branch of `POST /v1/files` bounded by the
/// general limit, repeated multipart parts refused at the first one over its cap (before the
/// rest is read), a header-read timeout, a body idle timeout, and event streams unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn item3_bodies_parts_and_slow_clients_are_bounded() {
    let mut env = Env::start().await;
    env.cp_env = vec![
        ("VOXFLEET_HEADER_TIMEOUT_SECONDS".into(), "1".into()),
        ("VOXFLEET_BODY_TIMEOUT_SECONDS".into(), "1".into()),
    ];
    env.restart_control_plane().await;
    let user = env.mint_token("user");
    let wait = Duration::from_secs(4);

    // A Content-Length over the route's limit: 413 at once, the body never sent.
    for (path, ctype, len) in [
        ("/v1/jobs", "application/json", 3_000_000_000u64),
        ("/v1/files", "application/json", 200_000_000),
        (
            "/v1/files",
            "multipart/form-data; boundary=b",
            3_000_000_000,
        ),
        (
            "/v1/audio/transcriptions",
            "multipart/form-data; boundary=b",
            3_000_000_000,
        ),
    ] {
        let r = raw(&env, head("POST", path, &user, ctype, len).as_bytes(), wait).await;
        assert_eq!(r.status, Some(413), "{path} {ctype} {len}: {r:?}");
        // A media upload keeps the upload's own code; every other body is payload_too_large.
        let want = if ctype.starts_with("multipart/") {
            "file_too_large"
        } else {
            "payload_too_large"
        };
        assert_eq!(code(&r.body), want, "{path}: {r:?}");
        assert!(r.elapsed < Duration::from_secs(2), "{path}: {r:?}");
    }

    // A moderately large body over the limit, sent whole by an ordinary client: the server
    // reads it to its end before closing, so every try gets its 413 (closing while the
    // client was still sending reset the connection, and the client dropped the answer).
    for attempt in 1..=5 {
        let res = env
            .http
            .post(format!("{}/v1/jobs", env.base))
            .bearer_auth(&user)
            .header("content-type", "application/json")
            .body(vec![b' '; 3 << 20])
            .send()
            .await
            .unwrap_or_else(|e| panic!("try {attempt}: no answer to an over-limit body: {e}"));
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "try {attempt}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "payload_too_large", "try {attempt}");
    }

    // The JSON branch of POST /v1/files without a Content-Length (chunked): the general 1 MiB
    // limit, and the answer does not echo the body back.
    let big = format!(r#"{{"uri":"file:///{}"}}"#, "a".repeat(3 << 20));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(64 << 10)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = env
        .http
        .post(format!("{}/v1/files", env.base))
        .bearer_auth(&user)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{:.300}", text);
    assert!(
        text.len() < 1000,
        "the answer echoes the body: {:.300}",
        text
    );

    // 2,000 `process` parts of 60 KB announced; the answer comes at the 9th, while the client
    // is still sending (it sends 10 and stops).
    let b = "hostileboundary";
    let part = text_part(b, "process", &"x".repeat(60_000));
    let announced = (part.len() * 2000 + b.len() + 6) as u64;
    let mut sent = head(
        "POST",
        "/v1/files",
        &user,
        &format!("multipart/form-data; boundary={b}"),
        announced,
    );
    sent.push_str(&part.repeat(10));
    let r = raw(&env, sent.as_bytes(), wait).await;
    assert_eq!(
        (r.status, code(&r.body)),
        (Some(422), "invalid_body"),
        "{r:?}"
    );
    // `options` twice.
    let mut sent = head(
        "POST",
        "/v1/files",
        &user,
        &format!("multipart/form-data; boundary={b}"),
        1 << 20,
    );
    sent.push_str(&text_part(b, "options", "{}").repeat(2));
    let r = raw(&env, sent.as_bytes(), wait).await;
    assert_eq!(
        (r.status, code(&r.body)),
        (Some(422), "invalid_body"),
        "{r:?}"
    );
    // The OpenAI endpoint: a fifth known speaker reference, and hundreds of unknown fields.
    for (name, value, param) in [
        (
            "known_speaker_references[]",
            "data:audio/wav;base64,UklGRg==",
            "known_speaker_references",
        ),
        ("some_unknown_field", "x", "some_unknown_field"),
    ] {
        let mut sent = head(
            "POST",
            "/v1/audio/transcriptions",
            &user,
            &format!("multipart/form-data; boundary={b}"),
            100 << 20,
        );
        sent.push_str(&text_part(b, name, value).repeat(300));
        let r = raw(&env, sent.as_bytes(), wait).await;
        assert_eq!(r.status, Some(400), "{name}: {r:?}");
        assert_eq!(r.body["error"]["param"], param, "{name}: {r:?}");
        assert_eq!(r.body["error"]["type"], "invalid_request_error", "{r:?}");
    }

    // Half a request header, then nothing: the connection is closed at the header timeout.
    let r = raw(
        &env,
        format!("POST /v1/jobs HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {user}\r\n")
            .as_bytes(),
        Duration::from_secs(6),
    )
    .await;
    assert!(
        r.closed && !r.waited_out && r.elapsed < Duration::from_secs(4),
        "a half-sent header held the connection: {r:?}"
    );
    // A body that stops coming: 408 at the body idle timeout.
    let mut sent = head("POST", "/v1/jobs", &user, "application/json", 100);
    sent.push_str(r#"{"kind": "#);
    let r = raw(&env, sent.as_bytes(), Duration::from_secs(6)).await;
    assert_eq!(
        (r.status, code(&r.body)),
        (Some(408), "request_timeout"),
        "{r:?}"
    );
    assert!(r.elapsed < Duration::from_secs(4), "{r:?}");
    let mut sent = head(
        "POST",
        "/v1/files",
        &user,
        &format!("multipart/form-data; boundary={b}"),
        10 << 20,
    );
    sent.push_str(&format!(
        "--{b}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF"
    ));
    let r = raw(&env, sent.as_bytes(), Duration::from_secs(6)).await;
    assert_eq!(
        (r.status, code(&r.body)),
        (Some(408), "request_timeout"),
        "{r:?}"
    );
    assert!(
        files_under(&env.media_dir()).is_empty(),
        "a timed-out upload left an object"
    );

    // An event stream stays open well past both timeouts and still delivers events. The
    // control plane's own schedules may queue jobs meanwhile, so the reader waits for this
    // test's job id, which it learns once the job is submitted.
    let (id_tx, id_rx) = tokio::sync::oneshot::channel::<String>();
    let reader = {
        let env_base = env.base.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let res = client
                .get(format!("{env_base}/v1/events"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let mut stream = res.bytes_stream();
            let mut seen = String::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            let mut id_rx = id_rx;
            let mut id: Option<String> = None;
            use futures::StreamExt;
            while let Ok(Some(Ok(c))) = tokio::time::timeout_at(deadline, stream.next()).await {
                seen.push_str(&String::from_utf8_lossy(&c));
                if id.is_none() {
                    id = id_rx.try_recv().ok();
                }
                if id.as_ref().is_some_and(|id| seen.contains(id.as_str())) {
                    break;
                }
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let id = env.submit(json!({})).await;
    id_tx.send(id.clone()).unwrap();
    let seen = reader.await.unwrap();
    assert!(
        seen.contains(&id),
        "the event stream ended or missed the job: {seen}"
    );
    assert!(env.control_plane_alive());
}

async fn openai_form(env: &Env, token: &str, fields: &[(&str, String)]) -> (StatusCode, Value) {
    // The file first, as the official SDKs send it: nothing may be stored before the checks.
    let mut form = Form::new().part(
        "file",
        Part::bytes(b"RIFF not really a wave file".to_vec()).file_name("a.wav"),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.clone());
    }
    let (status, text) = env.post_form("/v1/audio/transcriptions", token, form).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Item 9: every field of `POST /v1/audio/transcriptions` is checked before the upload is
/// stored (a 400 leaves no file record and no storage object), and each error's `param`
/// names the field at fault.
#[tokio::test(flavor = "multi_thread")]
async fn item9_openai_checks_every_field_before_storing_anything() {
    let mut env = Env::start().await;
    // No worker runs: a request that got as far as queueing a job answers 504 quickly.
    env.cp_env = vec![("VOXFLEET_OPENAI_WAIT_SECONDS".into(), "1".into())];
    env.restart_control_plane().await;
    let user = env.mint_token("user");
    let clip = "data:audio/wav;base64,UklGRg==".to_owned();
    let diarize = |names: &[&str], refs: &[&str]| -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("model", "gpt-4o-transcribe-diarize".to_owned()),
            ("response_format", "diarized_json".to_owned()),
        ];
        f.extend(
            names
                .iter()
                .map(|n| ("known_speaker_names[]", n.to_string())),
        );
        f.extend(
            refs.iter()
                .map(|r| ("known_speaker_references[]", r.to_string())),
        );
        f
    };
    let w = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut f = vec![("model", "whisper-1".to_owned())];
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    let long_prompt = "p".repeat(2001);
    let cases: Vec<Case> = vec![
        (
            "a malformed language",
            w(&[("language", "zzzz")]),
            "language",
        ),
        (
            "a language Whisper does not know",
            w(&[("language", "zz")]),
            "language",
        ),
        (
            "a 2,001-byte prompt",
            w(&[("prompt", &long_prompt)]),
            "prompt",
        ),
        ("a NUL in the prompt", w(&[("prompt", "a\0b")]), "prompt"),
        (
            "a blank known speaker name",
            diarize(&["  "], &[&clip]),
            "known_speaker_names",
        ),
        (
            "a duplicate known speaker name",
            diarize(&["Ann", "Ann"], &[&clip, &clip]),
            "known_speaker_names",
        ),
        (
            "a reference that is not base64",
            diarize(&["Ann"], &["data:audio/wav;base64,@@@"]),
            "known_speaker_references",
        ),
        (
            "names without references",
            diarize(&["Ann", "Bob"], &[&clip]),
            "known_speaker_references",
        ),
        (
            "an unknown model",
            vec![("model", "gpt-9".to_owned())],
            "model",
        ),
        ("no model", vec![], "model"),
        (
            "a temperature out of range",
            w(&[("temperature", "7")]),
            "temperature",
        ),
        (
            "an unknown response format",
            w(&[("response_format", "xml")]),
            "response_format",
        ),
        (
            "word timestamps without verbose_json",
            w(&[("timestamp_granularities[]", "word")]),
            "timestamp_granularities",
        ),
        (
            "a stream of subtitles",
            w(&[("stream", "true"), ("response_format", "srt")]),
            "stream",
        ),
        (
            "a stream that is not a boolean",
            w(&[("stream", "yes")]),
            "stream",
        ),
    ];
    for (what, fields, param) in &cases {
        let (s, v) = openai_form(&env, &user, fields).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{what}: {v}");
        assert_eq!(v["error"]["param"], *param, "{what}: {v}");
    }
    // A wrong field sent before a large file: the answer still reaches the client (the rest of
    // the form is read and dropped, not the connection).
    let form = Form::new()
        .text("model", "whisper-1")
        .text("language", "zzzz")
        .part("file", Part::bytes(vec![7u8; 8 << 20]).file_name("big.wav"));
    let res = env
        .http
        .post(format!("{}/v1/audio/transcriptions", env.base))
        .bearer_auth(&user)
        .multipart(form)
        .send()
        .await
        .expect("the answer, not a reset connection");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["param"], "language", "{v}");

    let pg = env.pg().await;
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM files")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a rejected request left file records");
    assert_eq!(
        files_under(&env.media_dir()),
        Vec::<std::path::PathBuf>::new(),
        "a rejected request left storage objects"
    );
}

/// Item 10: out-of-range timestamps and numbers are coded 4xx, never 500; rejections by the
/// framework (method, path, query, content type, multipart) speak the API's error format
/// (OpenAI's on the OpenAI endpoint).
#[tokio::test(flavor = "multi_thread")]
async fn item10_out_of_range_values_and_framework_rejections_get_coded_errors() {
    let env = Env::start().await;
    let user = env.mint_token("user");
    let id = uuid::Uuid::now_v7();
    for (path, token) in [
        (
            format!("/v1/jobs?cursor=-8000000000000000000_{id}"),
            user.as_str(),
        ),
        (
            format!("/v1/files?cursor=-8000000000000000000_{id}"),
            user.as_str(),
        ),
        (
            format!("/v1/jobs?cursor=9223372036854775807_{id}"),
            user.as_str(),
        ),
        (
            "/v1/usage?since=-9999-01-01T00:00:00Z".into(),
            user.as_str(),
        ),
        (
            "/v1/admin/retention/preview?as_of=-9999-01-01T00:00:00Z".into(),
            ADMIN,
        ),
        (
            "/v1/admin/retention/preview?as_of=+200000-01-01T00:00:00Z".into(),
            ADMIN,
        ),
        ("/v1/admin/retention/preview?limit=abc".into(), ADMIN),
    ] {
        let (s, v) = env.call("GET", &path, Some(token), None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{path}: {v}"
        );
    }
    // The same instant in a body: refused before a job is queued.
    let (s, v) = env
        .post(
            "/v1/admin/retention/run",
            json!({"dry_run": true, "as_of": "-9999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
        "{v}"
    );

    // Framework rejections, each with a code in the API's format.
    let send = |rb: reqwest::RequestBuilder| async move {
        let res = rb.send().await.unwrap();
        let status = res.status();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap();
        (status, ctype, text)
    };
    let http = &env.http;
    let b = &env.base;
    let cases = [
        (
            "method not allowed",
            http.delete(format!("{b}/v1/jobs")).bearer_auth(&user),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "a path that is not UTF-8",
            http.get(format!("{b}/v1/jobs/%FF%FE")).bearer_auth(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a query of the wrong type",
            http.get(format!("{b}/v1/jobs?limit=many"))
                .bearer_auth(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            "JSON with another content type",
            http.post(format!("{b}/v1/jobs"))
                .bearer_auth(&user)
                .header("content-type", "text/plain")
                .body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "multipart without a boundary",
            http.post(format!("{b}/v1/files"))
                .bearer_auth(&user)
                .header("content-type", "multipart/form-data")
                .body("x"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, rb, status) in cases {
        let (s, ctype, text) = send(rb).await;
        assert_eq!(s, status, "{what}: {text}");
        assert!(
            ctype.starts_with("application/json"),
            "{what}: {ctype} {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(!code(&v).is_empty(), "{what}: {text}");
        assert!(v["error"]["message"].is_string(), "{what}: {text}");
    }
    // The OpenAI endpoint answers its own format, even before its body is understood.
    for (what, rb, status) in [
        (
            "not multipart",
            http.post(format!("{b}/v1/audio/transcriptions"))
                .bearer_auth(&user)
                .json(&json!({"model": "whisper-1"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "method not allowed",
            http.get(format!("{b}/v1/audio/transcriptions"))
                .bearer_auth(&user),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "no token",
            http.post(format!("{b}/v1/audio/transcriptions")),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (s, ctype, text) = send(rb).await;
        assert_eq!(s, status, "{what}: {text}");
        assert!(
            ctype.starts_with("application/json"),
            "{what}: {ctype} {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(v["error"]["type"].is_string(), "{what}: {text}");
        assert!(v["error"]["message"].is_string(), "{what}: {text}");
    }
}

/// What a case is called, the form's fields, and the `param` its error must name.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
