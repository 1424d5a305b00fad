//! Search-index bookkeeping, integrity counts, voiceprints for the speaker index, migration
//! failures and maintenance runs, against the real PostgreSQL, each test in a fresh database.
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::Db;
use serde_json::json;
use uuid::Uuid;
use voxfleet_store::files::{
    SegmentRow, StoredFile, TranscriptWrite, WordRow, insert_file, save_transcript, segments,
    set_transcription_jobs,
};
use voxfleet_store::search::{
    IndexCounts, IndexFile, ReferenceCounts, clear_failures, existing_speakers, failures,
    files_by_id, get_run, index_counts, indexable_files, mark_all_pending, mark_indexed,
    record_failures, reference_counts, set_run_state, speakers_for_profile, start_run,
    transcribed_files, update_run, voiceprints,
};
use voxfleet_store::speakers::{
    DiarizationWrite, NewEmbedding, NewSpeaker, rename_speaker, save_diarization,
    set_diarization_jobs,
};

const MODEL: &str = "bge-small-en-v1.5";

async fn file(db: &Db, owner: Option<Uuid>) -> Uuid {
    let id = Uuid::now_v7();
    insert_file(
        &db.pool,
        &StoredFile {
            id,
            owner,
            filename: format!("talk-{id}.wav"),
            content_type: Some("audio/wav".into()),
            size_bytes: 1234,
            sha256: "00".repeat(32),
            storage_key: format!("files/{id}"),
            owns_object: true,
            duration_s: Some(60.0),
            audio: None,
            probe_error: None,
        },
    )
    .await
    .unwrap();
    // created_at orders the listings: keep the files' timestamps apart
    tokio::time::sleep(Duration::from_millis(5)).await;
    id
}

/// Saves a one-segment transcript for `file` as `job`; whether it was written.
async fn transcribe(db: &Db, file: Uuid, job: Uuid, text: &str) -> bool {
    let segments = [SegmentRow {
        idx: 0,
        start_s: 0.0,
        end_s: 2.5,
        text: text.into(),
        avg_logprob: -0.2,
        no_speech_prob: 0.01,
        temperature: 0.0,
        compression_ratio: 1.1,
        language: "en".into(),
        words: Some(
            text.split_whitespace()
                .enumerate()
                .map(|(i, w)| WordRow {
                    word: format!(" {w}"),
                    start: i as f64 * 0.5,
                    end: i as f64 * 0.5 + 0.4,
                    probability: 0.9,
                })
                .collect(),
        ),
    }];
    save_transcript(
        &db.pool,
        &TranscriptWrite {
            file,
            job,
            owner: None,
            model: "tiny.en",
            language: "en",
            duration_s: 60.0,
            processing_s: 1.5,
            segments: &segments,
        },
    )
    .await
    .unwrap()
}

fn vector(dim: usize, seed: f32) -> Vec<f32> {
    (0..dim)
        .map(|i| ((i as f32 + 1.0) * 0.37 + seed).sin() / 7.0)
        .collect()
}

fn new_speakers(labels: &[&str]) -> Vec<NewSpeaker> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| NewSpeaker {
            label: (*l).into(),
            speech_s: 10.0 + i as f64,
        })
        .collect()
}

/// Diarizes `file` into `labels` (new speaker ids, in input order) with these voiceprints
/// `(speaker index, profile, vector)` and names `(speaker index, name)`.
async fn diarize(
    db: &Db,
    file: Uuid,
    labels: &[&str],
    prints: &[(usize, &str, &[f32])],
    names: &[(usize, String)],
) -> Vec<Uuid> {
    let sp = new_speakers(labels);
    let em: Vec<NewEmbedding> = prints
        .iter()
        .map(|(speaker, profile, vector)| NewEmbedding {
            speaker: *speaker,
            profile,
            model: if *profile == "v3" { "campplus" } else { "ge2e" },
            vector,
        })
        .collect();
    // a re-diarization is a newer job, linked before it saves
    let job = Uuid::now_v7();
    set_diarization_jobs(&db.pool, &[(file, job)])
        .await
        .unwrap();
    save_diarization(
        &db.pool,
        &DiarizationWrite {
            file_id: file,
            job_id: job,
            owner: None,
            model: "pyannote-3.1",
            speakers: &sp,
            turns: &[],
            embeddings: &em,
            names,
            audio_seconds: 60.0,
            processing_seconds: 4.5,
        },
    )
    .await
    .unwrap()
    .unwrap()
}

