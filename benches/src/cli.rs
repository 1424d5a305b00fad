//! Helpers the model benchmarks (`voxfleet-bench-asr`, `voxfleet-bench-speakers`) share:
//! included with `#[path]`, as the binaries have no library crate between them.
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// A clap value parser for counts that must be at least 1.
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// Runs a tool (espeak-ng, sox, a Python peer); its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
