//! voxfleet-testkit: what the workspace's tests share, as a dev-dependency (no shipped binary
//! links it; the benchmark harness uses its Redis Cluster).
//!
//! - [`work_dir`]: one temporary folder per test binary and label.
//! - [`espeak`]: sentences spoken by espeak-ng into WAV files.
//! - [`run_tool`] / [`require_tool`]: the command-line tools that make test audio. A tool that
//!   is missing fails the test with the package to install (`scripts/tools.sh` installs them
//!   all); no test skips itself silently.
//! - [`redis_url`] / [`RedisKeys`]: the test Redis and a key prefix whose keys are deleted when
//!   the test ends.
//! - [`cluster`]: a real Redis Cluster of six nodes on loopback.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod cluster;

/// `$TMPDIR/voxfleet-{label}-tests-{pid}`, created on first use.
pub fn work_dir(label: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxfleet-{label}-tests-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Runs a tool that makes test audio (espeak-ng, sox, ffmpeg); its stdout. Fails the test with
/// the tool's stderr, or with how to install it when it is missing.
pub fn run_tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (install espeak-ng, sox and ffmpeg: scripts/tools.sh)")
    });
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test, naming the Debian package to install, when `tool` cannot be run.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new(tool)
        .arg(if tool == "espeak-ng" {
            "--version"
        } else {
            "-h"
        })
        .output()
        .is_ok();
    assert!(
        found,
        "test needs `{tool}`: install the `{package}` package (apt-get install {package}; scripts/tools.sh does)"
    );
}

/// espeak-ng speech for tests.
pub mod espeak {
    use super::*;

    /// How espeak-ng speaks: a voice (`en-us`, `en-gb+f3`, …), a speed in words a minute and
    /// a pause between words in units of 10 ms; espeak-ng's own defaults where `None`.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Voice<'a> {
        pub voice: Option<&'a str>,
        pub wpm: Option<u32>,
        pub word_gap: Option<u32>,
    }

    /// `text` spoken in `voice` into a fresh WAV file (22.05 kHz, espeak-ng's rate) in `dir`;
    /// its path.
    pub fn say(dir: &Path, voice: Voice<'_>, text: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("say-{n}.wav"));
        let mut cmd = Command::new("espeak-ng");
        if let Some(v) = voice.voice {
            cmd.args(["-v", v]);
        }
        if let Some(s) = voice.wpm {
            cmd.args(["-s", &s.to_string()]);
        }
        if let Some(g) = voice.word_gap {
            cmd.args(["-g", &g.to_string()]);
        }
        run_tool(cmd.arg("-w").arg(&path).arg(text));
        path
    }
}

/// The test Redis: `VOXFLEET_TEST_REDIS_URL`, else the local one.
pub fn redis_url() -> String {
    std::env::var("VOXFLEET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A key prefix of its own for one test; every key under it (hash-tagged `{prefix:…}` or plain
/// `prefix:…`) is deleted when this is dropped.
pub struct RedisKeys {
    pub url: String,
    pub prefix: String,
}

impl RedisKeys {
    /// A fresh prefix `{label}-{unique}` on [`redis_url`].
    pub fn new(label: &str) -> Self {
        Self::on(redis_url(), label)
    }

    /// A fresh prefix `{label}-{unique}` on the Redis (or `redis+cluster://` Cluster) at `url`.
    pub fn on(url: String, label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            url,
            prefix: format!("{label}-{}-{n}-{nanos:x}", std::process::id()),
        }
    }

    /// Deletes every key under `prefix` (best effort: a test's clean-up never fails it). On a
    /// cluster, each node deletes the keys it holds (a replica refuses, harmlessly).
    pub fn delete_all(url: &str, prefix: &str) {
        let nodes: Vec<String> = match url.strip_prefix("redis+cluster://") {
            Some(rest) => rest
                .trim_end_matches('/')
                .split(',')
                .map(|n| format!("redis://{n}"))
                .collect(),
            None => vec![url.to_string()],
        };
        for node in nodes {
            Self::delete_on_node(&node, prefix);
        }
    }

    fn delete_on_node(url: &str, prefix: &str) {
        if let Ok(c) = redis::Client::open(url)
            && let Ok(mut con) = c.get_connection_with_timeout(std::time::Duration::from_secs(2))
        {
            for pat in [format!("{{{prefix}:*"), format!("{prefix}:*")] {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&pat)
                    .query(&mut con)
                    .unwrap_or_default();
                // one key per DEL: a cluster refuses a DEL across hash slots
                for chunk in keys.chunks(1000) {
                    let mut pipe = redis::pipe();
                    for k in chunk {
                        pipe.del(k).ignore();
                    }
                    let _: Result<(), _> = pipe.query(&mut con);
                }
            }
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        Self::delete_all(&self.url, &self.prefix);
    }
}
