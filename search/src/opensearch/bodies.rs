//! Every request body the OpenSearch backend sends, as pure functions, so their shapes are
//! unit-tested without a server (OpenSearch 2.x REST API and k-NN plugin syntax).
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{ChunkDoc, Scope, SpeakerDoc};

/// Highlight fragment length, in characters.
pub(crate) const SNIPPET_CHARS: usize = 200;

fn knn_vector(dim: usize) -> Value {
    json!({
        "type": "knn_vector",
        "dimension": dim,
        "method": { "name": "hnsw", "space_type": "cosinesimil", "engine": "lucene" }
    })
}

fn knn_settings() -> Value {
    json!({ "index": { "knn": true } })
}

fn keyword() -> Value {
    json!({ "type": "keyword" })
}

fn english_text() -> Value {
    json!({ "type": "text", "analyzer": "english" })
}

/// `PUT transcript_chunks`.
pub(crate) fn chunks_mapping(dim: usize) -> Value {
    json!({
        "settings": knn_settings(),
        "mappings": {
            "properties": {
                "id": keyword(),
                "file_id": keyword(),
                "owner": keyword(),
                "seq": { "type": "integer" },
                "start_s": { "type": "double" },
                "end_s": { "type": "double" },
                "speakers": { "type": "keyword", "fields": { "text": english_text() } },
                "text": english_text(),
                "model": keyword(),
                "vector": knn_vector(dim)
            }
        }
    })
}

/// `PUT speakers_{profile}`.
pub(crate) fn speakers_mapping(dim: usize) -> Value {
    json!({
        "settings": knn_settings(),
        "mappings": {
            "properties": {
                "speaker_id": keyword(),
                "file_id": keyword(),
                "owner": keyword(),
                "label": keyword(),
                "name": { "type": "text", "analyzer": "english", "fields": { "raw": keyword() } },
                "profile": keyword(),
                "model": keyword(),
                "vector": knn_vector(dim)
            }
        }
    })
}

/// The dimension of `vector` in a `GET {index}/_mapping` answer.
pub(crate) fn mapping_dim(mapping: &Value, index: &str) -> Option<usize> {
    mapping
        .get(index)?
        .pointer("/mappings/properties/vector/dimension")?
        .as_u64()
        .and_then(|d| usize::try_from(d).ok())
}

/// The owner filter of `scope` (none for `All`).
fn scope_filter(scope: Scope) -> Vec<Value> {
    match scope {
        Scope::All => Vec::new(),
        Scope::Owner(o) => vec![json!({ "term": { "owner": o.to_string() } })],
    }
}

/// BM25 over `text` and the speakers' names, limited to `scope`, with a plain-text
/// highlight of `text` (empty tags: no markup). `multi_match` takes any string: a user's
/// query cannot fail to parse.
pub(crate) fn text_query(query: &str, scope: Scope, limit: usize) -> Value {
    json!({
        "size": limit,
        "_source": { "excludes": ["vector"] },
        "query": {
            "bool": {
                "must": [{ "multi_match": { "query": query, "fields": ["text", "speakers.text"] } }],
                "filter": scope_filter(scope)
            }
        },
        "highlight": {
            "pre_tags": [""],
            "post_tags": [""],
            "fields": {
                "text": { "fragment_size": SNIPPET_CHARS, "number_of_fragments": 1 }
            }
        }
    })
}

/// k-NN over `vector` with efficient filtering (the filter runs inside the HNSW search,
/// so `limit` hits come back even when the owner holds few documents); `exclude_key`
/// drops one document by a keyword field (`speaker_id`, the speaker itself).
pub(crate) fn knn_query(
    vector: &[f32],
    scope: Scope,
    exclude: Option<(&str, &str)>,
    limit: usize,
) -> Value {
    let mut knn = json!({ "vector": vector, "k": limit });
    let filter = scope_filter(scope);
    let must_not: Vec<Value> = exclude
        .map(|(field, value)| json!({ "term": { field: value } }))
        .into_iter()
        .collect();
    if !filter.is_empty() || !must_not.is_empty() {
        knn["filter"] = json!({ "bool": { "filter": filter, "must_not": must_not } });
    }
    json!({
        "size": limit,
        "_source": { "excludes": ["vector"] },
        "query": { "knn": { "vector": knn } }
    })
}

/// OpenSearch's score for `cosinesimil` is `(1 + cos) / 2`; back to the cosine.
pub(crate) fn cosine_of_score(score: f32) -> f32 {
    2.0 * score - 1.0
}

/// `_bulk` lines indexing `docs` (the document id is the chunk id, so a re-index
/// overwrites in place).
pub(crate) fn bulk_index_chunk_lines(index: &str, docs: &[ChunkDoc]) -> Vec<Value> {
    docs.iter()
        .flat_map(|d| {
            [
                json!({ "index": { "_index": index, "_id": d.id } }),
                json!(d),
            ]
        })
        .collect()
}

