//! The embedded backend: tantivy indices in a local directory, no server. The default.
//!
//! One tantivy index per logical index, in sub-folders of one directory (layout in
//! [`catalog`]); the `speakers` alias lives in `aliases.json`.
//!
//! **Text search** is tantivy's BM25 over `text` and `speakers` (English stemming,
//! lower-cased). A user's query string never fails: a query the parser refuses is parsed
//! leniently instead. Snippets are plain text (no highlight markup), at most 200 characters.
//!
//! **Vector search is an exact brute-force scan** (cosine = dot product of normalised
//! vectors) over each segment's vectors, decoded once into a contiguous `f32` matrix and
//! cached per segment (see [`vectors`]). Exact means no approximation error and no index to
//! tune; at the 10k–100k chunks one host holds, scanning a 100k × 384 matrix costs a few
//! milliseconds, and it needs no extra dependency. Millions of vectors are OpenSearch's job
//! (HNSW, [`crate::opensearch`]).
//!
//! **Several processes share the directory** (the control plane and workers on one host).
//! tantivy allows one writer per index, guarded by a lock file: each write call takes the
//! writer (waiting with backoff up to [`EmbeddedOptions::lock_timeout`], then
//! [`SearchError::Unavailable`]), commits, waits for merges and lets it go. Each process
//! keeps one reader per index, reloaded before every read (cheap when nothing changed), so
//! another process's finished writes are seen at once, and after its own commits, so its own writes are visible
//! when a call returns. An index another process created later is found on first use.
//! A recreate deletes every document and sets the new dimension in one commit, rather than
//! removing the folder under other processes' readers. Files of merged-away segments are
//! unlinked while other processes may still map them; on Unix the mapping stays valid.
//!
//! tantivy is blocking: every call runs on tokio's blocking pool.
mod catalog;
mod reads;
mod schema;
mod vectors;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tantivy::collector::{Count, TopDocs};
use tantivy::directory::error::LockError;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, InvertedIndexRangeQuery, Occur, Query, QueryParser,
    TermQuery, TermSetQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    TantivyError, Term,
};
use uuid::Uuid;

use self::catalog::{Catalog, Payload, io_err, kind_of};
use self::schema::{Fields, Kind, owner_term};
use self::vectors::{Filter, VectorCache};
use crate::{
    BackendHealth, CHUNKS, ChunkDoc, ChunkHit, DocKey, IndexInfo, Result, SPEAKERS_ALIAS, ScanPage,
    Scope, SearchError, SearchIndex, SpeakerDoc, SpeakerHit, speakers_index, text_start,
};

/// Snippet length, in characters.
const SNIPPET_CHARS: usize = 200;
/// Indexing memory of a writer (tantivy's minimum is 15 MB).
const WRITER_MEMORY: usize = 32_000_000;

/// Options of [`EmbeddedIndex::open_with`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How long a write waits for another process' writer before it fails as
    /// `Unavailable`. Default 30 s.
    pub lock_timeout: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(30),
        }
    }
}

fn be(e: TantivyError) -> SearchError {
    SearchError::Backend(e.to_string())
}

/// An index opened by this process.
struct Opened {
    name: String,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    vectors: VectorCache,
}

impl Opened {
    /// A searcher over the latest commit, whoever made it: the reader is reloaded first (a
    /// read of `meta.json`, and new segments opened only when it changed), so a write that
    /// another process has finished is seen at once rather than after the reload policy's
    /// delay.
    fn fresh_searcher(&self) -> Result<Searcher> {
        self.reader.reload().map_err(be)?;
        Ok(self.reader.searcher())
    }

    /// The dimension of the last commit.
    fn dim(&self) -> Result<Option<usize>> {
        let metas = self.index.load_metas().map_err(be)?;
        Ok(Payload::parse(metas.payload.as_deref()).map(|p| p.dim))
    }

    fn check_dim(&self, dim: Option<usize>, got: usize) -> Result<()> {
        match dim {
            Some(expected) if expected != got => Err(SearchError::DimensionMismatch {
                index: self.name.clone(),
                expected,
                got,
            }),
            _ => Ok(()),
        }
    }
}

/// The embedded backend; cheap to clone (clones share the open indices).
#[derive(Clone)]
pub struct EmbeddedIndex {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    options: EmbeddedOptions,
    open: Mutex<HashMap<String, Arc<Opened>>>,
}

