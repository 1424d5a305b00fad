//! Section 3: submissions per second through the real `voxfleet-control-plane` binary, started on
//! port 0 with a fresh key prefix, a fresh database and a random bootstrap admin token. Each of
//! the concurrent clients is its own `reqwest::Client` (its own connection pool); they take
//! requests from a shared counter until the fixed count is done. No worker runs meanwhile.
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::Mutex;

use crate::bench::Bench;
use crate::procs::Proc;
use crate::progress;
use crate::report::{ApiFigures, ApiRate};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ApiPlan {
    pub clients: usize,
    pub requests: usize,
    pub batches: usize,
    pub batch_size: usize,
}

/// A control plane the harness started: its process, base URL, admin token, key prefix and
/// database URL (a worker of the same run is given the last two).
pub struct ControlPlane {
    pub proc: Proc,
    pub base: String,
    pub token: String,
    pub prefix: String,
    pub db_url: String,
}

/// Starts the control plane on port 0 under a fresh prefix and database named by `tag`, and
/// waits until `/readyz` answers.
pub async fn start_control_plane(b: &Bench, tag: &str) -> anyhow::Result<ControlPlane> {
    let prefix = b.prefix(tag);
    let (_, db_url) = b.database(tag);
    let token = format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    let port_file = b.scratch.join(format!("control-plane-{tag}.addr"));
    let args = [
        "--bind".to_string(),
        "127.0.0.1:0".into(),
        "--port-file".into(),
        port_file.display().to_string(),
    ];
    let mut cp = Proc::spawn(
        "voxfleet-control-plane",
        &b.control_plane_bin,
        &args,
        &[
            ("VOXFLEET_ADMIN_TOKEN", token.as_str()),
            ("VOXFLEET_KEY_PREFIX", prefix.as_str()),
            ("VOXFLEET_DATABASE_URL", db_url.as_str()),
            ("VOXFLEET_REDIS_URL", b.redis_url.as_str()),
        ],
        b.log_path(&format!("control-plane-{tag}")),
    )?;
    let sp = progress::spinner("control plane starting");
    let addr = wait_for_port_file(&mut cp, &port_file).await?;
    let base = format!("http://{addr}");
    wait_ready(&mut cp, &base).await?;
    sp.finish_and_clear();
    Ok(ControlPlane {
        proc: cp,
        base,
        token,
        prefix,
        db_url,
    })
}

/// Starts the control plane, measures single and batch submissions, stops it. Failed requests
/// are counted (and the first one described in the returned warnings), not fatal.
pub async fn run(b: &Bench, plan: &ApiPlan) -> anyhow::Result<(ApiFigures, Vec<String>)> {
    let ControlPlane {
        proc: cp,
        base,
        token,
        ..
    } = start_control_plane(b, "api").await?;

    let clients: Vec<reqwest::Client> = (0..plan.clients.max(1))
        .map(|_| reqwest::Client::builder().build())
        .collect::<Result<_, _>>()?;
    let auth = format!("Bearer {token}");
    let single = Arc::new(br#"{"kind":"diagnostic","input":{}}"#.to_vec());
    let batch_body = {
        let jobs: Vec<serde_json::Value> = (0..plan.batch_size)
            .map(|_| serde_json::json!({"kind": "diagnostic", "input": {}}))
            .collect();
        Arc::new(serde_json::to_vec(&serde_json::json!({ "jobs": jobs }))?)
    };
    let single_url = format!("{base}/v1/jobs");
    let batch_url = format!("{base}/v1/jobs/batch");

    // Warm-up (not counted): one submission per client opens its connection.
    let warm = load(&clients, clients.len(), &single_url, &auth, &single, None).await;
    if warm.errors > 0 {
        bail!(
            "warm-up submissions failed: {}",
            warm.first_error.unwrap_or_default()
        );
    }

    let mut errors = Vec::new();
    let pb = progress::bar(plan.requests as u64, "API POST /v1/jobs");
    let s = load(
        &clients,
        plan.requests,
        &single_url,
        &auth,
        &single,
        Some(&pb),
    )
    .await;
    pb.finish_and_clear();
    if let Some(e) = &s.first_error {
        errors.push(format!(
            "POST /v1/jobs: {} of {} failed, first: {e}",
            s.errors, plan.requests
        ));
    }
    let pb = progress::bar(
        plan.batches as u64,
        format!("API POST /v1/jobs/batch x{}", plan.batch_size),
    );
    let bt = load(
        &clients,
        plan.batches,
        &batch_url,
        &auth,
        &batch_body,
        Some(&pb),
    )
    .await;
    pb.finish_and_clear();
    if let Some(e) = &bt.first_error {
        errors.push(format!(
            "POST /v1/jobs/batch: {} of {} failed, first: {e}",
            bt.errors, plan.batches
        ));
    }
    if let Err(e) = cp.stop(Duration::from_secs(20)).await {
        errors.push(format!("stopping the control plane: {e:#}"));
    }
    Ok((
        ApiFigures {
            clients: clients.len(),
            single: s.rate(plan.requests, 1),
            batch: bt.rate(plan.batches, plan.batch_size),
        },
        errors,
    ))
}

async fn wait_for_port_file(cp: &mut Proc, path: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        cp.check_alive()?;
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_string());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} wrote no port file within {STARTUP_TIMEOUT:?}",
                cp.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(cp: &mut Proc, base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        cp.check_alive()?;
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            _ if Instant::now() >= deadline => {
                bail!("{base}/readyz did not answer 200 within {STARTUP_TIMEOUT:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

struct Load {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Load {
    fn rate(&self, requests: usize, per_request: usize) -> ApiRate {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        ApiRate::Measured {
            requests,
            submissions: self.ok * per_request,
            errors: self.errors,
            seconds: secs,
            requests_per_s: self.ok as f64 / secs,
            submissions_per_s: (self.ok * per_request) as f64 / secs,
        }
    }
}

/// Sends `total` POSTs of `body` to `url` from all clients at once; 202 counts as success.
async fn load(
    clients: &[reqwest::Client],
    total: usize,
    url: &str,
    auth: &str,
    body: &Arc<Vec<u8>>,
    pb: Option<&indicatif::ProgressBar>,
) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for client in clients {
        let (client, next, first_error) = (client.clone(), next.clone(), first_error.clone());
        let (url, auth, body, pb) = (url.to_string(), auth.to_string(), body.clone(), pb.cloned());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0usize, 0usize);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let res = client
                    .post(&url)
                    .header(AUTHORIZATION, &auth)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.as_ref().clone())
                    .send()
                    .await;
                let err = match res {
                    Ok(r) => {
                        let status = r.status();
                        let text = r.bytes().await.unwrap_or_default();
                        (status != StatusCode::ACCEPTED).then(|| {
                            format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&text[..text.len().min(300)])
                            )
                        })
                    }
                    Err(e) => Some(format!("{e:#}")),
                };
                match err {
                    None => ok += 1,
                    Some(e) => {
                        errors += 1;
                        first_error.lock().await.get_or_insert(e);
                    }
                }
                if let Some(pb) = &pb {
                    pb.inc(1);
                }
            }
            (ok, errors)
        }));
    }
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        match t.await {
            Ok((o, e)) => {
                ok += o;
                errors += e;
            }
            Err(e) => {
                errors += 1;
                first_error
                    .lock()
                    .await
                    .get_or_insert(format!("client task: {e}"));
            }
        }
    }
    let elapsed = started.elapsed();
    let first_error = first_error.lock().await.take();
    Load {
        ok,
        errors,
        first_error,
        elapsed,
    }
}
