//! Exact vector search: each segment's vectors decoded once into one contiguous `f32`
//! matrix, then a dot-product scan over the live rows (vectors are L2-normalised, so the
//! dot product is the cosine similarity).
//!
//! Segments never change after they are written (deletions arrive as a new alive bitset,
//! applied at query time), so a decoded segment is cached under its [`SegmentId`] for as
//! long as the segment is searchable; [`VectorCache::retain`] drops the entries of segments
//! that merges or a recreate removed.
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use tantivy::index::SegmentId;
use tantivy::{DocAddress, DocId, Searcher, SegmentReader};
use uuid::Uuid;

use super::schema::{OWNER, VECTOR, extend_vector};
use crate::{Scope, SearchError};

/// Rows per parallel task; smaller segments are scanned on the calling thread.
const PAR_ROWS: usize = 8192;

/// One segment's vectors, rows in doc-id order.
pub(crate) struct SegVectors {
    dim: usize,
    /// `rows.len() * dim` floats.
    matrix: Vec<f32>,
    rows: Vec<DocId>,
    owners: Vec<Option<Uuid>>,
    keys: Vec<String>,
}

impl SegVectors {
    fn load(reader: &SegmentReader, key_field: &str, dim: usize) -> Result<Self, SearchError> {
        let ff = reader.fast_fields();
        let be = |e: tantivy::TantivyError| SearchError::Backend(e.to_string());
        let io = |e: std::io::Error| SearchError::Backend(e.to_string());
        let mut out = SegVectors {
            dim,
            matrix: Vec::new(),
            rows: Vec::new(),
            owners: Vec::new(),
            keys: Vec::new(),
        };
        let Some(vectors) = ff.bytes(VECTOR).map_err(be)? else {
            return Ok(out);
        };
        // Decode the dictionary once, in ordinal order (identical vectors share one).
        let mut by_ord: Vec<Option<Vec<f32>>> = Vec::with_capacity(vectors.num_terms());
        let mut stream = vectors.dictionary().stream().map_err(io)?;
        while stream.advance() {
            let mut v = Vec::with_capacity(dim);
            let ok = extend_vector(stream.key(), &mut v) && v.len() == dim;
            by_ord.push(ok.then_some(v));
        }
        let owners = ff.str(OWNER).map_err(be)?;
        let keys = ff.str(key_field).map_err(be)?;
        let mut buf = String::new();
        let mut str_at = |col: &Option<tantivy::columnar::StrColumn>, doc: DocId| {
            buf.clear();
            let ord = col.as_ref().and_then(|c| c.term_ords(doc).next());
            if let (Some(c), Some(ord)) = (col, ord) {
                c.ord_to_str(ord, &mut buf).map_err(io)?;
            }
            Ok::<_, SearchError>(buf.clone())
        };
        for doc in 0..reader.max_doc() {
            let Some(ord) = vectors.term_ords(doc).next() else {
                continue;
            };
            let Some(Some(v)) = usize::try_from(ord).ok().and_then(|o| by_ord.get(o)) else {
                continue;
            };
            out.matrix.extend_from_slice(v);
            out.rows.push(doc);
            out.owners
                .push(Uuid::parse_str(&str_at(&owners, doc)?).ok());
            out.keys.push(str_at(&keys, doc)?);
        }
        Ok(out)
    }
}

/// A scored row, ordered so that a `BinaryHeap` of them is a min-heap on the score (the
/// worst kept hit on top), ties broken by document address for a stable order.
#[derive(Debug, Clone, Copy)]
struct Scored {
    score: f32,
    addr: DocAddress,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the smallest score is the heap's maximum.
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.addr.cmp(&other.addr))
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn push_top(heap: &mut BinaryHeap<Scored>, limit: usize, s: Scored) {
    if heap.len() < limit {
        heap.push(s);
    } else if let Some(worst) = heap.peek()
        && s < *worst
    {
        heap.pop();
        heap.push(s);
    }
}

/// What a scan keeps: the owner filter and an excluded key.
pub(crate) struct Filter<'a> {
    pub scope: Scope,
    pub exclude_key: Option<&'a str>,
}

#[derive(Default)]
pub(crate) struct VectorCache {
    segments: Mutex<HashMap<SegmentId, Arc<SegVectors>>>,
}

impl VectorCache {
    fn segment(
        &self,
        reader: &SegmentReader,
        key_field: &str,
        dim: usize,
    ) -> Result<Arc<SegVectors>, SearchError> {
        let id = reader.segment_id();
        let cached = self.lock().get(&id).cloned();
        if let Some(seg) = cached.filter(|s| s.dim == dim) {
            return Ok(seg);
        }
        let seg = Arc::new(SegVectors::load(reader, key_field, dim)?);
        self.lock().insert(id, seg.clone());
        Ok(seg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<SegVectors>>> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the entries of segments `searcher` no longer has.
    fn retain(&self, searcher: &Searcher) {
        let live: HashSet<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id())
            .collect();
        self.lock().retain(|id, _| live.contains(id));
    }

    /// The `limit` live documents most similar to `query`, best first.
    pub fn top(
        &self,
        searcher: &Searcher,
        key_field: &str,
        query: &[f32],
        filter: &Filter<'_>,
        limit: usize,
    ) -> Result<Vec<(f32, DocAddress)>, SearchError> {
        let dim = query.len();
        let mut heap = BinaryHeap::with_capacity(limit + 1);
        if limit == 0 || dim == 0 {
            return Ok(Vec::new());
        }
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let seg = self.segment(reader, key_field, dim)?;
            let seg_ord = u32::try_from(ord).unwrap_or(u32::MAX);
            let keep = |i: usize| {
                !reader.is_deleted(seg.rows[i])
                    && match filter.scope {
                        Scope::All => true,
                        Scope::Owner(o) => seg.owners[i] == Some(o),
                    }
                    && filter.exclude_key != Some(seg.keys[i].as_str())
            };
            let scan = |start: usize, end: usize| {
                let mut local = BinaryHeap::with_capacity(limit + 1);
                for i in start..end {
                    if keep(i) {
                        let row = &seg.matrix[i * dim..(i + 1) * dim];
                        let addr = DocAddress::new(seg_ord, seg.rows[i]);
                        push_top(
                            &mut local,
                            limit,
                            Scored {
                                score: dot(row, query),
                                addr,
                            },
                        );
                    }
                }
                local
            };
            let n = seg.rows.len();
            if n <= PAR_ROWS {
                for s in scan(0, n) {
                    push_top(&mut heap, limit, s);
                }
            } else {
                let parts: Vec<BinaryHeap<Scored>> = (0..n.div_ceil(PAR_ROWS))
                    .into_par_iter()
                    .map(|p| scan(p * PAR_ROWS, ((p + 1) * PAR_ROWS).min(n)))
                    .collect();
                for s in parts.into_iter().flatten() {
                    push_top(&mut heap, limit, s);
                }
            }
        }
        self.retain(searcher);
        // Ascending in `Scored`'s order is best first.
        Ok(heap
            .into_sorted_vec()
            .into_iter()
            .map(|s| (s.score, s.addr))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_keeps_the_best_and_sorts_best_first() {
        let mut heap = BinaryHeap::new();
        for (i, score) in [0.1f32, 0.9, 0.5, 0.7, 0.3].into_iter().enumerate() {
            let addr = DocAddress::new(0, u32::try_from(i).unwrap_or_default());
            push_top(&mut heap, 3, Scored { score, addr });
        }
        let scores: Vec<f32> = heap.into_sorted_vec().iter().map(|s| s.score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.5]);
    }
}