/// What a write does with the writer: `dim` is the index's dimension (the last commit's);
/// the answer's second part is the dimension to commit (`None`: unchanged).
type WriteResult<R> = Result<(R, Option<usize>)>;

impl EmbeddedIndex {
    /// Opens (creating it if needed) the index directory `dir`, with default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                catalog: Catalog::open(dir)?,
                options,
                open: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        self.inner.catalog.dir()
    }

    /// Runs `f` on the blocking pool.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| SearchError::Backend(format!("index task failed: {e}")))?
    }
}

impl Inner {
    fn open_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Opened>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open index `name`, opening it if it exists on disk (perhaps created by another
    /// process since); `None` if it does not exist.
    fn opened(&self, name: &str) -> Result<Option<Arc<Opened>>> {
        let kind = kind_of(name)?;
        if let Some(o) = self.open_map().get(name) {
            return Ok(Some(o.clone()));
        }
        if !self.catalog.exists(name) {
            return Ok(None);
        }
        let index = Index::open_in_dir(self.catalog.index_dir(name)).map_err(be)?;
        let fields = kind.fields(&index.schema())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(be)?;
        let opened = Arc::new(Opened {
            name: name.to_owned(),
            index,
            reader,
            fields,
            vectors: VectorCache::default(),
        });
        Ok(Some(
            self.open_map()
                .entry(name.to_owned())
                .or_insert(opened)
                .clone(),
        ))
    }

    fn require(&self, name: &str) -> Result<Arc<Opened>> {
        self.opened(name)?
            .ok_or_else(|| SearchError::NoSuchIndex(name.to_owned()))
    }

    /// Opens `name`, creating it with `dim` if missing. Creation builds the index in a
    /// temporary folder and renames it into place, so other processes never see a half
    /// made index; when two race, the loser's rename fails and it uses the winner's.
    /// The answer says whether this call created it.
    fn create(&self, name: &str, dim: usize) -> Result<(Arc<Opened>, bool)> {
        if let Some(o) = self.opened(name)? {
            return Ok((o, false));
        }
        let kind = kind_of(name)?;
        let tmp = self
            .catalog
            .dir()
            .join(format!(".creating-{name}-{}", Uuid::new_v4()));
        let made = (|| {
            std::fs::create_dir(&tmp).map_err(|e| io_err("creating an index folder", e))?;
            let index = Index::create_in_dir(&tmp, kind.schema()).map_err(be)?;
            let mut writer: IndexWriter = index
                .writer_with_num_threads(1, WRITER_MEMORY)
                .map_err(be)?;
            let mut commit = writer.prepare_commit().map_err(be)?;
            commit.set_payload(&Payload { dim }.to_json());
            commit.commit().map_err(be)?;
            writer.wait_merging_threads().map_err(be)?;
            Ok::<_, SearchError>(std::fs::rename(&tmp, self.catalog.index_dir(name)).is_ok())
        })();
        let created = matches!(made, Ok(true));
        if !created {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made?;
        Ok((self.require(name)?, created))
    }

    /// Takes `opened`'s writer (waiting for other processes), runs `op` with a searcher that
    /// sees every commit so far, commits and reloads our reader.
    fn write<R>(
        &self,
        opened: &Opened,
        op: impl FnOnce(&IndexWriter, &Searcher, Option<usize>) -> WriteResult<R>,
    ) -> Result<R> {
        let mut writer = self.writer(opened)?;
        opened.reader.reload().map_err(be)?;
        let searcher = opened.reader.searcher();
        let dim = opened.dim()?;
        let (out, new_dim) = match op(&writer, &searcher, dim) {
            Ok(x) => x,
            Err(e) => {
                let _ = writer.rollback();
                return Err(e);
            }
        };
        let mut commit = writer.prepare_commit().map_err(be)?;
        if let Some(dim) = new_dim.or(dim) {
            commit.set_payload(&Payload { dim }.to_json());
        }
        commit.commit().map_err(be)?;
        writer.wait_merging_threads().map_err(be)?;
        opened.reader.reload().map_err(be)?;
        Ok(out)
    }

    fn writer(&self, opened: &Opened) -> Result<IndexWriter> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match opened.index.writer_with_num_threads(1, WRITER_MEMORY) {
                Ok(w) => return Ok(w),
                Err(TantivyError::LockFailure(LockError::LockBusy, _)) => {
                    if started.elapsed() >= self.options.lock_timeout {
                        return Err(SearchError::Unavailable(format!(
                            "index `{}` is locked by another writer",
                            opened.name
                        )));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                Err(e) => return Err(be(e)),
            }
        }
    }

    fn ensure(&self, name: &str, dim: usize) -> Result<()> {
        let (opened, _) = self.create(name, dim)?;
        opened.check_dim(opened.dim()?, dim)
    }

    fn recreate(&self, name: &str, dim: usize) -> Result<()> {
        let (opened, created) = self.create(name, dim)?;
        if created {
            return Ok(());
        }
        self.write(&opened, |w, _, _| {
            w.delete_all_documents().map_err(be)?;
            Ok(((), Some(dim)))
        })
    }

    fn replace_chunks(&self, files: Vec<(Uuid, Vec<ChunkDoc>)>) -> Result<()> {
        for (file_id, docs) in &files {
            if let Some(d) = docs.iter().find(|d| d.file_id != *file_id) {
                return Err(SearchError::Invalid(format!(
                    "chunk `{}` belongs to file {}, listed under {file_id}",
                    d.id, d.file_id
                )));
            }
        }
        let opened = self.require(CHUNKS)?;
        let f = &opened.fields;
        self.write(&opened, |w, _, dim| {
            for (file_id, docs) in &files {
                w.delete_term(Term::from_field_text(f.file_id, &file_id.to_string()));
                for d in docs {
                    opened.check_dim(dim, d.vector.len())?;
                    w.add_document(f.chunk_doc(d)?).map_err(be)?;
                }
            }
            Ok(((), None))
        })
    }

    fn replace_speakers(&self, profile: &str, files: Vec<(Uuid, Vec<SpeakerDoc>)>) -> Result<()> {
        for (file_id, docs) in &files {
            if let Some(d) = docs.iter().find(|d| d.file_id != *file_id) {
                return Err(SearchError::Invalid(format!(
                    "speaker {} belongs to file {}, listed under {file_id}",
                    d.speaker_id, d.file_id
                )));
            }
        }
        let opened = self.require(&speakers_index(profile))?;
        let f = &opened.fields;
        self.write(&opened, |w, _, dim| {
            for (file_id, docs) in &files {
                w.delete_term(Term::from_field_text(f.file_id, &file_id.to_string()));
                for d in docs {
                    opened.check_dim(dim, d.vector.len())?;
                    w.delete_term(Term::from_field_text(f.key, &d.speaker_id.to_string()));
                    w.add_document(f.speaker_doc(d)?).map_err(be)?;
                }
            }
            Ok(((), None))
        })
    }

    fn upsert_speakers(&self, profile: &str, docs: Vec<SpeakerDoc>) -> Result<()> {
        let opened = self.require(&speakers_index(profile))?;
        let f = &opened.fields;
        self.write(&opened, |w, _, dim| {
            for d in &docs {
                opened.check_dim(dim, d.vector.len())?;
                w.delete_term(Term::from_field_text(f.key, &d.speaker_id.to_string()));
                w.add_document(f.speaker_doc(d)?).map_err(be)?;
            }
            Ok(((), None))
        })
    }

    fn delete_docs(&self, index: &str, ids: &[String]) -> Result<u64> {
        let name = self.catalog.resolve(index)?;
        let Some(opened) = self.opened(&name)? else {
            return Ok(0);
        };
        let key = opened.fields.key;
        let terms: Vec<Term> = ids
            .iter()
            .map(|id| Term::from_field_text(key, id))
            .collect();
        self.write(&opened, |w, searcher, _| {
            let count = searcher
                .search(&TermSetQuery::new(terms.clone()), &Count)
                .map_err(be)?;
            for t in terms {
                w.delete_term(t);
            }
            Ok((count as u64, None))
        })
    }

    fn delete_file(&self, file_id: Uuid) -> Result<()> {
        for name in self.catalog.list()? {
            let opened = self.require(&name)?;
            let term = Term::from_field_text(opened.fields.file_id, &file_id.to_string());
            self.write(&opened, |w, _, _| {
                w.delete_term(term);
                Ok(((), None))
            })?;
        }
        Ok(())
    }
}

impl SearchIndex for EmbeddedIndex {
    async fn ensure_chunks(&self, dim: usize) -> Result<()> {
        self.run(move |i| i.ensure(CHUNKS, dim)).await
    }

    async fn recreate_chunks(&self, dim: usize) -> Result<()> {
        self.run(move |i| i.recreate(CHUNKS, dim)).await
    }

    async fn ensure_speakers(
        &self,
        profile: &str,
        dim: usize,
        default_alias_profile: &str,
    ) -> Result<()> {
        let name = speakers_index(profile);
        let default = speakers_index(default_alias_profile);
        kind_of(&default)?;
        self.run(move |i| {
            i.ensure(&name, dim)?;
            i.catalog.update_aliases(|aliases| {
                let missing = !aliases.contains_key(SPEAKERS_ALIAS);
                if missing {
                    aliases.insert(SPEAKERS_ALIAS.to_owned(), default);
                }
                Ok((missing, ()))
            })
        })
        .await
    }

    async fn recreate_speakers(&self, profile: &str, dim: usize) -> Result<()> {
        let name = speakers_index(profile);
        self.run(move |i| i.recreate(&name, dim)).await
    }

    async fn replace_chunks(&self, files: Vec<(Uuid, Vec<ChunkDoc>)>) -> Result<()> {
        self.run(move |i| i.replace_chunks(files)).await
    }

    async fn replace_speakers(
        &self,
        profile: &str,
        files: Vec<(Uuid, Vec<SpeakerDoc>)>,
    ) -> Result<()> {
        let profile = profile.to_owned();
        self.run(move |i| i.replace_speakers(&profile, files)).await
    }

    async fn upsert_speakers(&self, profile: &str, docs: Vec<SpeakerDoc>) -> Result<()> {
        let profile = profile.to_owned();
        self.run(move |i| i.upsert_speakers(&profile, docs)).await
    }

    async fn delete_docs(&self, index: &str, ids: &[String]) -> Result<u64> {
        let (index, ids) = (index.to_owned(), ids.to_vec());
        self.run(move |i| i.delete_docs(&index, &ids)).await
    }

    async fn delete_file(&self, file_id: Uuid) -> Result<()> {
        self.run(move |i| i.delete_file(file_id)).await
    }

    async fn search_text(&self, query: &str, scope: Scope, limit: usize) -> Result<Vec<ChunkHit>> {
        let query = query.to_owned();
        self.run(move |i| i.search_text(&query, scope, limit)).await
    }

    async fn search_vector(
        &self,
        vector: &[f32],
        scope: Scope,
        limit: usize,
    ) -> Result<Vec<ChunkHit>> {
        let vector = vector.to_vec();
        self.run(move |i| i.search_vector(&vector, scope, limit))
            .await
    }

    async fn similar_speakers(
        &self,
        index_or_alias: &str,
        vector: &[f32],
        scope: Scope,
        exclude: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SpeakerHit>> {
        let (name, vector) = (index_or_alias.to_owned(), vector.to_vec());
        self.run(move |i| i.similar_speakers(&name, &vector, scope, exclude, limit))
            .await
    }

    async fn get_speaker(
        &self,
        index_or_alias: &str,
        speaker_id: Uuid,
    ) -> Result<Option<SpeakerDoc>> {
        let name = index_or_alias.to_owned();
        self.run(move |i| i.get_speaker(&name, speaker_id)).await
    }

    async fn scan(&self, index: &str, cursor: Option<String>, limit: usize) -> Result<ScanPage> {
        let index = index.to_owned();
        self.run(move |i| i.scan(&index, cursor, limit)).await
    }

    async fn indices(&self) -> Result<Vec<IndexInfo>> {
        self.run(|i| i.indices()).await
    }

    async fn alias_target(&self, alias: &str) -> Result<Option<String>> {
        let alias = alias.to_owned();
        self.run(move |i| Ok(i.catalog.aliases()?.remove(&alias)))
            .await
    }

    async fn swap_alias(&self, alias: &str, index: &str) -> Result<()> {
        let (alias, index) = (alias.to_owned(), index.to_owned());
        self.run(move |i| i.swap_alias(&alias, &index)).await
    }

    async fn health(&self) -> BackendHealth {
        let dir: PathBuf = self.dir().to_owned();
        let answer = self.run(|i| i.catalog.list()).await;
        let (ok, detail) = match answer {
            Ok(names) => (
                true,
                format!("{} indices in {}", names.len(), dir.display()),
            ),
            Err(e) => (false, e.to_string()),
        };
        BackendHealth {
            backend: "embedded".into(),
            ok,
            detail,
        }
    }
}
