//! One conformance suite for every backend: each check is generic over [`SearchIndex`] and
//! runs against the embedded backend (a temp directory) always, and against OpenSearch with
//! `--ignored` and `VOXFLEET_OPENSEARCH_URL` set (it wipes `transcript_chunks`, `speakers_v3`
//! and `speakers_v4` there first); without a server that test is reported ignored.
//!
//! The embedded backend's multi-process behaviour (two instances on one directory stand
//! in for two processes) is tested at the end.
use std::time::{Duration, Instant};

use uuid::Uuid;
use voxfleet_errors::Classified;
use voxfleet_search::{
    CHUNKS, ChunkDoc, EmbeddedIndex, EmbeddedOptions, OpenSearchIndex, SPEAKERS_ALIAS, Scope,
    SearchError, SearchIndex, SpeakerDoc, chunk_id, hybrid_search, speakers_index,
};

const DIM: usize = 4;
const SPK_DIM: usize = 3;

const OWNER_A: Uuid = Uuid::from_u128(0xA);
const OWNER_B: Uuid = Uuid::from_u128(0xB);
const F1: Uuid = Uuid::from_u128(0xF1); // owner A
const F2: Uuid = Uuid::from_u128(0xF2); // owner B
const F3: Uuid = Uuid::from_u128(0xF3); // no owner
const F4: Uuid = Uuid::from_u128(0xF4); // owner A, many chunks

fn norm(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn chunk(
    file: Uuid,
    owner: Option<Uuid>,
    seq: u32,
    text: &str,
    v: &[f32],
    who: &[&str],
) -> ChunkDoc {
    ChunkDoc {
        id: chunk_id(file, seq),
        file_id: file,
        owner,
        seq,
        start_s: f64::from(seq) * 60.0,
        end_s: f64::from(seq) * 60.0 + 60.0,
        speakers: who.iter().map(|s| s.to_string()).collect(),
        text: text.into(),
        model: "test-embed".into(),
        vector: norm(v),
    }
}

fn speaker(n: u128, file: Uuid, owner: Option<Uuid>, profile: &str, v: &[f32]) -> SpeakerDoc {
    SpeakerDoc {
        speaker_id: Uuid::from_u128(0x5000 + n),
        file_id: file,
        owner,
        label: format!("SPEAKER_{n:02}"),
        name: (n % 2 == 1).then(|| format!("Voice {n}")),
        profile: profile.into(),
        model: format!("spk-{profile}"),
        vector: norm(v),
    }
}

/// The standard corpus: two chunks of F1 (A), one of F2 (B), one of F3 (no owner).
fn corpus() -> Vec<(Uuid, Vec<ChunkDoc>)> {
    vec![
        (
            F1,
            vec![
                chunk(
                    F1,
                    Some(OWNER_A),
                    0,
                    "The quarterly budget review for the marketing team.",
                    &[1.0, 0.0, 0.0, 0.0],
                    &["Alice"],
                ),
                chunk(
                    F1,
                    Some(OWNER_A),
                    1,
                    "Engineering roadmap and hiring plans for next year.",
                    &[0.8, 0.6, 0.0, 0.0],
                    &["Bob"],
                ),
            ],
        ),
        (
            F2,
            vec![chunk(
                F2,
                Some(OWNER_B),
                0,
                "Budget secrets that only owner b may read.",
                &[0.6, 0.8, 0.0, 0.0],
                &["Carol"],
            )],
        ),
        (
            F3,
            vec![chunk(
                F3,
                None,
                0,
                "Weather report: sunny skies all week.",
                &[0.0, 0.0, 1.0, 0.0],
                &[],
            )],
        ),
    ]
}

fn ids<T>(hits: &[T], id: impl Fn(&T) -> String) -> Vec<String> {
    hits.iter().map(id).collect()
}

fn cid(file: Uuid, seq: u32) -> String {
    chunk_id(file, seq)
}

/// Fresh, empty indices with the standard corpus loaded.
async fn reset<I: SearchIndex>(idx: &I) {
    idx.recreate_chunks(DIM).await.expect("recreate chunks");
    idx.replace_chunks(corpus()).await.expect("load corpus");
}

async fn all_chunk_ids<I: SearchIndex>(idx: &I, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p = idx.scan(CHUNKS, cursor, page).await.expect("scan");
        assert!(p.keys.len() <= page);
        out.extend(p.keys.into_iter().map(|k| k.id));
        match p.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}

async fn replace_removes_stale_chunks<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let three: Vec<ChunkDoc> = (0..3)
        .map(|s| {
            chunk(
                F1,
                Some(OWNER_A),
                s,
                &format!("obsolete draft part {s}"),
                &[0.0, 1.0, 0.0, 0.0],
                &[],
            )
        })
        .collect();
    idx.replace_chunks(vec![(F1, three)])
        .await
        .expect("3 chunks");
    let two: Vec<ChunkDoc> = (0..2)
        .map(|s| {
            chunk(
                F1,
                Some(OWNER_A),
                s,
                &format!("final version part {s}"),
                &[0.0, 1.0, 0.0, 0.0],
                &[],
            )
        })
        .collect();
    idx.replace_chunks(vec![(F1, two)]).await.expect("2 chunks");
    let f1: Vec<String> = all_chunk_ids(idx, 100)
        .await
        .into_iter()
        .filter(|i| i.starts_with(&F1.to_string()))
        .collect();
    assert_eq!(f1, vec![cid(F1, 0), cid(F1, 1)]);
    assert!(
        idx.search_text("obsolete", Scope::All, 10)
            .await
            .expect("text")
            .is_empty()
    );
    // An empty list removes the file's chunks.
    idx.replace_chunks(vec![(F1, Vec::new())])
        .await
        .expect("empty");
    let left = all_chunk_ids(idx, 100).await;
    assert_eq!(left, vec![cid(F2, 0), cid(F3, 0)]);
}

