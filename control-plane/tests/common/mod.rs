//! End-to-end harness: starts the real `voxfleet-control-plane` and `voxfleet-worker`
//! binaries against the real Redis and PostgreSQL, each test with a fresh key prefix and a
//! fresh database, and cleans both up afterwards.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN: &str = "test-admin-token-0123456789abcdef";

pub fn redis_url() -> String {
    std::env::var("VOXFLEET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

pub fn pg_base() -> String {
    std::env::var("VOXFLEET_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn control_plane_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_voxfleet-control-plane"))
}

/// The worker binary is built into the same directory (scripts/test.sh builds all binaries).
pub fn worker_bin() -> PathBuf {
    let p = control_plane_bin().with_file_name("voxfleet-worker");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// Every file below `dir` (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[allow(unused_imports)]
pub use voxfleet_testkit::run_tool;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Env {
    pub prefix: String,
    pub db_name: String,
    pub db_url: String,
    pub redis_url: String,
    pub base: String,
    pub http: reqwest::Client,
    pub logs: PathBuf,
    cp: Option<Child>,
    pub workers: Vec<Child>,
    cleanup_redis: bool,
    /// Extra environment for the control plane (e.g. a small upload limit); it overrides the
    /// defaults, `VOXFLEET_ADMIN_TOKEN` included.
    pub cp_env: Vec<(String, String)>,
    /// Extra environment for every process started (overrides the defaults, e.g. storage).
    pub child_env: Vec<(String, String)>,
}

impl Env {
    /// A control plane on a free port, with a fresh prefix and database.
    pub async fn start() -> Env {
        Self::start_with(&redis_url(), None).await
    }

    /// As `start`, with another Redis, and optionally another URL for PostgreSQL (e.g. a proxy).
    pub async fn start_with(redis_url: &str, pg_via: Option<&str>) -> Env {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("vfe2e-{}", &id[..12]);
        let db_name = format!("vf_e2e_{}", &id[..12]);
        let db_url = format!("{}/{}", pg_via.unwrap_or(&pg_base()), db_name);
        let logs = std::env::temp_dir().join(format!("voxfleet-e2e-{prefix}"));
        std::fs::create_dir_all(&logs).unwrap();
        let mut env = Env {
            prefix,
            db_name,
            db_url,
            redis_url: redis_url.to_string(),
            base: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            logs,
            cp: None,
            workers: vec![],
            cleanup_redis: redis_url == self::redis_url(),
            cp_env: vec![],
            child_env: vec![],
        };
        env.start_control_plane().await;
        env
    }

    fn command(&self, bin: PathBuf, log_name: &str) -> Command {
        let mut c = Command::new(bin);
        let log = std::fs::File::create(self.logs.join(log_name)).unwrap();
        c.env("VOXFLEET_REDIS_URL", &self.redis_url)
            .env("VOXFLEET_DATABASE_URL", &self.db_url)
            .env("VOXFLEET_KEY_PREFIX", &self.prefix)
            .env("VOXFLEET_LOG", "info,sqlx=warn")
            .env(
                "VOXFLEET_STORAGE_URL",
                format!("file://{}", self.media_dir().display()),
            )
            .env("VOXFLEET_INDEX_DIR", self.index_dir())
            .envs(self.child_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        c
    }

    /// The embedded search index shared by this environment's control plane and workers.
    pub fn index_dir(&self) -> PathBuf {
        self.logs.join("index")
    }

    /// The media storage folder shared by this environment's control plane and workers.
    pub fn media_dir(&self) -> PathBuf {
        self.logs.join("media")
    }

    pub async fn start_control_plane(&mut self) {
        self.start_control_plane_at("127.0.0.1:0").await;
    }

    /// Starts the control plane listening on `bind` (`host:port`; port 0 picks a free one).
    async fn start_control_plane_at(&mut self, bind: &str) {
        let port_file = self.logs.join("port");
        let _ = std::fs::remove_file(&port_file);
        let child = self
            .command(control_plane_bin(), "control-plane.log")
            .env("VOXFLEET_ADMIN_TOKEN", ADMIN)
            .envs(self.cp_env.iter().map(|(k, v)| (k, v)))
            .args(["--bind", bind, "--port-file"])
            .arg(&port_file)
            .spawn()
            .unwrap();
        self.cp = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&port_file)
                && !addr.is_empty()
            {
                self.base = format!("http://{addr}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "control plane did not start: {}",
                self.log("control-plane.log")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn control_plane_alive(&mut self) -> bool {
        self.cp
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(name)).unwrap_or_default()
    }

    /// Starts a worker on the `cpu` queue; returns its index in `workers`.
    pub fn worker(&mut self, name: &str, extra: &[&str]) -> usize {
        let child = self
            .command(worker_bin(), &format!("worker-{name}.log"))
            .args([
                "--queues",
                "cpu",
                "--name",
                name,
                "--heartbeat-seconds",
                "1",
            ])
            .args(extra)
            .spawn()
            .unwrap();
        self.workers.push(child);
        self.workers.len() - 1
    }

    pub fn signal(&self, i: usize, sig: &str) {
        let pid = self.workers[i].id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Mints a token with `role` through the CLI subcommand.
    pub fn mint_token(&self, role: &str) -> String {
        let out = Command::new(control_plane_bin())
            .env("VOXFLEET_DATABASE_URL", &self.db_url)
            .args(["tokens", "create", "--name", "test", "--role", role])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_for(method, path, token, None, body).await
    }

    /// As [`Env::call`], acting for the user `act_as` names (`X-Voxfleet-User`) when given.
    pub async fn call_for(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        act_as: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{}", self.base, path);
        let mut rb = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(u) = act_as {
            rb = rb.header("x-voxfleet-user", u);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A plain-text route without auth (`/metrics` needs a token: `text_auth`).
    pub async fn text(&self, path: &str) -> String {
        let res = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap();
        res.text().await.unwrap()
    }

    /// A route's body as text, with the admin token (e.g. a transcript in SRT).
    pub async fn text_auth(&self, path: &str) -> String {
        let res = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.text().await.unwrap()
    }

    /// Stops the control plane and starts it again (picking up `cp_env`).
    pub async fn restart_control_plane(&mut self) {
        self.kill_control_plane();
        self.start_control_plane().await;
    }

    fn kill_control_plane(&mut self) {
        if let Some(mut c) = self.cp.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// As `restart_control_plane`, on the same address, as an operator's restart is: a client
    /// that was connected (a browser's event stream) finds it again where it was.
    pub async fn restart_control_plane_in_place(&mut self) {
        let addr = self.base.trim_start_matches("http://").to_string();
        self.kill_control_plane();
        self.start_control_plane_at(&addr).await;
        assert_eq!(self.base, format!("http://{addr}"), "restarted elsewhere");
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(ADMIN), None).await
    }

    /// The row of queue `name` in `GET /v1/queues` (as admin), or null when it is not listed.
    pub async fn queue_row(&self, name: &str) -> Value {
        let (s, q) = self.get("/v1/queues").await;
        assert_eq!(s, StatusCode::OK, "{q}");
        q["queues"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["queue"] == name)
            .cloned()
            .unwrap_or_default()
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(ADMIN), Some(body)).await
    }

    pub async fn submit(&self, input: Value) -> String {
        self.submit_with(json!({"kind": "diagnostic", "input": input}))
            .await
    }

    pub async fn submit_with(&self, body: Value) -> String {
        let (s, v) = self.post("/v1/jobs", body).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn job(&self, id: &str) -> Value {
        let (s, v) = self.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Polls a job until `pred` holds (panics with the job and logs after `timeout`).
    pub async fn wait_job(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let j = self.job(id).await;
            if pred(&j) {
                return j;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting on job {id}: {j}\nlogs in {}",
                    self.logs.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a job until it has ended (succeeded, failed or cancelled).
    pub async fn wait_ended(&self, id: &str, timeout: Duration) -> Value {
        self.wait_job(id, timeout, |j| {
            matches!(
                j["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
        .await
    }

    /// Uploads a file (multipart `file`, and `process` when given) as `token`.
    pub async fn upload(
        &self,
        token: &str,
        path: &Path,
        process: Option<&str>,
    ) -> (StatusCode, Value) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(path).unwrap()).file_name(name),
        );
        if let Some(p) = process {
            form = form.text("process", p.to_owned());
        }
        let (status, text) = self.post_form("/v1/files", token, form).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Posts a multipart form to `path` as `token`: the status and the body as text.
    pub async fn post_form(
        &self,
        path: &str,
        token: &str,
        form: reqwest::multipart::Form,
    ) -> (StatusCode, String) {
        self.post_form_within(path, token, form, Duration::from_secs(30))
            .await
    }

    /// [`Env::post_form`] for requests that may take longer than the client's 30 s (a
    /// synchronous transcription, say).
    pub async fn post_form_within(
        &self,
        path: &str,
        token: &str,
        form: reqwest::multipart::Form,
        timeout: Duration,
    ) -> (StatusCode, String) {
        let res = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .multipart(form)
            .timeout(timeout)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.text().await.unwrap_or_default())
    }

    /// `POST /v1/audio/transcriptions` with `form` as the admin, waited for up to `timeout` (a
    /// transcription with diarization on 2 busy cores can take longer than the client's 30 s):
    /// the status and the body as JSON (as a string where it is not JSON).
    pub async fn openai_json(
        &self,
        form: reqwest::multipart::Form,
        timeout: Duration,
    ) -> (StatusCode, Value) {
        let (status, body) = self
            .post_form_within("/v1/audio/transcriptions", ADMIN, form, timeout)
            .await;
        let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, v)
    }

    /// A diarized file's speakers (`GET /v1/files/{id}/speakers`, asserted 200) and its turns,
    /// speakers numbered in the order of that list.
    pub async fn speakers_and_turns(&self, file_id: &str) -> (Value, Vec<voxfleet_speakers::Turn>) {
        let (s, sp) = self.get(&format!("/v1/files/{file_id}/speakers")).await;
        assert_eq!(s, StatusCode::OK, "{sp}");
        let ids: Vec<&str> = sp["speakers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        let turns = sp["turns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| voxfleet_speakers::Turn {
                start: t["start"].as_f64().unwrap(),
                end: t["end"].as_f64().unwrap(),
                speaker: ids
                    .iter()
                    .position(|i| *i == t["speaker_id"].as_str().unwrap())
                    .unwrap(),
            })
            .collect();
        (sp, turns)
    }

    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        self.wait_job(id, timeout, |j| j["status"] == status).await
    }

    pub async fn set_retry(&self, limit: bool, max: u32) {
        let (s, v) = self
            .call(
                "PUT",
                "/v1/settings/retry",
                Some(ADMIN),
                Some(json!({"limit_retries": limit, "max_retries": max})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    pub async fn pg(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&format!("{}/{}", pg_base(), self.db_name))
            .await
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(c) = &mut self.cp {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.db_name
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if self.cleanup_redis {
            voxfleet_testkit::RedisKeys::delete_all(&self.redis_url, &self.prefix);
        }
    }
}

/// Reads a server-sent event stream until `stop` returns true for an event's data, or timeout.
pub async fn read_events(
    env: &Env,
    path: &str,
    timeout: Duration,
    stop: impl Fn(&Value) -> bool,
) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let res = env
        .http
        .get(format!("{}{}", env.base, path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let mut out = vec![];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        let Some(Ok(chunk)) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            let done = stop(&v);
            out.push((name, v));
            if done {
                return out;
            }
        }
    }
    out
}

impl Env {
    /// Runs a second control plane with this environment's settings and `cp_env` and waits up
    /// to `timeout` for it to exit on its own (a start that must fail): its exit status and
    /// log, or `None` (after killing it) if it was still running.
    pub async fn control_plane_exit(
        &self,
        timeout: Duration,
    ) -> Option<(std::process::ExitStatus, String)> {
        let log = "control-plane-exit.log";
        let mut child = self
            .command(control_plane_bin(), log)
            .env("VOXFLEET_ADMIN_TOKEN", ADMIN)
            .envs(self.cp_env.iter().map(|(k, v)| (k, v)))
            .args(["--bind", "127.0.0.1:0"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some((status, self.log(log)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}
