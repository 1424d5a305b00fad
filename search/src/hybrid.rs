//! Hybrid search: a text ranking and a vector ranking fused by reciprocal rank fusion,
//! the same for every backend.
//!
//! RRF (Cormack et al., 2009) scores a document `Σ 1 / (k + rank)` over the rankings that
//! found it. It needs no score calibration between BM25 and cosine, which live on
//! unrelated scales; `k = 60` is the paper's constant and damps the weight of the very top
//! ranks.
use std::collections::HashMap;

use crate::{ChunkHit, DocKey, Result, Scope, SearchIndex};

/// The `k` of [`rrf`] that [`hybrid_search`] uses.
pub const RRF_K: f32 = 60.0;

/// Fuses a text and a vector ranking (each best first) into one of at most `limit` hits,
/// best first. A hit's `score` becomes the fused score and `text_rank`/`vector_rank` its
/// 1-based ranks; a hit both found keeps the text hit's snippet (the matched passage).
/// Equal scores are ordered by id, so the answer is deterministic.
pub fn rrf(text: Vec<ChunkHit>, vector: Vec<ChunkHit>, k: f32, limit: usize) -> Vec<ChunkHit> {
    let mut fused: Vec<ChunkHit> = Vec::with_capacity(text.len() + vector.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, mut hit) in text.into_iter().enumerate() {
        if at.contains_key(&hit.id) {
            continue;
        }
        hit.score = 1.0 / (k + (i + 1) as f32);
        hit.text_rank = Some(i + 1);
        hit.vector_rank = None;
        at.insert(hit.id.clone(), fused.len());
        fused.push(hit);
    }
    for (i, mut hit) in vector.into_iter().enumerate() {
        let contribution = 1.0 / (k + (i + 1) as f32);
        match at.get(&hit.id) {
            Some(&j) => {
                let known = &mut fused[j];
                if known.vector_rank.is_none() {
                    known.score += contribution;
                    known.vector_rank = Some(i + 1);
                }
            }
            None => {
                hit.score = contribution;
                hit.text_rank = None;
                hit.vector_rank = Some(i + 1);
                at.insert(hit.id.clone(), fused.len());
                fused.push(hit);
            }
        }
    }
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    fused.truncate(limit);
    fused
}

/// Text and (when `vector` is given) vector search over the chunks, fused with [`rrf`].
/// Each ranking contributes its best `max(limit × 4, 50)` hits.
pub async fn hybrid_search<I: SearchIndex>(
    index: &I,
    query: &str,
    vector: Option<&[f32]>,
    scope: Scope,
    limit: usize,
) -> Result<Vec<ChunkHit>> {
    let depth = (limit.saturating_mul(4)).max(50);
    let text = index.search_text(query, scope, depth);
    let vector_hits = async {
        match vector {
            Some(v) => index.search_vector(v, scope, depth).await,
            None => Ok(Vec::new()),
        }
    };
    let (text, vector_hits) = tokio::join!(text, vector_hits);
    Ok(rrf(text?, vector_hits?, RRF_K, limit))
}

/// Every document key of `index`, read page by page (`NoSuchIndex` when it does not exist).
pub async fn all_keys<I: SearchIndex>(index: &I, name: &str) -> Result<Vec<DocKey>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = index.scan(name, cursor.take(), 1000).await?;
        out.extend(page.keys);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn hit(id: &str, snippet: &str) -> ChunkHit {
        ChunkHit {
            id: id.into(),
            file_id: Uuid::nil(),
            owner: None,
            seq: 0,
            start_s: 0.0,
            end_s: 1.0,
            speakers: Vec::new(),
            snippet: snippet.into(),
            score: 99.0,
            text_rank: None,
            vector_rank: None,
        }
    }

    #[test]
    fn documents_both_rankings_found_rise_to_the_top() {
        let text = vec![hit("a", "text a"), hit("b", "text b"), hit("c", "text c")];
        let vector = vec![
            hit("c", "start c"),
            hit("d", "start d"),
            hit("b", "start b"),
        ];
        let fused = rrf(text, vector, 60.0, 10);
        let ids: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
        // c: 1/63 + 1/61, b: 1/62 + 1/63, a: 1/61, d: 1/62.
        assert_eq!(ids, vec!["c", "b", "a", "d"]);
        assert_eq!(fused[0].text_rank, Some(3));
        assert_eq!(fused[0].vector_rank, Some(1));
        assert_eq!(fused[0].snippet, "text c");
        assert!((fused[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
        assert_eq!(fused[3].text_rank, None);
        assert_eq!(fused[3].vector_rank, Some(2));
        assert_eq!(fused[3].snippet, "start d");
    }

    #[test]
    fn limit_truncates_and_ties_order_by_id() {
        let fused = rrf(
            vec![hit("b", ""), hit("z", "")],
            vec![hit("a", "")],
            60.0,
            2,
        );
        // b and a tie at 1/61.
        let ids: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
    }

    #[test]
    fn one_ranking_alone_keeps_its_order() {
        let fused = rrf(vec![hit("x", ""), hit("y", "")], Vec::new(), 60.0, 5);
        let ids: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, vec!["x", "y"]);
        assert_eq!(fused[1].text_rank, Some(2));
    }
}