async fn owners_see_only_their_own<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let text = |s: Scope| async move {
        ids(
            &idx.search_text("budget", s, 10).await.expect("text"),
            |h| h.id.clone(),
        )
    };
    assert_eq!(text(Scope::Owner(OWNER_A)).await, vec![cid(F1, 0)]);
    assert_eq!(text(Scope::Owner(OWNER_B)).await, vec![cid(F2, 0)]);
    let mut all = text(Scope::All).await;
    all.sort();
    assert_eq!(all, vec![cid(F1, 0), cid(F2, 0)]);
    // A speaker's name is searchable, within the owner's scope too.
    assert_eq!(
        ids(
            &idx.search_text("carol", Scope::All, 10)
                .await
                .expect("name"),
            |h| h.id.clone()
        ),
        vec![cid(F2, 0)]
    );
    assert!(
        idx.search_text("carol", Scope::Owner(OWNER_A), 10)
            .await
            .expect("name")
            .is_empty()
    );

    let q = [1.0, 0.0, 0.0, 0.0];
    let vec_ids = |s: Scope| async move {
        ids(&idx.search_vector(&q, s, 10).await.expect("vector"), |h| {
            h.id.clone()
        })
    };
    assert_eq!(
        vec_ids(Scope::Owner(OWNER_A)).await,
        vec![cid(F1, 0), cid(F1, 1)]
    );
    assert_eq!(vec_ids(Scope::Owner(OWNER_B)).await, vec![cid(F2, 0)]);
    assert_eq!(
        vec_ids(Scope::Owner(Uuid::from_u128(0xC))).await,
        Vec::<String>::new()
    );
    assert_eq!(vec_ids(Scope::All).await.len(), 4);
}

async fn text_ranks_the_match_first<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let hits = idx
        .search_text("roadmap hiring", Scope::All, 10)
        .await
        .expect("text");
    assert_eq!(hits.first().map(|h| h.id.clone()), Some(cid(F1, 1)));
    let top = &hits[0];
    assert!(
        top.snippet.to_lowercase().contains("roadmap"),
        "snippet: {}",
        top.snippet
    );
    assert!(
        !top.snippet.contains("<b>"),
        "snippet is plain text: {}",
        top.snippet
    );
    assert_eq!((top.file_id, top.owner, top.seq), (F1, Some(OWNER_A), 1));
    assert_eq!((top.start_s, top.end_s), (60.0, 120.0));
    assert_eq!(top.speakers, vec!["Bob".to_owned()]);
    // Stemming: "plan" finds "plans".
    assert_eq!(
        ids(
            &idx.search_text("plan", Scope::All, 10).await.expect("stem"),
            |h| h.id.clone()
        ),
        vec![cid(F1, 1)]
    );
    // Malformed user queries do not fail.
    for q in [
        "budget AND (",
        "\"unclosed",
        "title:budget",
        "+-",
        "((()))",
        "   ",
    ] {
        idx.search_text(q, Scope::All, 10)
            .await
            .unwrap_or_else(|e| panic!("`{q}` failed: {e}"));
    }
}

