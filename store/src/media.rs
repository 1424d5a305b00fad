//! Media objects through `object_store`: the local filesystem by default
//! (`file://./data/media`), S3 or MinIO by URL (`s3://bucket/prefix`, credentials and endpoint
//! from the usual `AWS_*` variables). Objects move as streams, never whole in memory.
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;
use uuid::Uuid;
use voxfleet_errors::{Classified, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("invalid storage URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("`{uri}` is not inside the configured storage ({store})")]
    OutsideStore { uri: String, store: String },
    #[error("not a valid object key: {reason}")]
    BadKey { reason: String },
    #[error("object `{0}` not found in storage")]
    NotFound(String),
    #[error("storage: {0}")]
    Store(#[source] object_store::Error),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
}

impl Classified for MediaError {
    fn code(&self) -> &'static str {
        match self {
            MediaError::NotFound(_) => "file_missing",
            _ => "storage_unavailable",
        }
    }

    /// A missing object stays missing; anything else is storage not answering as it should
    /// (its detail, which may name host paths or bucket URLs, goes to the log).
    fn class(&self) -> ErrorClass {
        match self {
            MediaError::NotFound(_) => ErrorClass::Permanent,
            _ => ErrorClass::Unavailable,
        }
    }

    fn public_message(&self) -> String {
        match self {
            MediaError::NotFound(_) => "the stored recording is gone from storage".into(),
            _ => "media storage is unavailable".into(),
        }
    }
}

impl From<object_store::Error> for MediaError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => MediaError::NotFound(path),
            e => MediaError::Store(e),
        }
    }
}

/// Where media objects live. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    /// What the configured URL resolved to (an absolute `file://` URL or `s3://bucket/prefix`).
    url: Url,
    /// Object keys of uploads start with this prefix (the URL's path for S3; empty locally).
    prefix: Path,
}

