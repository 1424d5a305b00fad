//! The development set: built on first use by `python/diarize_devset.py`, read from its
//! manifest, with RTTM references.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use voxfleet_speakers::Turn;

use super::progress::note;

pub(super) const DEVSET_SCRIPT: &str = include_str!("../../../python/diarize_devset.py");

pub(super) fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/voxfleet/diarize-devset")
}

#[derive(Debug, Deserialize)]
pub(super) struct Manifest {
    pub(super) items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Item {
    pub(super) id: String,
    pub(super) part: String,
    pub(super) split: String,
    pub(super) wav: String,
    pub(super) rttm: String,
    pub(super) speakers: usize,
    pub(super) overlap: bool,
    pub(super) duration_s: f64,
    /// The person behind each RTTM label `spk{i}`, where the set knows it.
    #[serde(default)]
    pub(super) voices: Option<Vec<String>>,
}

/// The development set's manifest, building the set first when it is not there or is of an
/// older version than the script (the script decides; it returns at once when it is built).
pub(super) fn manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    std::fs::create_dir_all(dir)?;
    let script = dir.join("diarize_devset.py");
    std::fs::write(&script, DEVSET_SCRIPT)?;
    if !path.is_file() {
        note(format!(
            "building the development set in {} (espeak-ng, sox, pip download, apt-get download; a few minutes)",
            dir.display()
        ));
    }
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .status()
        .context("python3")?;
    if !status.success() {
        bail!("{} failed: {status}", script.display());
    }
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

/// RTTM turns, speakers numbered by first appearance of their name.
pub(super) fn rttm(path: &Path) -> Result<Vec<Turn>> {
    Ok(rttm_with_names(path)?.0)
}

/// [`rttm`] with the label of each speaker index.
pub(super) fn rttm_with_names(path: &Path) -> Result<(Vec<Turn>, Vec<String>)> {
    let mut names: Vec<String> = Vec::new();
    let mut turns = Vec::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] != "SPEAKER" {
            continue;
        }
        let start: f64 = f[3].parse()?;
        let dur: f64 = f[4].parse()?;
        let speaker = match names.iter().position(|n| n == f[7]) {
            Some(i) => i,
            None => {
                names.push(f[7].to_string());
                names.len() - 1
            }
        };
        turns.push(Turn {
            start,
            end: start + dur,
            speaker,
        });
    }
    Ok((turns, names))
}

/// Speakers of `turns` with at least `min_s` of speech.
pub(super) fn speakers_with(turns: &[Turn], min_s: f64) -> usize {
    let mut total: BTreeMap<usize, f64> = BTreeMap::new();
    for t in turns {
        *total.entry(t.speaker).or_default() += t.end - t.start;
    }
    total.values().filter(|&&s| s >= min_s).count()
}
