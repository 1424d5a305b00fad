//! `<models dir>/manifest.json`: what `fetch` installed (each produced file's sha256 and size,
//! the source packages), and the small file helpers (hashing, atomic writes) around it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ModelError;

pub const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// By model name (`whisper-tiny.en`).
    pub models: BTreeMap<String, ModelRecord>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            version: MANIFEST_VERSION,
            models: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Seconds since the Unix epoch when the files were produced.
    pub installed_at: u64,
    /// `name==version` of each package the files came from.
    pub packages: Vec<String>,
    /// Source files and their sha256 (as pinned in the registry when installed).
    pub sources: Vec<SourceRecord>,
    /// Produced files, relative to `<root>/<model>/`.
    pub files: BTreeMap<String, FileRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub package: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    /// Reads `<root>/manifest.json`; an absent file is an empty manifest.
    pub fn load(root: &Path) -> Result<Self, ModelError> {
        let path = root.join(MANIFEST_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ModelError::io("reading", path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| ModelError::Manifest { path, source })
    }

    /// Writes `<root>/manifest.json` atomically.
    pub fn save(&self, root: &Path) -> Result<(), ModelError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|source| ModelError::Manifest {
            path: root.join(MANIFEST_FILE),
            source,
        })?;
        bytes.push(b'\n');
        write_atomic(&root.join(MANIFEST_FILE), &bytes)
    }
}

/// Lower-case hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Streams a file through sha256; returns (hex digest, size).
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// A temporary path next to `path` (same directory, so a rename is atomic).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Moves a finished temporary file into place (fsync first, then rename).
pub(crate) fn commit_temp(tmp: &Path, path: &Path) -> Result<(), ModelError> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| ModelError::io("syncing", tmp, e))?;
    fs::rename(tmp, path).map_err(|e| {
        let _ = fs::remove_file(tmp);
        ModelError::io("renaming into place", path, e)
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see a
/// partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| ModelError::io("creating", parent, e))?;
    }
    let tmp = temp_path(path);
    File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            ModelError::io("writing", &tmp, e)
        })?;
    commit_temp(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxfleet_errors::Classified;

    #[test]
    fn hashes_agree_and_manifest_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.bin");
        write_atomic(&p, b"abc").unwrap();
        // sha256("abc") from FIPS 180-2.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        assert_eq!(sha256_file(&p).unwrap(), (abc.to_string(), 3));

        assert_eq!(Manifest::load(dir.path()).unwrap(), Manifest::default());
        let mut m = Manifest::default();
        m.models.insert(
            "x".into(),
            ModelRecord {
                installed_at: 1,
                packages: vec!["p==1".into()],
                sources: vec![],
                files: [(
                    "b.bin".to_string(),
                    FileRecord {
                        sha256: abc.into(),
                        size: 3,
                    },
                )]
                .into(),
            },
        );
        m.save(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), m);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        fs::write(dir.path().join(MANIFEST_FILE), b"{not json").unwrap();
        assert_eq!(
            Manifest::load(dir.path()).unwrap_err().code(),
            "model_corrupt"
        );
    }
}
