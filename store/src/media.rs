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

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("invalid storage URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("`{uri}` is not inside the configured storage ({store})")]
    OutsideStore { uri: String, store: String },
    #[error("object `{0}` not found in storage")]
    NotFound(String),
    #[error("storage: {0}")]
    Store(#[source] object_store::Error),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
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

    /// Maps a `file://` or `s3://` URI of an object already in this store to its key.
    pub fn key_for_uri(&self, uri: &str) -> Result<String, MediaError> {
        let outside = || MediaError::OutsideStore {
            uri: uri.to_owned(),
            store: self.url.to_string(),
        };
        let u = Url::parse(uri).map_err(|_| outside())?;
        if u.scheme() != self.url.scheme() || u.host_str() != self.url.host_str() {
            return Err(outside());
        }
        if u.scheme() == "file" {
            let p = u.to_file_path().map_err(|_| outside())?;
            let base = self.url.to_file_path().map_err(|_| outside())?;
            // Resolves `..` and symlinks, so a URI cannot point outside the store's folder.
            let p = p
                .canonicalize()
                .map_err(|_| MediaError::NotFound(uri.into()))?;
            let rel = p.strip_prefix(&base).map_err(|_| outside())?;
            return Ok(Path::from_iter(rel.iter().filter_map(|c| c.to_str())).to_string());
        }
        let (base, path) = (
            self.url.path().trim_matches('/'),
            u.path().trim_matches('/'),
        );
        let key = Path::parse(path).map_err(|_| outside())?;
        if !base.is_empty() && !key.prefix_matches(&Path::from(base)) {
            return Err(outside());
        }
        Ok(key.to_string())
    }

    /// Streams a local file into the store under `key`.
    pub async fn put_file(&self, key: &str, local: &FsPath) -> Result<(), MediaError> {
        let mut file = tokio::fs::File::open(local).await?;
        let upload = self.store.put_multipart(&Path::from(key)).await?;
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
        let mut stream = self.store.get(&Path::from(key)).await?.into_stream();
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
        Ok(self.store.head(&Path::from(key)).await?.size)
    }

    /// Deletes the object `key`; one already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), MediaError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
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
