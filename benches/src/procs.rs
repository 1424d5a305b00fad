//! Child processes (voxfleet's worker and control plane, the apalis-redis worker) behind a guard
//! that stops them on every way out of a section: normal end, error, panic or Ctrl-C.
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A running child. [`Proc::stop`] ends it gracefully (SIGTERM, then SIGKILL after a grace
/// period); dropping it without `stop` does the same, blocking for at most two seconds.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `program` with `args` and exactly the given `VOXFLEET_*` variables (any others
    /// from this environment are removed, so a developer's shell settings do not leak into the
    /// measurement). Its stdout and stderr go to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VOXFLEET_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fails (with the end of its log) if the child has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was already stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} exited early ({status}); end of its log {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 15)
            );
        }
        Ok(())
    }

    /// Sends SIGTERM and waits up to `grace` for the child to exit, then kills it.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("child already stopped")?;
        if child.try_wait()?.is_none() {
            sigterm(&child);
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.start_kill().ok();
                let status = child.wait().await?;
                bail!(
                    "{} did not exit within {grace:?} of SIGTERM; killed ({status})",
                    self.name
                )
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        sigterm(&child);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // kill_on_drop sends SIGKILL when `child` goes out of scope here.
        child.start_kill().ok();
    }
}

/// SIGTERM through kill(1): this crate forbids `unsafe`, and std has no safe signal API.
fn sigterm(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The last `lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
