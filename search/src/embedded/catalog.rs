//! The embedded backend's directory layout: which names are indices, where each lives, and
//! the alias map in `aliases.json`.
//!
//! ```text
//! dir/
//!   aliases.json        {"speakers": "speakers_v3"}, replaced atomically (temp + fsync + rename)
//!   aliases.lock        held while an alias is read-modified-written (several processes)
//!   transcript_chunks/  one tantivy index each; the vector dimension is the payload of its
//!   speakers_v3/        last commit ({"dim": 384}), so it changes atomically with the data
//! ```
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schema::Kind;
use crate::{CHUNKS, SearchError};

const ALIASES: &str = "aliases.json";
const ALIASES_LOCK: &str = "aliases.lock";

pub(crate) fn io_err(what: &str, e: std::io::Error) -> SearchError {
    SearchError::Backend(format!("{what}: {e}"))
}

/// The document shape of index `name`; anything but `transcript_chunks` and
/// `speakers_<profile>` (profile: ASCII letters, digits, `-`, `_`) is refused, which also
/// keeps names from escaping the directory.
pub(crate) fn kind_of(name: &str) -> Result<Kind, SearchError> {
    if name == CHUNKS {
        return Ok(Kind::Chunks);
    }
    let profile = name.strip_prefix("speakers_").unwrap_or_default();
    let valid = !profile.is_empty()
        && profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(Kind::Speakers)
    } else {
        Err(SearchError::Invalid(format!(
            "`{name}` is not an index name"
        )))
    }
}

/// The commit payload of an index: what tantivy's schema does not say.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Payload {
    pub dim: usize,
}

impl Payload {
    pub fn parse(payload: Option<&str>) -> Option<Payload> {
        payload.and_then(|p| serde_json::from_str(p).ok())
    }
    pub fn to_json(self) -> String {
        serde_json::json!({ "dim": self.dim }).to_string()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    dir: PathBuf,
}

impl Catalog {
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        fs::create_dir_all(dir).map_err(|e| io_err(&format!("creating {}", dir.display()), e))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether `name` holds a committed tantivy index.
    pub fn exists(&self, name: &str) -> bool {
        self.index_dir(name).join("meta.json").is_file()
    }

    /// The index names present on disk, sorted.
    pub fn list(&self) -> Result<Vec<String>, SearchError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_err("listing the index dir", e))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| kind_of(n).is_ok() && self.exists(n))
            .collect();
        names.sort();
        Ok(names)
    }

    pub fn aliases(&self) -> Result<BTreeMap<String, String>, SearchError> {
        match fs::read(self.dir.join(ALIASES)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SearchError::Backend(format!("{ALIASES} is unreadable: {e}"))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err(&format!("reading {ALIASES}"), e)),
        }
    }

    /// An alias' target, or the name itself when it is no alias.
    pub fn resolve(&self, name: &str) -> Result<String, SearchError> {
        Ok(self
            .aliases()?
            .remove(name)
            .unwrap_or_else(|| name.to_owned()))
    }

    /// Read-modify-write of the alias map under an exclusive file lock (other processes
    /// wait), then an atomic replace of `aliases.json`. `change` returns whether it changed
    /// anything.
    pub fn update_aliases<R>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(bool, R), SearchError>,
    ) -> Result<R, SearchError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(ALIASES_LOCK))
            .map_err(|e| io_err("opening the alias lock", e))?;
        lock.lock()
            .map_err(|e| io_err("taking the alias lock", e))?;
        let mut aliases = self.aliases()?;
        let (changed, out) = change(&mut aliases)?;
        if changed {
            let json = serde_json::to_vec_pretty(&aliases)
                .map_err(|e| SearchError::Backend(e.to_string()))?;
            write_atomic(&self.dir, ALIASES, &json)?;
        }
        // Dropping the file releases the lock.
        drop(lock);
        Ok(out)
    }
}

/// Writes `dir/name` so that readers see the old or the new content, never a part: a temp
/// file in the same directory, fsync, rename over, fsync of the directory.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SearchError> {
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io_err(&format!("writing {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(kind_of("transcript_chunks").ok(), Some(Kind::Chunks));
        assert_eq!(kind_of("speakers_v4").ok(), Some(Kind::Speakers));
        for bad in [
            "speakers_",
            "speakers_../x",
            "speakers",
            "other",
            "speakers_a/b",
            "",
        ] {
            assert!(kind_of(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn payload_round_trips() {
        let p = Payload { dim: 384 };
        assert_eq!(Payload::parse(Some(&p.to_json())), Some(p));
        assert_eq!(Payload::parse(None), None);
        assert_eq!(Payload::parse(Some("junk")), None);
    }
}
