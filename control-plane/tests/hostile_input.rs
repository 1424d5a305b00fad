//! A fuzz pass over the JSON and multipart extractors, against the real control plane:
//! thousands of random and mutated bodies (a seeded generator, so every run sends the same
//! requests) to the routes that take bodies. Every answer must be a 2xx or a 4xx in the
//! API's error format (OpenAI's on `/v1/audio/transcriptions`), never a 5xx, and the server
//! must stay up and answer `/healthz` quickly throughout.
mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, Env};
use futures::StreamExt;
use serde_json::{Map, Value, json};

/// SplitMix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const KEYS: &[&str] = &[
    "kind",
    "input",
    "queue",
    "priority",
    "idempotency_key",
    "max_retries",
    "file_id",
    "model",
    "language",
    "prompt",
    "temperature",
    "beam_size",
    "vad",
    "num_speakers",
    "min_speakers",
    "max_speakers",
    "profiles",
    "known_speakers",
    "name",
    "uri",
    "filename",
    "process",
    "transcribe",
    "diarize",
    "jobs",
    "limit_retries",
    "enabled",
    "retention_days",
    "run_time",
    "timezone",
    "as_of",
    "dry_run",
    "stats_every_seconds",
    "integrity_every_hours",
    "active_profile",
    "sleep_ms",
    "__proto__",
    "",
];

const STRINGS: &[&str] = &[
    "",
    "en",
    "zzzz",
    "transcribe",
    "diarize",
    "diagnostic",
    "embed",
    "retention",
    "gpu",
    "cpu",
    "high",
    "v4",
    "v3",
    "whisper-1",
    "tiny.en",
    "a\u{0}b",
    "\u{0}",
    "\u{202e}txt.exe",
    "𝄞🎙️",
    "../../../../etc/passwd",
    "file:///etc/passwd",
    "file:///root/.bashrc",
    "s3://bucket/key",
    "file://./data/media/files/x",
    "%2e%2e/%2e%2e/etc",
    "-9999-01-01T00:00:00Z",
    "+262142-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "25:99",
    "Mars/Olympus",
    "00000000-0000-0000-0000-000000000000",
    "-8000000000000000000_00000000-0000-0000-0000-000000000000",
    "data:audio/wav;base64,UklGRg==",
    "data:;base64,@@@",
    "NaN",
    "1e999",
];

fn nasty(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(22) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(u64::MAX),
        5 => json!(i64::MIN),
        6 => json!(1e308),
        7 => json!(-1.5e-300),
        8 => json!(4_294_967_296u64),
        9 => json!(2_147_483_648u64),
        10 => json!(rng.next() as i64),
        11 => json!("x".repeat(rng.below(20_000))),
        12 => json!(uuid::Uuid::from_u128(rng.next() as u128).to_string()),
        13 if depth < 4 => {
            let n = rng.below(5);
            Value::Array((0..n).map(|_| nasty(rng, depth + 1)).collect())
        }
        14 if depth < 4 => {
            let mut m = Map::new();
            for _ in 0..rng.below(5) {
                m.insert(rng.pick(KEYS).to_string(), nasty(rng, depth + 1));
            }
            Value::Object(m)
        }
        15 => {
            // Nested arrays, deep but under serde_json's recursion limit sometimes, over it
            // others.
            (0..rng.below(200)).fold(Value::Null, |v, _| Value::Array(vec![v]))
        }
        _ => json!(rng.pick(STRINGS)),
    }
}

/// A random change somewhere in `v`.
fn mutate(rng: &mut Rng, v: &mut Value, depth: usize) {
    match v {
        Value::Object(m) if !m.is_empty() && depth < 6 && rng.chance(60) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(4) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(rng.pick(KEYS).to_string(), nasty(rng, depth));
                }
                _ => mutate(rng, m.get_mut(&k).unwrap(), depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 6 && rng.chance(60) => {
            let i = rng.below(a.len());
            match rng.below(4) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let x = a[i].clone();
                    a.extend(std::iter::repeat_n(x, rng.below(30)));
                }
                _ => mutate(rng, &mut a[i], depth + 1),
            }
        }
        _ => *v = nasty(rng, depth),
    }
}

fn insert(b: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let at = at.min(b.len());
    b.splice(at..at, bytes.iter().copied());
}

