//! Checking produced files against their manifest records.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::manifest::{FileRecord, sha256_file};

/// The state of one produced file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileState {
    Ok,
    Missing,
    /// Present, but size or sha256 differ from the manifest (or it cannot be read).
    Corrupt {
        detail: String,
    },
    /// Present on disk but absent from the manifest.
    NotRecorded,
}

impl fmt::Display for FileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileState::Ok => f.write_str("ok"),
            FileState::Missing => f.write_str("missing"),
            FileState::Corrupt { detail } => write!(f, "corrupt ({detail})"),
            FileState::NotRecorded => f.write_str("not recorded in the manifest"),
        }
    }
}

/// Size first (cheap), then the full sha256.
pub fn check_file(path: &Path, rec: &FileRecord) -> FileState {
    match check_size(path, rec) {
        Ok(()) => {}
        Err(s) => return s,
    }
    match sha256_file(path) {
        Ok((sha, _)) if sha == rec.sha256 => FileState::Ok,
        Ok((sha, _)) => FileState::Corrupt {
            detail: format!("sha256 {sha}, manifest says {}", rec.sha256),
        },
        Err(e) => FileState::Corrupt {
            detail: format!("unreadable: {e}"),
        },
    }
}

/// Only the existence and size part of [`check_file`].
pub(crate) fn check_size(path: &Path, rec: &FileRecord) -> Result<(), FileState> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FileState::Missing),
        Err(e) => Err(FileState::Corrupt {
            detail: format!("unreadable: {e}"),
        }),
        Ok(m) if !m.is_file() => Err(FileState::Corrupt {
            detail: "not a regular file".into(),
        }),
        Ok(m) if m.len() != rec.size => Err(FileState::Corrupt {
            detail: format!("{} bytes, manifest says {}", m.len(), rec.size),
        }),
        Ok(_) => Ok(()),
    }
}