async fn vectors_rank_by_cosine<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let hits = idx
        .search_vector(&[1.0, 0.0, 0.0, 0.0], Scope::All, 10)
        .await
        .expect("vector");
    assert_eq!(
        ids(&hits, |h| h.id.clone()),
        vec![cid(F1, 0), cid(F1, 1), cid(F2, 0), cid(F3, 0)]
    );
    let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
    for (got, want) in scores.iter().zip([1.0, 0.8, 0.6, 0.0]) {
        assert!((got - want).abs() < 1e-3, "scores {scores:?}");
    }
    // The snippet of a vector hit is the text's start.
    assert!(hits[0].snippet.starts_with("The quarterly budget"));
    let top2 = idx
        .search_vector(&norm(&[0.0, 1.0, 0.0, 0.0]), Scope::All, 2)
        .await
        .expect("vector");
    assert_eq!(ids(&top2, |h| h.id.clone()), vec![cid(F2, 0), cid(F1, 1)]);
}

async fn hybrid_fuses_both<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let hits = hybrid_search(idx, "roadmap", Some(&[1.0, 0.0, 0.0, 0.0]), Scope::All, 3)
        .await
        .expect("hybrid");
    // F1:1 is 1st in text and 2nd in vectors; F1:0 1st in vectors; F2:0 3rd in vectors.
    assert_eq!(
        ids(&hits, |h| h.id.clone()),
        vec![cid(F1, 1), cid(F1, 0), cid(F2, 0)]
    );
    assert_eq!((hits[0].text_rank, hits[0].vector_rank), (Some(1), Some(2)));
    assert_eq!((hits[1].text_rank, hits[1].vector_rank), (None, Some(1)));
    assert!(hits[0].snippet.to_lowercase().contains("roadmap"));
    let text_only = hybrid_search(idx, "budget", None, Scope::Owner(OWNER_B), 10)
        .await
        .expect("text only");
    assert_eq!(ids(&text_only, |h| h.id.clone()), vec![cid(F2, 0)]);
    assert_eq!(text_only[0].vector_rank, None);
}

async fn deletes<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let n = idx
        .delete_docs(CHUNKS, &[cid(F3, 0), "no-such-id".into()])
        .await
        .expect("delete");
    assert_eq!(n, 1);
    assert_eq!(
        idx.delete_docs(CHUNKS, &[cid(F3, 0)]).await.expect("again"),
        0
    );
    assert_eq!(
        all_chunk_ids(idx, 10).await,
        vec![cid(F1, 0), cid(F1, 1), cid(F2, 0)]
    );

    let v3 = vec![
        speaker(1, F1, Some(OWNER_A), "v3", &[1.0, 0.0, 0.0]),
        speaker(2, F2, Some(OWNER_B), "v3", &[0.0, 1.0, 0.0]),
    ];
    let v4 = vec![speaker(1, F1, Some(OWNER_A), "v4", &[0.0, 0.0, 1.0])];
    idx.upsert_speakers("v3", v3.clone()).await.expect("v3");
    idx.upsert_speakers("v4", v4).await.expect("v4");
    idx.delete_file(F1).await.expect("delete file");
    assert_eq!(all_chunk_ids(idx, 10).await, vec![cid(F2, 0)]);
    for index in [speakers_index("v3"), speakers_index("v4")] {
        assert_eq!(
            idx.get_speaker(&index, v3[0].speaker_id)
                .await
                .expect("get"),
            None,
            "{index}"
        );
    }
    assert_eq!(
        idx.get_speaker(&speakers_index("v3"), v3[1].speaker_id)
            .await
            .expect("get"),
        Some(v3[1].clone())
    );
    assert!(
        idx.search_text("roadmap", Scope::All, 10)
            .await
            .expect("text")
            .is_empty()
    );
}

