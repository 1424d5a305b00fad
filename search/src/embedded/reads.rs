//! The embedded backend's reads: BM25 and vector search over chunks (scoped to an owner),
//! nearest speakers, one speaker's document, scans, and the index list.
use super::*;

impl Inner {
    pub(super) fn search_text(
        &self,
        query: &str,
        scope: Scope,
        limit: usize,
    ) -> Result<Vec<ChunkHit>> {
        let Some(opened) = self.opened(CHUNKS)? else {
            return Ok(Vec::new());
        };
        if query.trim().is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let f = &opened.fields;
        let (Some(text), Some(speakers)) = (f.text, f.speakers) else {
            return Err(SearchError::Backend(
                "chunk index without text fields".into(),
            ));
        };
        let parser = QueryParser::for_index(&opened.index, vec![text, speakers]);
        let user: Box<dyn Query> = match parser.parse_query(query) {
            Ok(q) => q,
            Err(_) => parser.parse_query_lenient(query).0,
        };
        let searcher = opened.fresh_searcher()?;
        let mut snippets = SnippetGenerator::create(&searcher, &*user, text).map_err(be)?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let scoped = with_scope(user, f, scope);
        let top = searcher
            .search(&*scoped, &TopDocs::with_limit(limit).order_by_score())
            .map_err(be)?;
        top.into_iter()
            .map(|(score, addr)| {
                let doc: TantivyDocument = searcher.doc(addr).map_err(be)?;
                let fragment = snippets.snippet_from_doc(&doc).fragment().trim().to_owned();
                let snippet = if fragment.is_empty() {
                    text_start(&f.text_of(&doc), SNIPPET_CHARS)
                } else {
                    fragment
                };
                f.chunk_hit(&doc, score, snippet)
            })
            .collect()
    }

    /// The `limit` nearest documents of `opened`, as stored documents with their scores.
    pub(super) fn nearest(
        &self,
        opened: &Opened,
        vector: &[f32],
        filter: &Filter<'_>,
        limit: usize,
    ) -> Result<Vec<(f32, TantivyDocument)>> {
        opened.check_dim(opened.dim()?, vector.len())?;
        let searcher = opened.fresh_searcher()?;
        let top = opened
            .vectors
            .top(&searcher, opened.fields.key_name, vector, filter, limit)?;
        top.into_iter()
            .map(|(score, addr): (f32, DocAddress)| Ok((score, searcher.doc(addr).map_err(be)?)))
            .collect()
    }

    pub(super) fn search_vector(
        &self,
        vector: &[f32],
        scope: Scope,
        limit: usize,
    ) -> Result<Vec<ChunkHit>> {
        let Some(opened) = self.opened(CHUNKS)? else {
            return Ok(Vec::new());
        };
        let filter = Filter {
            scope,
            exclude_key: None,
        };
        let f = &opened.fields;
        self.nearest(&opened, vector, &filter, limit)?
            .into_iter()
            .map(|(score, doc)| {
                f.chunk_hit(&doc, score, text_start(&f.text_of(&doc), SNIPPET_CHARS))
            })
            .collect()
    }

    pub(super) fn similar_speakers(
        &self,
        index_or_alias: &str,
        vector: &[f32],
        scope: Scope,
        exclude: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SpeakerHit>> {
        let name = self.catalog.resolve(index_or_alias)?;
        let Some(opened) = self.opened(&name)? else {
            return Ok(Vec::new());
        };
        let exclude = exclude.map(|u| u.to_string());
        let filter = Filter {
            scope,
            exclude_key: exclude.as_deref(),
        };
        self.nearest(&opened, vector, &filter, limit)?
            .into_iter()
            .map(|(score, doc)| opened.fields.speaker_hit(&doc, score))
            .collect()
    }

    pub(super) fn get_speaker(
        &self,
        index_or_alias: &str,
        speaker_id: Uuid,
    ) -> Result<Option<SpeakerDoc>> {
        let name = self.catalog.resolve(index_or_alias)?;
        let Some(opened) = self.opened(&name)? else {
            return Ok(None);
        };
        let f = &opened.fields;
        let query = TermQuery::new(
            Term::from_field_text(f.key, &speaker_id.to_string()),
            IndexRecordOption::Basic,
        );
        let searcher = opened.fresh_searcher()?;
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(be)?;
        match top.first() {
            None => Ok(None),
            Some((_, addr)) => {
                let doc: TantivyDocument = searcher.doc(*addr).map_err(be)?;
                f.speaker_from(&doc).map(Some)
            }
        }
    }

    pub(super) fn scan(
        &self,
        index: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage> {
        if limit == 0 {
            return Err(SearchError::Invalid("scan limit must be positive".into()));
        }
        let name = self.catalog.resolve(index)?;
        let opened = self.require(&name)?;
        let f = &opened.fields;
        let query: Box<dyn Query> = match &cursor {
            None => Box::new(AllQuery),
            Some(c) => Box::new(InvertedIndexRangeQuery::new(
                Bound::Excluded(Term::from_field_text(f.key, c)),
                Bound::Unbounded,
            )),
        };
        let searcher = opened.fresh_searcher()?;
        let top = searcher
            .search(
                &*query,
                &TopDocs::with_limit(limit).order_by_string_fast_field(f.key_name, Order::Asc),
            )
            .map_err(be)?;
        let mut keys = Vec::with_capacity(top.len());
        for (_, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(be)?;
            let id = f.str_of(&doc, f.key);
            let file_id = Uuid::parse_str(&f.str_of(&doc, f.file_id))
                .map_err(|_| SearchError::Backend(format!("document `{id}` has a bad file_id")))?;
            let speaker_id = match f.kind {
                Kind::Chunks => None,
                Kind::Speakers => Uuid::parse_str(&id).ok(),
            };
            keys.push(DocKey {
                id,
                file_id,
                speaker_id,
            });
        }
        let next = (keys.len() == limit)
            .then(|| keys.last().map(|k| k.id.clone()))
            .flatten();
        Ok(ScanPage { keys, next })
    }

    pub(super) fn indices(&self) -> Result<Vec<IndexInfo>> {
        self.catalog
            .list()?
            .into_iter()
            .map(|name| {
                let opened = self.require(&name)?;
                Ok(IndexInfo {
                    docs: opened.fresh_searcher()?.num_docs(),
                    dim: opened.dim()?,
                    name,
                })
            })
            .collect()
    }

    pub(super) fn swap_alias(&self, alias: &str, index: &str) -> Result<()> {
        if kind_of(alias).is_ok() {
            return Err(SearchError::Invalid(format!("`{alias}` is an index name")));
        }
        kind_of(index)?;
        if !self.catalog.exists(index) {
            return Err(SearchError::NoSuchIndex(index.to_owned()));
        }
        self.catalog.update_aliases(|aliases| {
            let changed = aliases.get(alias).map(String::as_str) != Some(index);
            aliases.insert(alias.to_owned(), index.to_owned());
            Ok((changed, ()))
        })
    }
}

/// `query` limited to `scope`'s owner (a filter: it adds nothing to the score).
fn with_scope(query: Box<dyn Query>, f: &Fields, scope: Scope) -> Box<dyn Query> {
    match scope {
        Scope::All => query,
        Scope::Owner(owner) => {
            let term = Term::from_field_text(f.owner, &owner_term(Some(owner)));
            let filter = ConstScoreQuery::new(
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                0.0,
            );
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Must, Box::new(filter)),
            ]))
        }
    }
}