fn counts(total: i64, indexed: i64, chunks: i64, models: &[&str]) -> IndexCounts {
    IndexCounts {
        total,
        indexed,
        pending: total - indexed,
        chunks,
        models: models.iter().map(|m| m.to_string()).collect(),
    }
}

fn ids(files: &[IndexFile]) -> Vec<Uuid> {
    files.iter().map(|f| f.id).collect()
}

/// The file's index_version as a pending reindex would read it.
async fn pending_version(db: &Db, id: Uuid) -> i64 {
    let pending = indexable_files(&db.pool, true).await.unwrap();
    pending
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("{id} is not pending: {pending:?}"))
        .index_version
}

async fn is_pending(db: &Db, id: Uuid) -> bool {
    ids(&indexable_files(&db.pool, true).await.unwrap()).contains(&id)
}

#[tokio::test]
async fn a_file_is_pending_until_indexed_at_its_current_version() {
    let db = Db::fresh().await;
    let owner = Uuid::now_v7();
    let f = file(&db, Some(owner)).await;
    let bare = file(&db, None).await;

    // nothing is transcribed yet: nothing to index
    assert_eq!(index_counts(&db.pool).await.unwrap(), counts(0, 0, 0, &[]));
    assert!(indexable_files(&db.pool, true).await.unwrap().is_empty());
    assert!(indexable_files(&db.pool, false).await.unwrap().is_empty());

    let job = Uuid::now_v7();
    set_transcription_jobs(&db.pool, &[(f, job)]).await.unwrap();
    assert!(transcribe(&db, f, job, "hello there").await);
    // Word timestamps are kept with their segment.
    let saved = segments(&db.pool, f).await.unwrap();
    let words = saved[0].words.as_ref().expect("words saved");
    assert_eq!(
        words.iter().map(|w| w.word.as_str()).collect::<Vec<_>>(),
        [" hello", " there"]
    );
    assert_eq!((words[1].start, words[1].end), (0.5, 0.9));
    assert_eq!(index_counts(&db.pool).await.unwrap(), counts(1, 0, 0, &[]));
    let pending = indexable_files(&db.pool, true).await.unwrap();
    assert_eq!(
        pending,
        [IndexFile {
            id: f,
            owner: Some(owner),
            filename: format!("talk-{f}.wav"),
            index_version: 1,
        }]
    );

    mark_indexed(&db.pool, f, 1, MODEL, 7).await.unwrap();
    assert_eq!(
        index_counts(&db.pool).await.unwrap(),
        counts(1, 1, 7, &[MODEL])
    );
    assert!(indexable_files(&db.pool, true).await.unwrap().is_empty());
    assert_eq!(ids(&indexable_files(&db.pool, false).await.unwrap()), [f]);

    // re-transcription (a retried attempt of the linked job) makes it pending again
    assert!(transcribe(&db, f, job, "hello again").await);
    assert_eq!(pending_version(&db, f).await, 2);
    assert_eq!(index_counts(&db.pool).await.unwrap(), counts(1, 0, 0, &[]));
    // a reindex that read version 1 finishes after the change: the file stays pending
    mark_indexed(&db.pool, f, 1, MODEL, 9).await.unwrap();
    assert!(is_pending(&db, f).await);
    assert_eq!(index_counts(&db.pool).await.unwrap(), counts(1, 0, 0, &[]));
    mark_indexed(&db.pool, f, 2, MODEL, 9).await.unwrap();
    assert_eq!(
        index_counts(&db.pool).await.unwrap(),
        counts(1, 1, 9, &[MODEL])
    );

    // a newer transcription job, linked, replaces the transcript
    let newer = Uuid::now_v7();
    set_transcription_jobs(&db.pool, &[(f, newer)])
        .await
        .unwrap();
    assert!(!transcribe(&db, f, job, "stale").await);
    assert!(!is_pending(&db, f).await, "a refused save changes nothing");
    assert!(transcribe(&db, f, newer, "newest").await);
    assert_eq!(pending_version(&db, f).await, 3);
    mark_indexed(&db.pool, f, 3, MODEL, 4).await.unwrap();
    assert!(!is_pending(&db, f).await);

    // a diarization changes what the index holds
    let sp = diarize(&db, f, &["SPEAKER_00", "SPEAKER_01"], &[], &[]).await;
    assert_eq!(pending_version(&db, f).await, 4);
    mark_indexed(&db.pool, f, 4, MODEL, 4).await.unwrap();
    assert!(!is_pending(&db, f).await);

    // so does renaming one of its speakers; a reindex that read the version before is stale
    rename_speaker(&db.pool, sp[1], Some("Alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending_version(&db, f).await, 5);
    mark_indexed(&db.pool, f, 4, MODEL, 4).await.unwrap();
    assert!(is_pending(&db, f).await);
    assert_eq!(index_counts(&db.pool).await.unwrap(), counts(1, 0, 0, &[]));
    // renaming a speaker that does not exist bumps nothing
    mark_indexed(&db.pool, f, 5, MODEL, 6).await.unwrap();
    assert_eq!(
        rename_speaker(&db.pool, Uuid::now_v7(), Some("Bob"))
            .await
            .unwrap(),
        None
    );
    assert!(!is_pending(&db, f).await);
    assert_eq!(
        index_counts(&db.pool).await.unwrap(),
        counts(1, 1, 6, &[MODEL])
    );

    // a file with speakers but no transcript is indexable too
    let spoken = file(&db, None).await;
    diarize(&db, spoken, &["SPEAKER_00"], &[], &[]).await;
    assert_eq!(
        ids(&indexable_files(&db.pool, true).await.unwrap()),
        [spoken]
    );
    assert_eq!(
        index_counts(&db.pool).await.unwrap(),
        counts(2, 1, 6, &[MODEL])
    );
    mark_indexed(&db.pool, spoken, 1, "other-model", 2)
        .await
        .unwrap();
    assert_eq!(
        index_counts(&db.pool).await.unwrap(),
        counts(2, 2, 8, &["bge-small-en-v1.5", "other-model"])
    );

    // the chunk index was recreated: every file is pending (the bare one too, not indexable)
    assert_eq!(mark_all_pending(&db.pool).await.unwrap(), 3);
    let c = index_counts(&db.pool).await.unwrap();
    assert_eq!((c.total, c.indexed, c.pending, c.chunks), (2, 0, 2, 0));
    assert!(c.models.is_empty(), "{c:?}");
    assert_eq!(
        ids(&indexable_files(&db.pool, true).await.unwrap()),
        [f, spoken]
    );
    assert_eq!(
        ids(&indexable_files(&db.pool, false).await.unwrap()),
        [f, spoken]
    );
    // versions are kept: a reindex marks them at what it reads
    assert_eq!(pending_version(&db, f).await, 5);
    assert_eq!(pending_version(&db, spoken).await, 1);
    mark_indexed(&db.pool, spoken, 1, MODEL, 1).await.unwrap();
    assert_eq!(ids(&indexable_files(&db.pool, true).await.unwrap()), [f]);
    assert_eq!(
        ids(&indexable_files(&db.pool, false).await.unwrap()),
        [f, spoken]
    );

    // files_by_id: the existing ones, whatever their state, in creation order
    let by_id = files_by_id(&db.pool, &[spoken, Uuid::now_v7(), bare, f])
        .await
        .unwrap();
    assert_eq!(ids(&by_id), [f, bare, spoken]);
    assert_eq!(
        by_id[1],
        IndexFile {
            id: bare,
            owner: None,
            filename: format!("talk-{bare}.wav"),
            index_version: 0,
        }
    );
    assert_eq!((by_id[0].owner, by_id[0].index_version), (Some(owner), 5));
    assert!(
        files_by_id(&db.pool, &[Uuid::now_v7()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(files_by_id(&db.pool, &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn transcribed_files_and_existing_speakers_filter_ids() {
    let db = Db::fresh().await;
    let (t, d, bare) = (
        file(&db, None).await,
        file(&db, None).await,
        file(&db, None).await,
    );
    assert!(transcribe(&db, t, Uuid::now_v7(), "words").await);
    let old = diarize(&db, d, &["SPEAKER_00", "SPEAKER_01"], &[], &[]).await;
    let other = diarize(&db, t, &["SPEAKER_00"], &[], &[]).await;
    let random = Uuid::now_v7();

    assert_eq!(
        transcribed_files(&db.pool, &[t, d, bare, random])
            .await
            .unwrap(),
        HashSet::from([t])
    );
    assert!(
        transcribed_files(&db.pool, &[d, bare, random])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(transcribed_files(&db.pool, &[]).await.unwrap().is_empty());

    assert_eq!(
        existing_speakers(&db.pool, &[old[0], random, other[0], t])
            .await
            .unwrap(),
        HashSet::from([old[0], other[0]])
    );
    // re-diarized: the old speakers are gone, the new ones exist
    let new = diarize(&db, d, &["SPEAKER_00"], &[], &[]).await;
    assert_eq!(
        existing_speakers(&db.pool, &[old[0], old[1], new[0], other[0]])
            .await
            .unwrap(),
        HashSet::from([new[0], other[0]])
    );
    assert!(existing_speakers(&db.pool, &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn reference_counts_count_what_postgres_holds() {
    let db = Db::fresh().await;
    assert_eq!(
        reference_counts(&db.pool).await.unwrap(),
        ReferenceCounts::default()
    );

    let (a, b, c) = (
        file(&db, None).await,
        file(&db, None).await,
        file(&db, None).await,
    );
    let _untranscribed = file(&db, None).await;
    for f in [a, b, c] {
        assert!(transcribe(&db, f, Uuid::now_v7(), "text").await);
    }
    let (v3a, v3b, v4a) = (vector(192, 0.0), vector(192, 1.0), vector(256, 2.0));
    diarize(
        &db,
        a,
        &["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"],
        &[(0, "v3", &v3a), (1, "v3", &v3b), (0, "v4", &v4a)],
        &[],
    )
    .await;
    diarize(&db, b, &["SPEAKER_00"], &[(0, "v3", &v3a)], &[]).await;

    assert_eq!(
        reference_counts(&db.pool).await.unwrap(),
        ReferenceCounts {
            files: 4,
            transcribed_files: 3,
            speakers: 4,
            voiceprints: BTreeMap::from([("v3".to_string(), 3), ("v4".to_string(), 1)]),
        }
    );
}

#[tokio::test]
async fn speakers_for_profile_tell_which_have_a_voiceprint() {
    let db = Db::fresh().await;
    let owner = Uuid::now_v7();
    let first = file(&db, Some(owner)).await;
    let second = file(&db, None).await;
    let (p1, p2, p3, p4) = (
        vector(192, 0.1),
        vector(256, 0.2),
        vector(192, 0.3),
        vector(256, 0.4),
    );
    // the later file is diarized first, and labels come in reverse: the order is the files',
    // then the labels'
    let b = diarize(
        &db,
        second,
        &["SPEAKER_00"],
        &[(0, "v3", &p3), (0, "v4", &p4)],
        &[],
    )
    .await;
    let a = diarize(
        &db,
        first,
        &["SPEAKER_01", "SPEAKER_00"],
        &[(1, "v3", &p1), (0, "v4", &p2)],
        &[(0, "Alice".to_string())],
    )
    .await;
    let (a01, a00, b00) = (a[0], a[1], b[0]);

    let v3 = speakers_for_profile(&db.pool, "v3").await.unwrap();
    assert_eq!(
        v3.iter()
            .map(|s| (s.id, s.file_id, s.label.as_str(), s.has_voiceprint))
            .collect::<Vec<_>>(),
        [
            (a00, first, "SPEAKER_00", true),
            (a01, first, "SPEAKER_01", false),
            (b00, second, "SPEAKER_00", true),
        ]
    );
    assert_eq!(
        v3.iter()
            .map(|s| (s.owner, s.name.as_deref(), s.storage_key.clone()))
            .collect::<Vec<_>>(),
        [
            (Some(owner), None, format!("files/{first}")),
            (Some(owner), Some("Alice"), format!("files/{first}")),
            (None, None, format!("files/{second}")),
        ]
    );
    let v4 = speakers_for_profile(&db.pool, "v4").await.unwrap();
    assert_eq!(
        v4.iter()
            .map(|s| (s.id, s.has_voiceprint))
            .collect::<Vec<_>>(),
        [(a00, false), (a01, true), (b00, true)]
    );
    let none = speakers_for_profile(&db.pool, "v5").await.unwrap();
    assert_eq!(
        none.iter()
            .map(|s| (s.id, s.has_voiceprint))
            .collect::<Vec<_>>(),
        [(a00, false), (a01, false), (b00, false)]
    );

    // the stored vectors, bit for bit; other profiles' and unknown speakers' are left out
    let got: HashMap<Uuid, (String, String, Vec<f32>)> =
        voiceprints(&db.pool, "v3", &[a00, a01, b00, Uuid::now_v7()])
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.speaker_id, (v.profile, v.model, v.vector)))
            .collect();
    assert_eq!(
        got,
        HashMap::from([
            (a00, ("v3".to_string(), "campplus".to_string(), p1.clone())),
            (b00, ("v3".to_string(), "campplus".to_string(), p3.clone())),
        ])
    );
    let got = voiceprints(&db.pool, "v4", &[a01]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].speaker_id, got[0].model.as_str(), &got[0].vector),
        (a01, "ge2e", &p2)
    );
    assert!(
        voiceprints(&db.pool, "v4", &[a00])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(voiceprints(&db.pool, "v3", &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn failures_are_counted_cleared_and_go_with_their_speakers() {
    let db = Db::fresh().await;
    let f = file(&db, None).await;
    let g = file(&db, None).await;
    let s = diarize(
        &db,
        f,
        &["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"],
        &[],
        &[],
    )
    .await;
    let other = diarize(&db, g, &["SPEAKER_00"], &[], &[]).await;
    let gone = Uuid::now_v7();

    record_failures(
        &db.pool,
        "v4",
        &[s[0], s[1], gone],
        "audio_missing",
        "no audio",
    )
    .await
    .unwrap();
    let got = failures(&db.pool, "v4").await.unwrap();
    let by: HashMap<Uuid, (String, String, i32, String)> = got
        .iter()
        .map(|e| {
            (
                e.speaker_id,
                (
                    e.error_code.clone(),
                    e.message.clone(),
                    e.attempts,
                    e.profile.clone(),
                ),
            )
        })
        .collect();
    assert_eq!(
        by,
        HashMap::from([
            (
                s[0],
                ("audio_missing".into(), "no audio".into(), 1, "v4".into())
            ),
            (
                s[1],
                ("audio_missing".into(), "no audio".into(), 1, "v4".into())
            ),
        ])
    );
    let first_at = got.iter().find(|e| e.speaker_id == s[0]).unwrap().at;

    // a second failure counts, with the latest code and message
    record_failures(&db.pool, "v4", &[s[0]], "decode_failed", "bad frame")
        .await
        .unwrap();
    let got = failures(&db.pool, "v4").await.unwrap();
    assert_eq!(got.len(), 2);
    // ordered by time: the one that failed again is last
    assert_eq!(got[0].speaker_id, s[1]);
    assert_eq!(
        (
            got[1].speaker_id,
            got[1].error_code.as_str(),
            got[1].message.as_str(),
            got[1].attempts
        ),
        (s[0], "decode_failed", "bad frame", 2)
    );
    assert!(got[1].at > first_at);
    assert_eq!(got[0].attempts, 1);

    // another profile's failures are separate
    record_failures(
        &db.pool,
        "v3",
        &[s[0], s[2], other[0]],
        "audio_missing",
        "x",
    )
    .await
    .unwrap();
    assert_eq!(failures(&db.pool, "v3").await.unwrap().len(), 3);
    assert_eq!(failures(&db.pool, "v4").await.unwrap().len(), 2);
    assert!(failures(&db.pool, "v5").await.unwrap().is_empty());

    // clearing some: only those, only of the profile
    assert_eq!(
        clear_failures(&db.pool, "v4", Some(&[s[1], s[2], gone]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        failures(&db.pool, "v4")
            .await
            .unwrap()
            .iter()
            .map(|e| e.speaker_id)
            .collect::<Vec<_>>(),
        [s[0]]
    );
    assert_eq!(failures(&db.pool, "v3").await.unwrap().len(), 3);
    assert_eq!(clear_failures(&db.pool, "v4", Some(&[])).await.unwrap(), 0);
    assert_eq!(failures(&db.pool, "v4").await.unwrap().len(), 1);

    // clearing all of a profile leaves the others
    assert_eq!(clear_failures(&db.pool, "v4", None).await.unwrap(), 1);
    assert!(failures(&db.pool, "v4").await.unwrap().is_empty());
    assert_eq!(failures(&db.pool, "v3").await.unwrap().len(), 3);

    // re-diarizing f deletes its speakers: their failures go with them, and new failures for
    // them are skipped
    let new = diarize(&db, f, &["SPEAKER_00"], &[], &[]).await;
    assert_eq!(
        failures(&db.pool, "v3")
            .await
            .unwrap()
            .iter()
            .map(|e| e.speaker_id)
            .collect::<Vec<_>>(),
        [other[0]]
    );
    record_failures(&db.pool, "v3", &[s[0], s[1], new[0]], "audio_missing", "y")
        .await
        .unwrap();
    let ids: HashSet<Uuid> = failures(&db.pool, "v3")
        .await
        .unwrap()
        .iter()
        .map(|e| e.speaker_id)
        .collect();
    assert_eq!(ids, HashSet::from([other[0], new[0]]));
    assert_eq!(db.count("SELECT count(*) FROM embedding_failures").await, 2);
    assert_eq!(clear_failures(&db.pool, "v3", None).await.unwrap(), 2);
    assert_eq!(db.count("SELECT count(*) FROM embedding_failures").await, 0);
}

#[tokio::test]
async fn maintenance_runs_belong_to_their_job() {
    let db = Db::fresh().await;
    assert_eq!(get_run(&db.pool, "reindex").await.unwrap(), None);

    let (j1, j2) = (Uuid::now_v7(), Uuid::now_v7());
    start_run(&db.pool, "reindex", j1, &json!({"done": 0}))
        .await
        .unwrap();
    let r = get_run(&db.pool, "reindex").await.unwrap().unwrap();
    assert_eq!(
        (
            r.section.as_str(),
            r.job_id,
            r.state.as_str(),
            &r.report,
            r.finished_at
        ),
        ("reindex", Some(j1), "running", &json!({"done": 0}), None)
    );
    let started = r.started_at.unwrap();

    // progress of the run's own job
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        update_run(
            &db.pool,
            "reindex",
            j1,
            "running",
            &json!({"done": 5}),
            false
        )
        .await
        .unwrap()
    );
    let r = get_run(&db.pool, "reindex").await.unwrap().unwrap();
    assert_eq!(
        (r.state.as_str(), &r.report, r.started_at, r.finished_at),
        ("running", &json!({"done": 5}), Some(started), None)
    );
    assert!(r.updated_at > started);

    // a retried attempt of the same job starting again keeps the start time
    start_run(&db.pool, "reindex", j1, &json!({"done": 0}))
        .await
        .unwrap();
    let r = get_run(&db.pool, "reindex").await.unwrap().unwrap();
    assert_eq!(
        (r.started_at, &r.report),
        (Some(started), &json!({"done": 0}))
    );

    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        update_run(
            &db.pool,
            "reindex",
            j1,
            "completed",
            &json!({"done": 10}),
            true
        )
        .await
        .unwrap()
    );
    let done = get_run(&db.pool, "reindex").await.unwrap().unwrap();
    assert_eq!(
        (
            done.job_id,
            done.state.as_str(),
            &done.report,
            done.started_at
        ),
        (Some(j1), "completed", &json!({"done": 10}), Some(started))
    );
    let finished = done.finished_at.unwrap();
    assert!(finished > started);

    // another job's update changes nothing, nor one of another section
    assert!(
        !update_run(&db.pool, "reindex", j2, "failed", &json!({"x": 1}), true)
            .await
            .unwrap()
    );
    assert!(
        !update_run(&db.pool, "integrity", j1, "failed", &json!({"x": 1}), true)
            .await
            .unwrap()
    );
    assert_eq!(
        get_run(&db.pool, "reindex").await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(get_run(&db.pool, "integrity").await.unwrap(), None);

    // a new job replaces the row
    tokio::time::sleep(Duration::from_millis(10)).await;
    start_run(&db.pool, "reindex", j2, &json!({"done": 0, "total": 3}))
        .await
        .unwrap();
    let r = get_run(&db.pool, "reindex").await.unwrap().unwrap();
    assert_eq!(
        (r.job_id, r.state.as_str(), &r.report, r.finished_at),
        (Some(j2), "running", &json!({"done": 0, "total": 3}), None)
    );
    assert!(r.started_at.unwrap() > finished);
    // and the old job can no longer write it
    assert!(
        !update_run(&db.pool, "reindex", j1, "stopped", &json!({}), true)
            .await
            .unwrap()
    );
    assert_eq!(
        get_run(&db.pool, "reindex").await.unwrap().unwrap().state,
        "running"
    );

    // a state without a job: a new section's row is created finished
    set_run_state(
        &db.pool,
        "migration",
        "finalized",
        &json!({"profile": "v4"}),
    )
    .await
    .unwrap();
    let m = get_run(&db.pool, "migration").await.unwrap().unwrap();
    assert_eq!(
        (
            m.section.as_str(),
            m.job_id,
            m.state.as_str(),
            &m.report,
            m.started_at
        ),
        (
            "migration",
            None,
            "finalized",
            &json!({"profile": "v4"}),
            None
        )
    );
    assert!(m.finished_at.is_some());
    // on an existing row it sets state and report, whatever job ran it
    set_run_state(&db.pool, "reindex", "stopped", &json!({"why": "admin"}))
        .await
        .unwrap();
    let s = get_run(&db.pool, "reindex").await.unwrap().unwrap();
    assert_eq!(
        (s.job_id, s.state.as_str(), &s.report, s.started_at),
        (Some(j2), "stopped", &json!({"why": "admin"}), r.started_at)
    );
    assert!(s.updated_at > r.updated_at);
    assert_eq!(get_run(&db.pool, "nonexistent").await.unwrap(), None);
}