async fn scan_pages_cover_everything_once<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let many: Vec<ChunkDoc> = (0..11)
        .map(|s| {
            chunk(
                F4,
                Some(OWNER_A),
                s,
                "filler words",
                &[0.0, 0.0, 0.0, 1.0],
                &[],
            )
        })
        .collect();
    idx.replace_chunks(vec![(F4, many)]).await.expect("F4");
    let mut expected: Vec<String> = corpus()
        .into_iter()
        .flat_map(|(_, d)| d)
        .map(|d| d.id)
        .collect();
    expected.extend((0..11).map(|s| cid(F4, s)));
    expected.sort();
    for page in [1, 3, 4, 100] {
        assert_eq!(all_chunk_ids(idx, page).await, expected, "page size {page}");
    }
    let first = idx.scan(CHUNKS, None, 2).await.expect("scan");
    assert_eq!(first.keys[0].file_id, F1);
    assert_eq!(first.keys[0].speaker_id, None);
    assert!(matches!(
        idx.scan(CHUNKS, None, 0).await,
        Err(SearchError::Invalid(_))
    ));
}

async fn dimensions_are_enforced<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let bad = chunk(F1, Some(OWNER_A), 0, "three dims", &[1.0, 0.0, 0.0], &[]);
    let err = idx
        .replace_chunks(vec![(F1, vec![bad])])
        .await
        .expect_err("3-d chunk accepted");
    assert!(
        matches!(
            err,
            SearchError::DimensionMismatch {
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
    // The refused write changed nothing.
    assert_eq!(all_chunk_ids(idx, 10).await.len(), 4);
    let err = idx
        .search_vector(&[1.0, 0.0], Scope::All, 5)
        .await
        .expect_err("2-d query accepted");
    assert_eq!(err.code(), "dimension_mismatch");
    assert!(matches!(
        idx.ensure_chunks(8).await,
        Err(SearchError::DimensionMismatch {
            expected: 4,
            got: 8,
            ..
        })
    ));
    idx.ensure_chunks(DIM).await.expect("same dim is fine");
    let spk = speaker(1, F1, None, "v3", &[1.0, 0.0, 0.0, 0.0]);
    assert!(matches!(
        idx.upsert_speakers("v3", vec![spk]).await,
        Err(SearchError::DimensionMismatch { .. })
    ));
}

async fn speakers_and_alias<I: SearchIndex>(idx: &I) {
    idx.recreate_speakers("v3", SPK_DIM).await.expect("v3");
    idx.recreate_speakers("v4", SPK_DIM).await.expect("v4");
    idx.ensure_speakers("v3", SPK_DIM, "v3")
        .await
        .expect("ensure v3");
    idx.ensure_speakers("v4", SPK_DIM, "v3")
        .await
        .expect("ensure v4");
    assert_eq!(
        idx.alias_target(SPEAKERS_ALIAS)
            .await
            .expect("alias")
            .as_deref(),
        Some("speakers_v3")
    );
    assert_eq!(idx.alias_target("nope").await.expect("alias"), None);

    let v3 = vec![
        speaker(1, F1, Some(OWNER_A), "v3", &[1.0, 0.0, 0.0]),
        speaker(2, F1, Some(OWNER_A), "v3", &[0.9, 0.1, 0.0]),
        speaker(3, F2, Some(OWNER_B), "v3", &[0.5, 0.5, 0.0]),
        speaker(4, F1, Some(OWNER_A), "v3", &[0.0, 0.0, 1.0]),
    ];
    idx.upsert_speakers("v3", v3.clone())
        .await
        .expect("upsert v3");
    let v4 = vec![speaker(1, F1, Some(OWNER_A), "v4", &[0.0, 1.0, 0.0])];
    idx.upsert_speakers("v4", v4.clone())
        .await
        .expect("upsert v4");
    // Upsert replaces by speaker id.
    let mut renamed = v3[1].clone();
    renamed.name = Some("Renamed".into());
    idx.upsert_speakers("v3", vec![renamed.clone()])
        .await
        .expect("rename");

    let sid = |h: &voxfleet_search::SpeakerHit| h.speaker_id.as_u128() - 0x5000;
    let mine = idx
        .similar_speakers(
            SPEAKERS_ALIAS,
            &v3[0].vector,
            Scope::Owner(OWNER_A),
            Some(v3[0].speaker_id),
            10,
        )
        .await
        .expect("similar");
    assert_eq!(mine.iter().map(sid).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(mine[0].name.as_deref(), Some("Renamed"));
    assert!((mine[0].score - norm(&[0.9, 0.1, 0.0])[0]).abs() < 1e-3);
    let all = idx
        .similar_speakers(
            SPEAKERS_ALIAS,
            &v3[0].vector,
            Scope::All,
            Some(v3[0].speaker_id),
            10,
        )
        .await
        .expect("similar");
    assert_eq!(all.iter().map(sid).collect::<Vec<_>>(), vec![2, 3, 4]);
    let theirs = idx
        .similar_speakers(
            SPEAKERS_ALIAS,
            &v3[0].vector,
            Scope::Owner(OWNER_B),
            None,
            10,
        )
        .await
        .expect("similar");
    assert_eq!(theirs.iter().map(sid).collect::<Vec<_>>(), vec![3]);

    assert_eq!(
        idx.get_speaker(SPEAKERS_ALIAS, v3[0].speaker_id)
            .await
            .expect("get"),
        Some(v3[0].clone())
    );
    assert_eq!(
        idx.get_speaker(SPEAKERS_ALIAS, Uuid::from_u128(0xDEAD))
            .await
            .expect("get"),
        None
    );

    // Swap to v4, then back (a migration's rollback).
    idx.swap_alias(SPEAKERS_ALIAS, "speakers_v4")
        .await
        .expect("swap");
    assert_eq!(
        idx.alias_target(SPEAKERS_ALIAS)
            .await
            .expect("alias")
            .as_deref(),
        Some("speakers_v4")
    );
    assert_eq!(
        idx.get_speaker(SPEAKERS_ALIAS, v4[0].speaker_id)
            .await
            .expect("get"),
        Some(v4[0].clone())
    );
    let in_v4 = idx
        .similar_speakers(SPEAKERS_ALIAS, &[0.0, 1.0, 0.0], Scope::All, None, 10)
        .await
        .expect("similar");
    assert_eq!(
        in_v4.iter().map(|h| h.profile.clone()).collect::<Vec<_>>(),
        vec!["v4".to_owned()]
    );
    idx.swap_alias(SPEAKERS_ALIAS, "speakers_v3")
        .await
        .expect("swap back");
    assert_eq!(
        idx.alias_target(SPEAKERS_ALIAS)
            .await
            .expect("alias")
            .as_deref(),
        Some("speakers_v3")
    );
    assert_eq!(
        idx.get_speaker(SPEAKERS_ALIAS, v3[0].speaker_id)
            .await
            .expect("get"),
        Some(v3[0].clone())
    );
    assert!(matches!(
        idx.swap_alias(SPEAKERS_ALIAS, "speakers_v9").await,
        Err(SearchError::NoSuchIndex(_))
    ));
    assert_eq!(
        idx.alias_target(SPEAKERS_ALIAS)
            .await
            .expect("alias")
            .as_deref(),
        Some("speakers_v3")
    );

    // Speaker scans key by speaker id.
    let page = idx.scan("speakers_v3", None, 10).await.expect("scan");
    assert_eq!(page.keys.len(), 4);
    assert_eq!(page.keys[0].speaker_id, Some(v3[0].speaker_id));
    assert_eq!(page.keys[0].id, v3[0].speaker_id.to_string());
}

async fn replace_speakers_drops_a_files_old_voices<I: SearchIndex>(idx: &I) {
    idx.recreate_speakers("v3", SPK_DIM).await.expect("v3");
    let old: Vec<SpeakerDoc> = (1..=3)
        .map(|n| speaker(n, F1, Some(OWNER_A), "v3", &[1.0, 0.0, 0.0]))
        .collect();
    let other = speaker(9, F2, Some(OWNER_B), "v3", &[0.0, 1.0, 0.0]);
    idx.replace_speakers("v3", vec![(F1, old.clone()), (F2, vec![other.clone()])])
        .await
        .expect("first");
    // Re-diarized: two new voices, the old ids are gone.
    let new: Vec<SpeakerDoc> = (5..=6)
        .map(|n| speaker(n, F1, Some(OWNER_A), "v3", &[0.0, 0.0, 1.0]))
        .collect();
    idx.replace_speakers("v3", vec![(F1, new.clone())])
        .await
        .expect("second");
    let page = idx.scan("speakers_v3", None, 100).await.expect("scan");
    let mut want: Vec<String> = new
        .iter()
        .chain([&other])
        .map(|d| d.speaker_id.to_string())
        .collect();
    want.sort();
    assert_eq!(
        page.keys.into_iter().map(|k| k.id).collect::<Vec<_>>(),
        want
    );
    assert_eq!(
        idx.get_speaker("speakers_v3", old[0].speaker_id)
            .await
            .expect("get"),
        None
    );
    let bad = speaker(7, F1, None, "v3", &[1.0, 0.0]);
    assert!(matches!(
        idx.replace_speakers("v3", vec![(F1, vec![bad])]).await,
        Err(SearchError::DimensionMismatch { .. })
    ));
    let wrong_file = speaker(8, F2, None, "v3", &[1.0, 0.0, 0.0]);
    assert!(matches!(
        idx.replace_speakers("v3", vec![(F1, vec![wrong_file])])
            .await,
        Err(SearchError::Invalid(_))
    ));
}

async fn recreate_and_indices<I: SearchIndex>(idx: &I) {
    reset(idx).await;
    let infos = idx.indices().await.expect("indices");
    let chunks = infos
        .iter()
        .find(|i| i.name == CHUNKS)
        .expect("chunks listed");
    assert_eq!((chunks.docs, chunks.dim), (4, Some(DIM)));
    let v3 = infos
        .iter()
        .find(|i| i.name == "speakers_v3")
        .expect("v3 listed");
    assert_eq!((v3.docs, v3.dim), (4, Some(SPK_DIM)));
    idx.recreate_chunks(8).await.expect("recreate");
    let infos = idx.indices().await.expect("indices");
    let chunks = infos
        .iter()
        .find(|i| i.name == CHUNKS)
        .expect("chunks listed");
    assert_eq!((chunks.docs, chunks.dim), (0, Some(8)));
    assert!(
        idx.search_text("budget", Scope::All, 10)
            .await
            .expect("text")
            .is_empty()
    );
    idx.ensure_chunks(8).await.expect("new dim");
    assert!(idx.health().await.ok);
}

async fn suite<I: SearchIndex>(idx: &I) {
    replace_removes_stale_chunks(idx).await;
    owners_see_only_their_own(idx).await;
    text_ranks_the_match_first(idx).await;
    vectors_rank_by_cosine(idx).await;
    hybrid_fuses_both(idx).await;
    speakers_and_alias(idx).await;
    deletes(idx).await;
    scan_pages_cover_everything_once(idx).await;
    dimensions_are_enforced(idx).await;
    replace_speakers_drops_a_files_old_voices(idx).await;
    // Needs the speakers of `speakers_and_alias`, re-made here.
    idx.recreate_speakers("v3", SPK_DIM).await.expect("v3");
    idx.upsert_speakers(
        "v3",
        (1..=4)
            .map(|n| speaker(n, F2, None, "v3", &[1.0, 0.0, 0.0]))
            .collect(),
    )
    .await
    .expect("speakers");
    recreate_and_indices(idx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let idx = EmbeddedIndex::open(dir.path()).expect("open");
    suite(&idx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a live OpenSearch, and none can run on this machine: no Debian package, and its server jars are on Maven Central, which this machine cannot resolve (issue 19); set VOXFLEET_OPENSEARCH_URL and run with --ignored"]
async fn opensearch_conformance() {
    let url = std::env::var("VOXFLEET_OPENSEARCH_URL")
        .expect("VOXFLEET_OPENSEARCH_URL names the OpenSearch to test against");
    let idx = OpenSearchIndex::connect(&url).expect("connect");
    suite(&idx).await;
}

// Embedded only: several processes on one directory.

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "not visible after 3 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_see_each_others_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = EmbeddedIndex::open(dir.path()).expect("open a");
    let b = EmbeddedIndex::open(dir.path()).expect("open b");
    // b searches before the index exists, then a creates it.
    assert!(
        b.search_text("budget", Scope::All, 10)
            .await
            .expect("empty")
            .is_empty()
    );
    a.ensure_chunks(DIM).await.expect("ensure");
    b.ensure_chunks(DIM).await.expect("b finds a's index");
    a.replace_chunks(corpus()).await.expect("write a");
    // Seen at once: every read reloads the reader first.
    assert_eq!(
        b.search_text("budget", Scope::All, 10)
            .await
            .expect("b")
            .len(),
        2
    );
    // And the other way, including a deletion and the vector cache.
    assert_eq!(
        b.search_vector(&[0.0, 0.0, 1.0, 0.0], Scope::All, 1)
            .await
            .expect("v")[0]
            .id,
        cid(F3, 0)
    );
    b.delete_file(F3).await.expect("delete in b");
    assert_ne!(
        a.search_vector(&[0.0, 0.0, 1.0, 0.0], Scope::All, 1)
            .await
            .expect("v")[0]
            .id,
        cid(F3, 0)
    );
    let ids = |p: voxfleet_search::ScanPage| p.keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    let before = ids(a.scan(CHUNKS, None, 100).await.expect("scan a"));
    let gone = before[0].clone();
    assert_eq!(
        b.delete_docs(CHUNKS, std::slice::from_ref(&gone))
            .await
            .expect("delete"),
        1
    );
    let after = ids(a.scan(CHUNKS, None, 100).await.expect("scan a again"));
    assert!(!after.contains(&gone), "{after:?}");
    assert_eq!(after.len() + 1, before.len());
    // Aliases are shared at once.
    a.ensure_speakers("v3", SPK_DIM, "v3")
        .await
        .expect("speakers");
    assert_eq!(
        b.alias_target(SPEAKERS_ALIAS)
            .await
            .expect("alias")
            .as_deref(),
        Some("speakers_v3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_wait_for_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = EmbeddedIndex::open(dir.path()).expect("open a");
    let b = EmbeddedIndex::open(dir.path()).expect("open b");
    a.ensure_chunks(DIM).await.expect("ensure");
    let write = |idx: EmbeddedIndex, base: u128| async move {
        for n in 0..5u128 {
            let file = Uuid::from_u128(base + n);
            let docs = (0..3)
                .map(|s| chunk(file, None, s, "concurrent", &[1.0, 0.0, 0.0, 0.0], &[]))
                .collect();
            idx.replace_chunks(vec![(file, docs)]).await?;
        }
        Ok::<_, SearchError>(())
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(write(a.clone(), 0x100)),
        tokio::spawn(write(b.clone(), 0x200))
    );
    ra.expect("task a").expect("writes of a");
    rb.expect("task b").expect("writes of b");
    wait_for("all 30 chunks in a", || async {
        all_chunk_ids(&a, 7).await.len() == 30
    })
    .await;
    wait_for("all 30 chunks in b", || async {
        all_chunk_ids(&b, 7).await.len() == 30
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_held_elsewhere_times_out_as_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        lock_timeout: Duration::from_millis(300),
    };
    let idx = EmbeddedIndex::open_with(dir.path(), options).expect("open");
    idx.ensure_chunks(DIM).await.expect("ensure");
    // Another process' writer, held for the whole call.
    let other = tantivy::Index::open_in_dir(dir.path().join(CHUNKS)).expect("tantivy open");
    let held: tantivy::IndexWriter = other.writer(15_000_000).expect("writer");
    let started = Instant::now();
    let err = idx
        .replace_chunks(corpus())
        .await
        .expect_err("wrote past a held lock");
    assert!(err.class().may_retry(), "{err}");
    assert_eq!(err.code(), "index_unavailable");
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(held);
    idx.replace_chunks(corpus()).await.expect("lock free again");
    assert_eq!(
        idx.search_text("budget", Scope::All, 10)
            .await
            .expect("text")
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_names_are_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let idx = EmbeddedIndex::open(dir.path()).expect("open");
    assert!(matches!(
        idx.ensure_speakers("../x", SPK_DIM, "v3").await,
        Err(SearchError::Invalid(_))
    ));
    assert!(matches!(
        idx.scan("other", None, 5).await,
        Err(SearchError::Invalid(_))
    ));
    assert!(matches!(
        idx.scan(CHUNKS, None, 5).await,
        Err(SearchError::NoSuchIndex(_))
    ));
    assert!(matches!(
        idx.replace_chunks(corpus()).await,
        Err(SearchError::NoSuchIndex(_))
    ));
    assert!(
        idx.search_vector(&[1.0; 4], Scope::All, 5)
            .await
            .expect("no index: no hits")
            .is_empty()
    );
}