impl MediaStore {
    /// Opens the store named by `url`. A relative `file://./dir` is taken from the current
    /// directory, and a missing local directory is created.
    pub fn from_url(url: &str) -> Result<Self, MediaError> {
        let bad = |reason: String| MediaError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        if let Some(rest) = url.strip_prefix("file://") {
            let dir = if rest.starts_with('/') {
                PathBuf::from(rest)
            } else {
                std::env::current_dir()?.join(rest)
            };
            std::fs::create_dir_all(&dir)?;
            let dir = dir.canonicalize()?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| bad(e.to_string()))?
                .with_automatic_cleanup(true);
            let url = Url::from_directory_path(&dir).map_err(|_| bad("not a directory".into()))?;
            return Ok(Self {
                store: Arc::new(store),
                url,
                prefix: Path::default(),
            });
        }
        let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if parsed.scheme() != "s3" {
            return Err(bad("expected file://DIR or s3://BUCKET[/PREFIX]".into()));
        }
        let store = AmazonS3Builder::from_env()
            .with_url(url)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let prefix = Path::from(parsed.path().trim_matches('/'));
        Ok(Self {
            store: Arc::new(store),
            url: parsed,
            prefix,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The key of a new upload.
    pub fn key_for_upload(&self, id: Uuid) -> String {
        self.prefix
            .clone()
            .join("files")
            .join(id.to_string())
            .to_string()
    }

    /// The folder (key prefix) of uploads: `<prefix>/files/`. Its objects belong to their
    /// upload records and are never registered by URI.
    pub fn uploads_prefix(&self) -> Path {
        self.prefix.clone().join("files")
    }

    /// The folder (key prefix) a non-admin owner may register objects from:
    /// `<prefix>/users/<owner>/` (a platform puts a user's recordings there).
    pub fn owner_prefix(&self, owner: Uuid) -> Path {
        self.prefix.clone().join("users").join(owner.to_string())
    }

    /// Whether `key` lies inside the folder `prefix` (whole segments: `users/a` is not inside
    /// `users/ab`).
    pub fn key_in(key: &str, prefix: &Path) -> bool {
        Path::parse(key).is_ok_and(|k| k.prefix_matches(prefix) && k != *prefix)
    }

    /// Maps a `file://` or `s3://` URI of an object in this store to its key. URIs are URLs:
    /// their path is percent-decoded once, so the key `a%20b` is `…/a%2520b` and `a b` is
    /// `…/a%20b`. The check is lexical first (scheme, bucket, prefix, no `.`/`..` segments,
    /// UTF-8), then, for local storage, symlinks are resolved and must stay inside the store.
    /// A URI outside the store gives `OutsideStore` and a missing object `NotFound`; callers
    /// facing users answer both the same way, so that neither tells what exists outside.
    pub fn key_for_uri(&self, uri: &str) -> Result<String, MediaError> {
        let outside = || MediaError::OutsideStore {
            uri: short(uri),
            store: self.url.to_string(),
        };
        let u = Url::parse(uri).map_err(|_| outside())?;
        if u.scheme() != self.url.scheme() || u.host_str() != self.url.host_str() {
            return Err(outside());
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(outside());
        }
        // The URL parser has already applied `.` and `..` segments; percent-encoded ones
        // (`%2e%2e`) are decoded below and refused as segments.
        let raw = u.path();
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| MediaError::BadKey {
                reason: "the path is not valid UTF-8".into(),
            })?;
        let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(outside());
        }
        if u.scheme() == "file" {
            let base = self.url.to_file_path().map_err(|_| outside())?;
            let base_parts: Vec<String> = base
                .iter()
                .skip(1)
                .map(|c| c.to_str().map(str::to_owned).ok_or_else(outside))
                .collect::<Result<_, _>>()?;
            // Lexically inside the store's folder, before the file system is asked anything.
            if segments.len() <= base_parts.len()
                || segments.iter().zip(&base_parts).any(|(a, b)| a != b)
            {
                return Err(outside());
            }
            let lexical = segments[base_parts.len()..].join("/");
            let key = Path::parse(&lexical).map_err(|e| MediaError::BadKey {
                reason: e.to_string(),
            })?;
            // Resolves symlinks: the object actually read must be inside the store too, and
            // its key is the resolved one (so a link cannot alias another owner's object).
            let p = base.join(&lexical);
            let p = p
                .canonicalize()
                .map_err(|_| MediaError::NotFound(key.to_string()))?;
            let rel = p.strip_prefix(&base).map_err(|_| outside())?;
            let parts: Vec<&str> = rel
                .iter()
                .map(|c| c.to_str().ok_or_else(outside))
                .collect::<Result<_, _>>()?;
            let key = Path::parse(parts.join("/")).map_err(|e| MediaError::BadKey {
                reason: e.to_string(),
            })?;
            if !p.is_file() {
                return Err(MediaError::NotFound(key.to_string()));
            }
            return Ok(key.to_string());
        }
        let key = Path::parse(segments.join("/")).map_err(|e| MediaError::BadKey {
            reason: e.to_string(),
        })?;
        if !key.prefix_matches(&self.prefix) || key == self.prefix {
            return Err(outside());
        }
        Ok(key.to_string())
    }