/// Byte-level damage to a serialized body.
fn damage(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(3) {
        let at = rng.below(b.len() + 1);
        match rng.below(7) {
            0 => b.truncate(at),
            1 => b.insert(at.min(b.len()), rng.next() as u8),
            2 => b.insert(at.min(b.len()), 0xff),
            3 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 << rng.below(8);
            }
            4 => {
                let end = (at + rng.below(64)).min(b.len());
                let piece = b[at.min(end)..end].to_vec();
                insert(&mut b, at, &piece);
            }
            5 => insert(&mut b, at, b"{\"kind\":1,\"kind\":\"x\"}"),
            _ => insert(&mut b, at, b"1e99999999999"),
        }
    }
    b
}

struct Case {
    method: &'static str,
    path: &'static str,
    admin: bool,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn json_seeds(file: &str) -> Vec<(&'static str, &'static str, bool, Value)> {
    let t = json!({"kind": "transcribe", "input": {"file_id": file, "language": "en"}});
    let d = json!({"kind": "diarize", "input": {"file_id": file, "num_speakers": 2,
        "known_speakers": [{"name": "Ann", "file_id": file}]}});
    vec![
        ("POST", "/v1/jobs", false, t.clone()),
        ("POST", "/v1/jobs", false, d.clone()),
        (
            "POST",
            "/v1/jobs",
            true,
            json!({"kind": "diagnostic", "input": {}, "priority": "low", "max_retries": 1}),
        ),
        ("POST", "/v1/jobs/batch", false, json!({"jobs": [t, d]})),
        (
            "POST",
            "/v1/files",
            false,
            json!({"uri": "file:///nowhere/a.wav", "process": ["transcribe"],
                   "transcribe": {"language": "en"}}),
        ),
        (
            "PUT",
            "/v1/settings/retry",
            true,
            json!({"limit_retries": true, "max_retries": 3}),
        ),
        (
            "PUT",
            "/v1/settings/retention",
            true,
            json!({"retention_days": 30, "run_time": "03:00", "timezone": "UTC"}),
        ),
        (
            "PUT",
            "/v1/settings/schedules",
            true,
            json!({"stats_every_seconds": 60, "integrity_every_hours": 0,
                   "consistency_every_hours": 0}),
        ),
        (
            "PUT",
            "/v1/settings/embeddings",
            true,
            json!({"active_profile": "v4"}),
        ),
        ("PUT", "/v1/settings/search", true, json!({"model": "x"})),
        (
            "POST",
            "/v1/admin/retention/run",
            true,
            json!({"dry_run": true, "as_of": "2026-01-01T00:00:00Z"}),
        ),
    ]
}

const CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "application/json; charset=latin1",
    "application/vnd.api+json",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
];

fn json_case(rng: &mut Rng, file: &str) -> Case {
    let seeds = json_seeds(file);
    let (method, path, admin, mut v) = rng.pick(&seeds).clone();
    for _ in 0..=rng.below(3) {
        mutate(rng, &mut v, 0);
    }
    let mut body = serde_json::to_vec(&v).unwrap();
    if rng.chance(30) {
        body = damage(rng, body);
    }
    let content_type = match rng.below(12) {
        0 => None,
        1 => Some(rng.pick(CONTENT_TYPES).to_string()),
        _ => Some("application/json".into()),
    };
    Case {
        method,
        path,
        admin,
        content_type,
        body,
    }
}

const FILE_PARTS: &[&str] = &["process", "options", "diarize_options", "file", "junk"];
const OPENAI_PARTS: &[&str] = &[
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "known_speaker_names[]",
    "known_speaker_references[]",
    "stream",
    "include[]",
    "file",
    "junk",
];

fn part_value(rng: &mut Rng, name: &str) -> Vec<u8> {
    let v = match (name, rng.below(4)) {
        ("process", 0) => "transcribe".to_owned(),
        ("process", 1) => "transcribe,diarize,embed".to_owned(),
        ("options" | "diarize_options", 0 | 1) => {
            let mut v = json!({"language": "en", "num_speakers": 2});
            mutate(rng, &mut v, 0);
            v.to_string()
        }
        ("model", 0) => "whisper-1".to_owned(),
        ("model", 1) => "gpt-4o-transcribe-diarize".to_owned(),
        ("response_format", 0) => "diarized_json".to_owned(),
        ("response_format", 1) => "verbose_json".to_owned(),
        ("temperature", 0) => "0.3".to_owned(),
        ("language", 0) => "de".to_owned(),
        (_, 3) => nasty(rng, 0).to_string(),
        _ => rng.pick(STRINGS).to_string(),
    };
    v.into_bytes()
}