pub(crate) fn bulk_index_speaker_lines(index: &str, docs: &[SpeakerDoc]) -> Vec<Value> {
    docs.iter()
        .flat_map(|d| {
            [
                json!({ "index": { "_index": index, "_id": d.speaker_id.to_string() } }),
                json!(d),
            ]
        })
        .collect()
}

pub(crate) fn bulk_delete_lines(index: &str, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|id| json!({ "delete": { "_index": index, "_id": id } }))
        .collect()
}

/// The second half of `replace_chunks`/`replace_speakers`: after the new documents are
/// indexed (overwriting by id), this `_delete_by_query` removes the listed files' documents
/// that were not re-sent.
pub(crate) fn stale_docs_query(files: &[Uuid], keep_ids: &[String]) -> Value {
    let files: Vec<String> = files.iter().map(Uuid::to_string).collect();
    json!({
        "query": {
            "bool": {
                "filter": [{ "terms": { "file_id": files } }],
                "must_not": [{ "ids": { "values": keep_ids } }]
            }
        }
    })
}

/// `_delete_by_query` of one file's documents.
pub(crate) fn file_query(file_id: Uuid) -> Value {
    json!({ "query": { "term": { "file_id": file_id.to_string() } } })
}

/// `POST _aliases`: remove `alias` from its current targets and add it to `index`, in one
/// request, which OpenSearch applies atomically.
pub(crate) fn alias_swap_actions(alias: &str, current: &[String], index: &str) -> Value {
    let mut actions: Vec<Value> = current
        .iter()
        .filter(|c| c.as_str() != index)
        .map(|c| json!({ "remove": { "index": c, "alias": alias } }))
        .collect();
    actions.push(json!({ "add": { "index": index, "alias": alias } }));
    json!({ "actions": actions })
}