    /// Streams a local file into the store under `key`.
    pub async fn put_file(&self, key: &str, local: &FsPath) -> Result<(), MediaError> {
        let mut file = tokio::fs::File::open(local).await?;
        let upload = self.store.put_multipart(&object_path(key)?).await?;
        let mut w = WriteMultipart::new(upload);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4).await?;
            w.write(&buf[..n]);
        }
        w.finish().await?;
        Ok(())
    }

    /// Streams the object `key` into the local file `dest`; returns its size.
    pub async fn download_to(&self, key: &str, dest: &FsPath) -> Result<u64, MediaError> {
        let mut stream = self.store.get(&object_path(key)?).await?.into_stream();
        let mut out = tokio::fs::File::create(dest).await?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(n)
    }

    /// Size of the object `key`.
    pub async fn size(&self, key: &str) -> Result<u64, MediaError> {
        Ok(self.store.head(&object_path(key)?).await?.size)
    }

    /// Deletes the object `key`; one already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), MediaError> {
        match self.store.delete(&object_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// An object key as stored in a file record: the `object_store` path itself (never encoded
/// again, so a key holding `%` names the object it says).
fn object_path(key: &str) -> Result<Path, MediaError> {
    Path::parse(key).map_err(|e| MediaError::BadKey {
        reason: e.to_string(),
    })
}

/// At most 200 bytes of a client's string, for messages and logs.
fn short(s: &str) -> String {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}…", &s[..end])
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_round_trip_and_uri_mapping() {
        let dir = tempfile_dir();
        let url = format!("file://{}", dir.display());
        let m = MediaStore::from_url(&url).unwrap();
        let src = dir.join("incoming.bin");
        std::fs::write(&src, vec![7u8; 3 << 20]).unwrap();
        let key = m.key_for_upload(Uuid::nil());
        m.put_file(&key, &src).await.unwrap();
        assert_eq!(m.size(&key).await.unwrap(), 3 << 20);
        let back = dir.join("back.bin");
        assert_eq!(m.download_to(&key, &back).await.unwrap(), 3 << 20);
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());

        let uri = format!("file://{}", src.display());
        assert_eq!(m.key_for_uri(&uri).unwrap(), "incoming.bin");
        let outside = format!("file://{}/../", dir.display());
        assert!(matches!(
            m.key_for_uri(&outside),
            Err(MediaError::OutsideStore { .. })
        ));
        assert!(matches!(
            m.key_for_uri("s3://bucket/x.wav"),
            Err(MediaError::OutsideStore { .. })
        ));

        // Keys with `%` or spaces: the URI is decoded once and the key used as it is.
        let odd = dir.join("calls").join("a%20b c.wav");
        std::fs::create_dir_all(odd.parent().unwrap()).unwrap();
        std::fs::write(&odd, b"x").unwrap();
        let uri = Url::from_file_path(&odd).unwrap().to_string();
        assert!(uri.ends_with("/calls/a%2520b%20c.wav"), "{uri}");
        assert_eq!(m.key_for_uri(&uri).unwrap(), "calls/a%20b c.wav");
        assert_eq!(m.size("calls/a%20b c.wav").await.unwrap(), 1);
        // Not UTF-8: refused, never mapped to another object.
        let bad = format!("file://{}/calls/%FF.wav", dir.display());
        assert!(matches!(
            m.key_for_uri(&bad),
            Err(MediaError::BadKey { .. })
        ));
        // Encoded dot segments, host files, symlinks out of the store: outside.
        for uri in [
            format!("file://{}/calls/%2e%2e/%2e%2e/etc/passwd", dir.display()),
            "file:///etc/passwd".to_owned(),
            "file:///nonexistent/x.wav".to_owned(),
        ] {
            assert!(
                matches!(m.key_for_uri(&uri), Err(MediaError::OutsideStore { .. })),
                "{uri}"
            );
        }
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link.wav")).unwrap();
        let link = format!("file://{}/link.wav", dir.display());
        assert!(matches!(
            m.key_for_uri(&link),
            Err(MediaError::OutsideStore { .. })
        ));
        // Inside but missing, or a folder: not found.
        let missing = format!("file://{}/calls/none.wav", dir.display());
        assert!(matches!(
            m.key_for_uri(&missing),
            Err(MediaError::NotFound(_))
        ));
        let folder = format!("file://{}/calls", dir.display());
        assert!(matches!(
            m.key_for_uri(&folder),
            Err(MediaError::NotFound(_))
        ));

        // Namespaces.
        assert!(MediaStore::key_in(&key, &m.uploads_prefix()));
        let owner = Uuid::now_v7();
        let own = format!("users/{owner}/call.wav");
        assert!(MediaStore::key_in(&own, &m.owner_prefix(owner)));
        assert!(!MediaStore::key_in(&own, &m.owner_prefix(Uuid::nil())));
        assert!(!MediaStore::key_in(
            &format!("users/{owner}x/a"),
            &m.owner_prefix(owner)
        ));
        assert!(!MediaStore::key_in(
            &format!("users/{owner}"),
            &m.owner_prefix(owner)
        ));

        m.delete(&key).await.unwrap();
        m.delete(&key).await.unwrap();
        assert!(matches!(m.size(&key).await, Err(MediaError::NotFound(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("voxfleet-media-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