fn multipart_case(rng: &mut Rng) -> Case {
    let openai = rng.chance(50);
    let names = if openai { OPENAI_PARTS } else { FILE_PARTS };
    let boundary = format!("b{:x}", rng.next());
    let mut body = Vec::new();
    let mut parts: Vec<&str> = vec!["file"];
    if openai {
        parts.push("model");
    }
    for _ in 0..rng.below(8) {
        parts.push(*rng.pick(names));
    }
    if rng.chance(10) {
        // Many repeats of one part.
        let p = *rng.pick(names);
        parts.extend(std::iter::repeat_n(p, 20 + rng.below(200)));
    }
    for i in 0..parts.len() {
        let j = rng.below(parts.len());
        parts.swap(i, j);
    }
    for name in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let header = match (name, rng.below(12)) {
            ("file", 0) => "content-disposition: form-data; name=\"file\"\r\n".to_owned(),
            ("file", 1) => format!(
                "content-disposition: form-data; name=\"file\"; filename=\"{}\"\r\n",
                "../".repeat(rng.below(50))
            ),
            ("file", _) => "content-disposition: form-data; name=\"file\"; \
                            filename=\"a.wav\"\r\ncontent-type: audio/wav\r\n"
                .to_owned(),
            (_, 0) => format!("content-disposition: form-data; name={name}\r\n"),
            (_, 1) => "content-type: text/plain\r\n".to_owned(),
            (_, 2) => format!(
                "content-disposition: form-data; name=\"{name}\"; x=\"{}\"\r\n",
                "y".repeat(rng.below(5000))
            ),
            _ => format!("content-disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(header.as_bytes());
        body.extend_from_slice(b"\r\n");
        if name == "file" {
            let n = rng.below(3000);
            let mut data = b"RIFF".to_vec();
            data.extend((0..n).map(|_| rng.next() as u8));
            body.extend_from_slice(&data);
        } else {
            body.extend_from_slice(&part_value(rng, name));
        }
        body.extend_from_slice(b"\r\n");
    }
    if !rng.chance(10) {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    if rng.chance(25) {
        body = damage(rng, body);
    }
    let content_type = match rng.below(15) {
        0 => "multipart/form-data".to_owned(),
        1 => "multipart/form-data; boundary=".to_owned(),
        2 => "multipart/form-data; boundary=other".to_owned(),
        3 => "multipart/mixed; boundary=".to_owned() + &boundary,
        _ => format!("multipart/form-data; boundary={boundary}"),
    };
    Case {
        method: "POST",
        path: if openai {
            "/v1/audio/transcriptions"
        } else {
            "/v1/files"
        },
        admin: rng.chance(20),
        content_type: Some(content_type),
        body,
    }
}

/// Hand-picked bodies that broke or stressed parsers elsewhere.
fn classic_cases() -> Vec<Case> {
    let j = |path: &'static str, body: Vec<u8>| Case {
        method: "POST",
        path,
        admin: false,
        content_type: Some("application/json".into()),
        body,
    };
    vec![
        j("/v1/jobs", "[".repeat(100_000).into_bytes()),
        j("/v1/jobs", "{\"a\":".repeat(50_000).into_bytes()),
        j("/v1/jobs/batch", b"{\"jobs\":[".to_vec()),
        j(
            "/v1/jobs",
            format!("{{\"kind\":\"{}\"}}", "k".repeat(900_000)).into_bytes(),
        ),
        j("/v1/jobs", b"\xef\xbb\xbf{\"kind\":\"diagnostic\"}".to_vec()),
        j("/v1/jobs", b"{\"kind\":\"transcribe\",\"input\":{\"file_id\":\"00000000-0000-0000-0000-000000000000\",\"prompt\":\"a\\u0000b\"}}".to_vec()),
        j("/v1/files", b"{\"uri\":\"file:///\\u0000\"}".to_vec()),
        j(
            "/v1/files",
            format!("{{\"uri\":\"file:///{}\"}}", "%ff".repeat(1000)).into_bytes(),
        ),
        j("/v1/jobs", Vec::new()),
        j("/v1/jobs", b"null".to_vec()),
        j("/v1/jobs", b"1e400".to_vec()),
    ]
}

fn valid_error(path: &str, status: u16, body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    let e = &v["error"];
    let msg = e["message"].as_str().ok_or("no error.message")?;
    if msg.len() > 2000 {
        return Err(format!("a {}-byte message", msg.len()));
    }
    if path.starts_with("/v1/audio/") {
        e["type"].as_str().ok_or("no error.type")?;
    } else {
        let code = e["code"].as_str().ok_or("no error.code")?;
        if code.is_empty() {
            return Err("an empty code".into());
        }
    }
    let _ = status;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_bodies_get_2xx_or_coded_4xx_and_the_server_stays_up() {
    let mut env = Env::start().await;
    // No worker: the OpenAI endpoint answers its documented 504 at once instead of waiting.
    env.cp_env = vec![("VOXFLEET_OPENAI_WAIT_SECONDS".into(), "0".into())];
    env.restart_control_plane().await;
    let user = env.mint_token("user");
    // A file of the user's, so that some job payloads reach the ownership and queue code.
    let dir = env.logs.join("fuzz");
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("a.wav");
    std::fs::write(&wav, b"RIFF\x24\0\0\0WAVEfmt ").unwrap();
    let (s, v) = env.upload(&user, &wav, None).await;
    assert!(s.is_success(), "{v}");
    let file = v["id"].as_str().unwrap().to_owned();

    let mut rng = Rng(0x5eed_1357_2468_ace0);
    let mut cases = classic_cases();
    for _ in 0..2400 {
        cases.push(json_case(&mut rng, &file));
    }
    for _ in 0..800 {
        cases.push(multipart_case(&mut rng));
    }
    let total = cases.len();
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (base, user_ref) = (&env.base, &user);
    let results: Vec<(usize, Answer)> = futures::stream::iter(cases.iter().enumerate())
        .map(|(i, c)| {
            let client = client.clone();
            async move {
                let mut rb = client
                    .request(c.method.parse().unwrap(), format!("{base}{}", c.path))
                    .bearer_auth(if c.admin { ADMIN } else { user_ref.as_str() })
                    .body(c.body.clone());
                if let Some(t) = &c.content_type {
                    rb = rb.header("content-type", t);
                }
                let res = match rb.send().await {
                    Ok(r) => r,
                    Err(e) => return (i, Err(format!("no answer: {e}"))),
                };
                let status = res.status().as_u16();
                match res.bytes().await {
                    Ok(b) => (i, Ok((status, b.to_vec()))),
                    Err(e) => (i, Err(format!("{status}, body cut: {e}"))),
                }
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut failures = Vec::new();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for (i, r) in results {
        let c = &cases[i];
        let what = format!(
            "#{i} {} {} ({:?}, {} bytes: {:?})",
            c.method,
            c.path,
            c.content_type,
            c.body.len(),
            String::from_utf8_lossy(&c.body)
                .chars()
                .take(120)
                .collect::<String>()
        );
        match r {
            Err(e) => failures.push(format!("{what}: {e}")),
            Ok((status, body)) => {
                *by_status.entry(status).or_default() += 1;
                let documented_timeout = c.path == "/v1/audio/transcriptions"
                    && status == 504
                    && serde_json::from_slice::<Value>(&body)
                        .is_ok_and(|v| v["error"]["code"] == "timeout");
                if status >= 500 && !documented_timeout {
                    failures.push(format!(
                        "{what}: {status} {}",
                        String::from_utf8_lossy(&body)
                    ));
                } else if status >= 400
                    && let Err(e) = valid_error(c.path, status, &body)
                {
                    failures.push(format!(
                        "{what}: {status} {e}: {:.300}",
                        String::from_utf8_lossy(&body)
                    ));
                }
            }
        }
    }
    eprintln!(
        "{total} requests in {:.1} s; statuses {by_status:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} answers were wrong:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Still up, still quick, and nothing panicked.
    let t = Instant::now();
    let (s, _) = env.call("GET", "/healthz", None, None).await;
    assert!(s.is_success() && t.elapsed() < Duration::from_secs(2));
    assert!(env.control_plane_alive());
    let log = env.log("control-plane.log");
    assert!(!log.contains("panicked"), "the control plane panicked");
}

/// A status and body, or why no answer came.
type Answer = Result<(u16, Vec<u8>), String>;