/// The indices a `GET _alias/{alias}` answer names.
pub(crate) fn alias_targets(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = answer
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// One page of a scan: sorted by the key field, after `cursor`.
pub(crate) fn scan_body(key_field: &str, cursor: Option<&str>, limit: usize) -> Value {
    let mut body = json!({
        "size": limit,
        "_source": [key_field, "file_id"],
        "query": { "match_all": {} },
        "sort": [{ key_field: "asc" }]
    });
    if let Some(c) = cursor {
        body["search_after"] = json!([c]);
    }
    body
}

/// The first error of a `_bulk` answer with `"errors": true`.
pub(crate) fn bulk_error(answer: &Value) -> Option<String> {
    if answer.get("errors").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let items = answer.get("items")?.as_array()?;
    items
        .iter()
        .filter_map(|item| item.as_object()?.values().next()?.get("error"))
        .map(|e| e.to_string())
        .next()
        .or_else(|| Some("bulk request failed".into()))
}

/// How many `delete` items of a `_bulk` answer removed a document.
pub(crate) fn bulk_deleted(answer: &Value) -> u64 {
    answer
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|i| i.pointer("/delete/result").and_then(Value::as_str) == Some("deleted"))
                .count() as u64
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u32) -> ChunkDoc {
        let file_id = Uuid::from_u128(1);
        ChunkDoc {
            id: crate::chunk_id(file_id, seq),
            file_id,
            owner: None,
            seq,
            start_s: 1.5,
            end_s: 3.0,
            speakers: vec!["Ann".into()],
            text: "hello".into(),
            model: "m".into(),
            vector: vec![0.5, 0.25],
        }
    }

    #[test]
    fn chunks_mapping_has_an_hnsw_cosine_vector_and_english_text() {
        let m = chunks_mapping(384);
        assert_eq!(m["settings"], json!({ "index": { "knn": true } }));
        let p = &m["mappings"]["properties"];
        assert_eq!(
            p["vector"],
            json!({
                "type": "knn_vector",
                "dimension": 384,
                "method": { "name": "hnsw", "space_type": "cosinesimil", "engine": "lucene" }
            })
        );
        assert_eq!(p["text"], json!({ "type": "text", "analyzer": "english" }));
        assert_eq!(p["owner"], json!({ "type": "keyword" }));
        assert_eq!(p["speakers"]["fields"]["text"]["analyzer"], "english");
        assert_eq!(p["seq"]["type"], "integer");
        assert_eq!(
            mapping_dim(&json!({ "transcript_chunks": m }), "transcript_chunks"),
            Some(384)
        );
    }

    #[test]
    fn speakers_mapping_keys_by_speaker_id() {
        let m = speakers_mapping(256);
        let p = &m["mappings"]["properties"];
        assert_eq!(p["speaker_id"], json!({ "type": "keyword" }));
        assert_eq!(p["vector"]["dimension"], 256);
        assert_eq!(
            mapping_dim(&json!({ "speakers_v4": m }), "speakers_v4"),
            Some(256)
        );
        assert_eq!(mapping_dim(&json!({}), "speakers_v4"), None);
    }

    #[test]
    fn knn_query_filters_by_owner_inside_the_knn_clause() {
        let owner = Uuid::from_u128(7);
        let q = knn_query(&[0.5, 0.5], Scope::Owner(owner), None, 10);
        assert_eq!(
            q,
            json!({
                "size": 10,
                "_source": { "excludes": ["vector"] },
                "query": { "knn": { "vector": {
                    "vector": [0.5, 0.5],
                    "k": 10,
                    "filter": { "bool": {
                        "filter": [{ "term": { "owner": owner.to_string() } }],
                        "must_not": []
                    } }
                } } }
            })
        );
        let all = knn_query(&[1.0], Scope::All, None, 3);
        assert_eq!(
            all["query"]["knn"]["vector"],
            json!({ "vector": [1.0], "k": 3 })
        );
        let ex = knn_query(&[1.0], Scope::All, Some(("speaker_id", "x")), 3);
        assert_eq!(
            ex["query"]["knn"]["vector"]["filter"]["bool"]["must_not"],
            json!([{ "term": { "speaker_id": "x" } }])
        );
    }

    #[test]
    fn text_query_is_a_filtered_multi_match_with_plain_highlight() {
        let owner = Uuid::from_u128(9);
        let q = text_query("budget AND (", Scope::Owner(owner), 5);
        assert_eq!(q["size"], 5);
        assert_eq!(
            q["query"]["bool"],
            json!({
                "must": [{ "multi_match": { "query": "budget AND (", "fields": ["text", "speakers.text"] } }],
                "filter": [{ "term": { "owner": owner.to_string() } }]
            })
        );
        assert_eq!(q["highlight"]["pre_tags"], json!([""]));
        assert_eq!(q["highlight"]["fields"]["text"]["fragment_size"], 200);
        assert_eq!(
            text_query("x", Scope::All, 1)["query"]["bool"]["filter"],
            json!([])
        );
    }

    #[test]
    fn bulk_lines_pair_an_action_with_each_source() {
        let lines = bulk_index_chunk_lines("transcript_chunks", &[chunk(0), chunk(1)]);
        assert_eq!(lines.len(), 4);
        let id0 = crate::chunk_id(Uuid::from_u128(1), 0);
        assert_eq!(
            lines[0],
            json!({ "index": { "_index": "transcript_chunks", "_id": id0 } })
        );
        assert_eq!(lines[1]["id"], json!(id0));
        assert_eq!(lines[1]["owner"], Value::Null);
        assert_eq!(lines[1]["vector"], json!([0.5, 0.25]));
        assert_eq!(lines[3]["seq"], 1);
        assert_eq!(
            bulk_delete_lines("speakers_v3", &["a".into()]),
            vec![json!({ "delete": { "_index": "speakers_v3", "_id": "a" } })]
        );
    }

    #[test]
    fn stale_chunk_query_keeps_the_new_ids() {
        let f = Uuid::from_u128(1);
        assert_eq!(
            stale_docs_query(&[f], &["a".into(), "b".into()]),
            json!({ "query": { "bool": {
                "filter": [{ "terms": { "file_id": [f.to_string()] } }],
                "must_not": [{ "ids": { "values": ["a", "b"] } }]
            } } })
        );
    }

    #[test]
    fn alias_swap_is_one_request_of_remove_then_add() {
        assert_eq!(
            alias_swap_actions("speakers", &["speakers_v3".into()], "speakers_v4"),
            json!({ "actions": [
                { "remove": { "index": "speakers_v3", "alias": "speakers" } },
                { "add": { "index": "speakers_v4", "alias": "speakers" } }
            ] })
        );
        assert_eq!(
            alias_swap_actions("speakers", &[], "speakers_v3"),
            json!({ "actions": [{ "add": { "index": "speakers_v3", "alias": "speakers" } }] })
        );
        let answer = json!({ "speakers_v4": { "aliases": { "speakers": {} } } });
        assert_eq!(alias_targets(&answer), vec!["speakers_v4".to_owned()]);
    }

    #[test]
    fn scan_pages_with_search_after_on_the_key() {
        assert_eq!(
            scan_body("id", Some("f:3"), 100),
            json!({
                "size": 100,
                "_source": ["id", "file_id"],
                "query": { "match_all": {} },
                "sort": [{ "id": "asc" }],
                "search_after": ["f:3"]
            })
        );
        assert!(
            scan_body("speaker_id", None, 5)
                .get("search_after")
                .is_none()
        );
    }

    #[test]
    fn bulk_answers_are_read() {
        let ok = json!({ "errors": false, "items": [
            { "delete": { "result": "deleted" } },
            { "delete": { "result": "not_found" } }
        ] });
        assert_eq!(bulk_error(&ok), None);
        assert_eq!(bulk_deleted(&ok), 1);
        let bad = json!({ "errors": true, "items": [
            { "index": { "status": 400, "error": { "type": "mapper_parsing_exception" } } }
        ] });
        assert!(bulk_error(&bad).is_some_and(|e| e.contains("mapper_parsing_exception")));
        assert!((cosine_of_score(1.0) - 1.0).abs() < 1e-6);
        assert!((cosine_of_score(0.5)).abs() < 1e-6);
    }
}
