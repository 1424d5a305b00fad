//! Speakers, turns and voiceprints against the real PostgreSQL, each test in a fresh database.
mod common;

use common::Db;
use uuid::Uuid;
use voxfleet_store::StoreError;
use voxfleet_store::files::{Deleted, StoredFile, delete_file, get_file, insert_file};
use voxfleet_store::settings::{EmbeddingSettings, get_embedding_settings, put_embedding_settings};
use voxfleet_store::speakers::{
    DiarizationWrite, NewEmbedding, NewSpeaker, NewTurn, file_speakers, file_voiceprints,
    get_speaker, put_embeddings, rename_speaker, save_diarization, set_diarization_jobs,
    speaker_voiceprints, turns, voiceprint_counts,
};

/// A voiceprint row as `put_embeddings` takes it.
type Row<'a> = (Uuid, &'a str, &'a str, &'a [f32]);

async fn file(db: &Db, owner: Option<Uuid>) -> Uuid {
    let id = Uuid::now_v7();
    insert_file(
        &db.pool,
        &StoredFile {
            id,
            owner,
            filename: "talk.wav".into(),
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
    id
}

/// A deterministic vector of `dim` values, different per `seed`.
fn vector(dim: usize, seed: f32) -> Vec<f32> {
    (0..dim)
        .map(|i| ((i as f32 + 1.0) * 0.37 + seed).sin() / 7.0)
        .collect()
}

fn speakers(labels: &[&str]) -> Vec<NewSpeaker> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| NewSpeaker {
            label: (*l).into(),
            speech_s: 10.0 + i as f64,
        })
        .collect()
}

fn write<'a>(
    file_id: Uuid,
    job_id: Uuid,
    speakers: &'a [NewSpeaker],
    turns: &'a [NewTurn],
    embeddings: &'a [NewEmbedding<'a>],
    names: &'a [(usize, String)],
) -> DiarizationWrite<'a> {
    DiarizationWrite {
        file_id,
        job_id,
        owner: None,
        model: "pyannote-3.1",
        speakers,
        turns,
        embeddings,
        names,
        audio_seconds: 60.0,
        processing_seconds: 4.5,
    }
}

async fn usage_rows(db: &Db, job: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_records WHERE job_id = $1 AND kind = 'diarize'")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn save_and_read_back() {
    let db = Db::fresh().await;
    let owner = Uuid::now_v7();
    let f = file(&db, Some(owner)).await;
    let job = Uuid::now_v7();
    // input order differs from label order and turn order from time order
    let sp = speakers(&["SPEAKER_01", "SPEAKER_00"]);
    let tu = [
        NewTurn {
            start_s: 5.0,
            end_s: 9.0,
            speaker: 0,
        },
        NewTurn {
            start_s: 0.5,
            end_s: 4.0,
            speaker: 1,
        },
        NewTurn {
            start_s: 9.5,
            end_s: 12.0,
            speaker: 1,
        },
    ];
    let (a3, b3, a4) = (vector(192, 0.0), vector(192, 1.0), vector(256, 2.0));
    let em = [
        NewEmbedding {
            speaker: 0,
            profile: "v3",
            model: "campplus",
            vector: &a3,
        },
        NewEmbedding {
            speaker: 1,
            profile: "v3",
            model: "campplus",
            vector: &b3,
        },
        NewEmbedding {
            speaker: 0,
            profile: "v4",
            model: "ge2e",
            vector: &a4,
        },
    ];
    let names = [(1, "  Alice ".to_string())];
    let mut w = write(f, job, &sp, &tu, &em, &names);
    w.owner = Some(owner);
    let ids = save_diarization(&db.pool, &w).await.unwrap().unwrap();
    assert_eq!(ids.len(), 2);

    let rows = file_speakers(&db.pool, f).await.unwrap();
    assert_eq!(
        rows.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(),
        ["SPEAKER_00", "SPEAKER_01"]
    );
    assert_eq!(rows[0].id, ids[1]);
    assert_eq!(rows[0].name.as_deref(), Some("Alice"));
    assert_eq!(rows[0].profiles, ["v3"]);
    assert_eq!(rows[0].speech_s, 11.0);
    assert_eq!(rows[1].id, ids[0]);
    assert_eq!(rows[1].name, None);
    assert_eq!(rows[1].profiles, ["v3", "v4"]);
    assert!(
        rows.iter()
            .all(|s| s.owner == Some(owner) && s.file_id == f)
    );
    assert_eq!(
        get_speaker(&db.pool, ids[0]).await.unwrap().as_ref(),
        Some(&rows[1])
    );
    assert_eq!(get_speaker(&db.pool, Uuid::now_v7()).await.unwrap(), None);

    let t = turns(&db.pool, f).await.unwrap();
    assert_eq!(t.iter().map(|t| t.idx).collect::<Vec<_>>(), [1, 0, 2]);
    assert_eq!(t[0].speaker_id, ids[1]);
    assert_eq!(
        (t[0].label.as_str(), t[0].name.as_deref()),
        ("SPEAKER_00", Some("Alice"))
    );
    assert_eq!(
        (t[1].start_s, t[1].end_s, t[1].speaker_id),
        (5.0, 9.0, ids[0])
    );

    let v3 = file_voiceprints(&db.pool, f, "v3").await.unwrap();
    assert_eq!(v3.len(), 2);
    assert_eq!((v3[0].speaker_id, &v3[0].vector), (ids[1], &b3));
    assert_eq!((v3[1].speaker_id, &v3[1].vector), (ids[0], &a3));
    assert_eq!(v3[1].model, "campplus");
    let v4 = file_voiceprints(&db.pool, f, "v4").await.unwrap();
    assert_eq!(v4.len(), 1);
    assert_eq!((v4[0].vector.len(), &v4[0].vector), (256, &a4));
    let mine = speaker_voiceprints(&db.pool, ids[0]).await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|v| (v.profile.as_str(), v.vector.len()))
            .collect::<Vec<_>>(),
        [("v3", 192), ("v4", 256)]
    );
    let dims: Vec<(String, i32, Option<Uuid>)> = sqlx::query_as(
        "SELECT profile, dim, job_id FROM speaker_embeddings WHERE speaker_id = $1 ORDER BY profile",
    )
    .bind(ids[0])
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        dims,
        [("v3".into(), 192, Some(job)), ("v4".into(), 256, Some(job))]
    );
    assert_eq!(
        voiceprint_counts(&db.pool).await.unwrap(),
        [("v3".to_string(), 2), ("v4".to_string(), 1)]
    );

    // the file shows it; the transcription status is untouched
    let rec = get_file(&db.pool, f).await.unwrap().unwrap();
    assert_eq!(rec.diarization_job, Some(job));
    assert_eq!(rec.diarization_model.as_deref(), Some("pyannote-3.1"));
    assert!(rec.diarized_at.is_some());
    assert_eq!(rec.speakers, 2);
    assert_eq!(rec.status.0.as_str(), "uploaded");
    assert_eq!(rec.transcribed_at, None);

    let (u_owner, u_model, audio): (Option<Uuid>, String, f64) = sqlx::query_as(
        "SELECT owner, model, audio_seconds FROM usage_records WHERE job_id = $1 AND kind = 'diarize'",
    )
    .bind(job)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (u_owner, u_model.as_str(), audio),
        (Some(owner), "pyannote-3.1", 60.0)
    );
}

#[tokio::test]
async fn a_retried_save_replaces_rows_and_counts_usage_once() {
    let db = Db::fresh().await;
    let f = file(&db, None).await;
    let job = Uuid::now_v7();
    set_diarization_jobs(&db.pool, &[(f, job)]).await.unwrap();
    let sp = speakers(&["SPEAKER_00", "SPEAKER_01"]);
    let tu = [NewTurn {
        start_s: 0.0,
        end_s: 1.0,
        speaker: 1,
    }];
    let v = vector(192, 0.5);
    let em = [NewEmbedding {
        speaker: 0,
        profile: "v3",
        model: "campplus",
        vector: &v,
    }];
    let w = write(f, job, &sp, &tu, &em, &[]);
    let first = save_diarization(&db.pool, &w).await.unwrap().unwrap();
    let second = save_diarization(&db.pool, &w).await.unwrap().unwrap();
    assert_ne!(first, second);
    assert_eq!(usage_rows(&db, job).await, 1);
    assert_eq!(db.count("SELECT count(*) FROM speakers").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM speaker_turns").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM speaker_embeddings").await, 1);
    assert_eq!(get_speaker(&db.pool, first[0]).await.unwrap(), None);
    assert_eq!(turns(&db.pool, f).await.unwrap()[0].speaker_id, second[1]);
}

#[tokio::test]
async fn a_superseded_job_writes_nothing_and_the_newer_one_replaces() {
    let db = Db::fresh().await;
    let f = file(&db, None).await;
    let (old, new, newest) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    set_diarization_jobs(&db.pool, &[(f, new)]).await.unwrap();

    let sp = speakers(&["SPEAKER_00"]);
    let v = vector(192, 0.1);
    let em = [NewEmbedding {
        speaker: 0,
        profile: "v3",
        model: "campplus",
        vector: &v,
    }];
    let stale = write(f, old, &sp, &[], &em, &[]);
    assert_eq!(save_diarization(&db.pool, &stale).await.unwrap(), None);
    assert_eq!(db.count("SELECT count(*) FROM speakers").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM speaker_embeddings").await, 0);
    assert_eq!(usage_rows(&db, old).await, 0);
    let rec = get_file(&db.pool, f).await.unwrap().unwrap();
    assert_eq!((rec.diarization_job, rec.diarized_at), (Some(new), None));

    // the linked job writes
    let a = save_diarization(&db.pool, &write(f, new, &sp, &[], &em, &[]))
        .await
        .unwrap()
        .unwrap();

    // re-diarization: a newer job is linked, finds other speakers and replaces the old ones
    set_diarization_jobs(&db.pool, &[(f, newest)])
        .await
        .unwrap();
    let sp2 = speakers(&["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]);
    let tu2 = [
        NewTurn {
            start_s: 0.0,
            end_s: 2.0,
            speaker: 2,
        },
        NewTurn {
            start_s: 2.0,
            end_s: 3.0,
            speaker: 0,
        },
    ];
    let v4 = vector(256, 0.2);
    let em2 = [NewEmbedding {
        speaker: 2,
        profile: "v4",
        model: "ge2e",
        vector: &v4,
    }];
    let b = save_diarization(&db.pool, &write(f, newest, &sp2, &tu2, &em2, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(get_speaker(&db.pool, a[0]).await.unwrap(), None);
    let rows = file_speakers(&db.pool, f).await.unwrap();
    assert_eq!(rows.iter().map(|s| s.id).collect::<Vec<_>>(), b);
    assert!(
        file_voiceprints(&db.pool, f, "v3")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        file_voiceprints(&db.pool, f, "v4").await.unwrap()[0].speaker_id,
        b[2]
    );

    // the previous job finishing (again) late changes nothing
    assert_eq!(
        save_diarization(&db.pool, &write(f, new, &sp, &[], &em, &[]))
            .await
            .unwrap(),
        None
    );
    assert_eq!(file_speakers(&db.pool, f).await.unwrap().len(), 3);
    assert_eq!(
        get_file(&db.pool, f)
            .await
            .unwrap()
            .unwrap()
            .diarization_job,
        Some(newest)
    );
    assert_eq!(usage_rows(&db, new).await, 1);
    assert_eq!(usage_rows(&db, newest).await, 1);

    // a file that is gone
    let missing = write(Uuid::now_v7(), Uuid::now_v7(), &sp, &[], &em, &[]);
    assert_eq!(save_diarization(&db.pool, &missing).await.unwrap(), None);
    assert_eq!(usage_rows(&db, missing.job_id).await, 0);
}

#[tokio::test]
async fn put_embeddings_upserts_and_skips_deleted_speakers() {
    let db = Db::fresh().await;
    let f = file(&db, None).await;
    let job = Uuid::now_v7();
    let sp = speakers(&["SPEAKER_00", "SPEAKER_01"]);
    let v = vector(192, 0.0);
    let em = [NewEmbedding {
        speaker: 0,
        profile: "v3",
        model: "campplus",
        vector: &v,
    }];
    let ids = save_diarization(&db.pool, &write(f, job, &sp, &[], &em, &[]))
        .await
        .unwrap()
        .unwrap();

    let later = Uuid::now_v7();
    let (v3b, v4a, v4b) = (vector(192, 3.0), vector(256, 4.0), vector(256, 5.0));
    let n = put_embeddings(
        &db.pool,
        later,
        &[
            (ids[0], "v3", "campplus-2", &v3b), // replaces
            (ids[0], "v4", "ge2e", &v4a),
            (ids[1], "v4", "ge2e", &v4b),
        ],
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    let mine = speaker_voiceprints(&db.pool, ids[0]).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(
        (mine[0].model.as_str(), &mine[0].vector),
        ("campplus-2", &v3b)
    );
    assert_eq!(&mine[1].vector, &v4a);
    let job_ids: Vec<Option<Uuid>> =
        sqlx::query_scalar("SELECT DISTINCT job_id FROM speaker_embeddings")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(job_ids, [Some(later)]);
    assert_eq!(
        get_speaker(&db.pool, ids[1])
            .await
            .unwrap()
            .unwrap()
            .profiles,
        ["v4"]
    );

    // re-diarized meanwhile: the old speakers are gone, their voiceprints are skipped
    let ids2 = save_diarization(&db.pool, &write(f, job, &sp, &[], &[], &[]))
        .await
        .unwrap()
        .unwrap();
    let n = put_embeddings(
        &db.pool,
        later,
        &[(ids[0], "v4", "ge2e", &v4a), (ids2[1], "v4", "ge2e", &v4b)],
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(db.count("SELECT count(*) FROM speaker_embeddings").await, 1);
    assert_eq!(
        file_voiceprints(&db.pool, f, "v4").await.unwrap()[0].speaker_id,
        ids2[1]
    );
    assert_eq!(put_embeddings(&db.pool, later, &[]).await.unwrap(), 0);
}

#[tokio::test]
async fn vectors_round_trip_in_every_dimension_and_bad_ones_are_refused() {
    let db = Db::fresh().await;
    let f = file(&db, None).await;
    let sp = speakers(&["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]);
    let ids = save_diarization(&db.pool, &write(f, Uuid::now_v7(), &sp, &[], &[], &[]))
        .await
        .unwrap()
        .unwrap();
    let vs: Vec<Vec<f32>> = [192, 256, 512]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut v = vector(*d, i as f32);
            v[0] = f32::MIN_POSITIVE;
            v[1] = -1.0e30;
            v
        })
        .collect();
    let rows: Vec<Row> = ids
        .iter()
        .zip(&vs)
        .map(|(id, v)| (*id, "v4", "m", v.as_slice()))
        .collect();
    assert_eq!(
        put_embeddings(&db.pool, Uuid::now_v7(), &rows)
            .await
            .unwrap(),
        3
    );
    let back = file_voiceprints(&db.pool, f, "v4").await.unwrap();
    for (b, v) in back.iter().zip(&vs) {
        assert_eq!(&b.vector, v); // bit-exact: real is f32
    }
    let dims: Vec<i32> = sqlx::query_scalar("SELECT dim FROM speaker_embeddings ORDER BY dim")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(dims, [192, 256, 512]);

    // the CHECK holds a vector to its dimension, also for writers other than this crate
    for sql in [
        "INSERT INTO speaker_embeddings (speaker_id, profile, model, dim, vector) \
         VALUES ($1, 'v3', 'm', 192, array_fill(0.5::real, ARRAY[191]))",
        "INSERT INTO speaker_embeddings (speaker_id, profile, model, dim, vector) \
         VALUES ($1, 'v3', 'm', 0, '{}'::real[])",
        "INSERT INTO speaker_embeddings (speaker_id, profile, model, dim, vector) \
         VALUES ($1, 'v3', 'm', 4, '{{1,2},{3,4}}'::real[])",
    ] {
        let err = sqlx::query(sql)
            .bind(ids[0])
            .execute(&db.pool)
            .await
            .unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("23514"), "{sql}: {err}");
    }

    // refused before reaching PostgreSQL
    let nan = [f32::NAN; 4];
    let bad: [&[Row]; 3] = [
        &[(ids[0], "v3", "m", &[])],
        &[(ids[0], "v3", "m", &nan)],
        &[(ids[0], "v3", "m", &vs[0]), (ids[0], "v3", "m", &vs[0])],
    ];
    for rows in bad {
        let err = put_embeddings(&db.pool, Uuid::now_v7(), rows)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }
    let v = vector(8, 0.0);
    let out_of_range = [NewEmbedding {
        speaker: 3,
        profile: "v3",
        model: "m",
        vector: &v,
    }];
    let err = save_diarization(
        &db.pool,
        &write(f, Uuid::now_v7(), &sp, &[], &out_of_range, &[]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let bad_turn = [NewTurn {
        start_s: 0.0,
        end_s: 1.0,
        speaker: 9,
    }];
    let err = save_diarization(
        &db.pool,
        &write(f, Uuid::now_v7(), &sp, &bad_turn, &[], &[]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let twice = speakers(&["SPEAKER_00", "SPEAKER_00"]);
    let err = save_diarization(&db.pool, &write(f, Uuid::now_v7(), &twice, &[], &[], &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    // nothing of the refused writes landed
    assert_eq!(db.count("SELECT count(*) FROM speaker_embeddings").await, 3);
    assert_eq!(file_speakers(&db.pool, f).await.unwrap().len(), 3);
}

#[tokio::test]
async fn deleting_the_file_takes_its_speakers_and_keeps_the_usage() {
    let db = Db::fresh().await;
    let (f, other) = (file(&db, None).await, file(&db, None).await);
    let job = Uuid::now_v7();
    let sp = speakers(&["SPEAKER_00", "SPEAKER_01"]);
    let tu = [
        NewTurn {
            start_s: 0.0,
            end_s: 1.0,
            speaker: 0,
        },
        NewTurn {
            start_s: 1.0,
            end_s: 2.0,
            speaker: 1,
        },
    ];
    let v = vector(192, 0.0);
    let em = [
        NewEmbedding {
            speaker: 0,
            profile: "v3",
            model: "m",
            vector: &v,
        },
        NewEmbedding {
            speaker: 1,
            profile: "v3",
            model: "m",
            vector: &v,
        },
    ];
    save_diarization(&db.pool, &write(f, job, &sp, &tu, &em, &[]))
        .await
        .unwrap()
        .unwrap();
    save_diarization(&db.pool, &write(other, Uuid::now_v7(), &sp, &tu, &em, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        delete_file(&db.pool, f).await.unwrap(),
        Deleted::DeleteObject(format!("files/{f}"))
    );
    assert!(file_speakers(&db.pool, f).await.unwrap().is_empty());
    assert_eq!(db.count("SELECT count(*) FROM speakers").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM speaker_turns").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM speaker_embeddings").await, 2);
    assert_eq!(usage_rows(&db, job).await, 1);
    assert_eq!(
        get_file(&db.pool, other).await.unwrap().unwrap().speakers,
        2
    );
}

#[tokio::test]
async fn rename_trims_clears_and_reports_missing() {
    let db = Db::fresh().await;
    let f = file(&db, None).await;
    let sp = speakers(&["SPEAKER_00"]);
    let tu = [NewTurn {
        start_s: 0.0,
        end_s: 1.0,
        speaker: 0,
    }];
    let id = save_diarization(&db.pool, &write(f, Uuid::now_v7(), &sp, &tu, &[], &[]))
        .await
        .unwrap()
        .unwrap()[0];
    let before = get_speaker(&db.pool, id).await.unwrap().unwrap();

    let r = rename_speaker(&db.pool, id, Some("  Bob Smith\n"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.name.as_deref(), Some("Bob Smith"));
    assert!(r.updated_at > before.updated_at);
    assert_eq!(
        (r.label.as_str(), r.created_at),
        ("SPEAKER_00", before.created_at)
    );
    assert_eq!(
        turns(&db.pool, f).await.unwrap()[0].name.as_deref(),
        Some("Bob Smith")
    );

    let r = rename_speaker(&db.pool, id, Some("   "))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.name, None);
    rename_speaker(&db.pool, id, Some("Carol")).await.unwrap();
    let r = rename_speaker(&db.pool, id, None).await.unwrap().unwrap();
    assert_eq!(r.name, None);

    let long = "x".repeat(201);
    let err = rename_speaker(&db.pool, id, Some(&long)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(
        rename_speaker(&db.pool, Uuid::now_v7(), Some("Dan"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn embedding_settings_default_validate_and_round_trip() {
    let db = Db::fresh().await;
    let s = get_embedding_settings(&db.pool).await.unwrap();
    assert_eq!(s.active_profile, "v4");
    assert_eq!(s, EmbeddingSettings::default());

    let by = Uuid::now_v7();
    let v3 = EmbeddingSettings {
        active_profile: "v3".into(),
    };
    put_embedding_settings(&db.pool, &v3, Some(by))
        .await
        .unwrap();
    assert_eq!(get_embedding_settings(&db.pool).await.unwrap(), v3);
    let who: Option<Uuid> =
        sqlx::query_scalar("SELECT updated_by FROM settings WHERE key = 'embeddings'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(who, Some(by));

    for bad in ["v5", "", "V4"] {
        let s = EmbeddingSettings {
            active_profile: bad.into(),
        };
        let err = put_embedding_settings(&db.pool, &s, None)
            .await
            .unwrap_err();
        match err {
            StoreError::Invalid(m) => assert!(m.contains("active_profile"), "{m}"),
            e => panic!("{e}"),
        }
    }
    assert_eq!(get_embedding_settings(&db.pool).await.unwrap(), v3);

    // a missing field reads as the default
    let s: EmbeddingSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(s.active_profile, "v4");
    put_embedding_settings(&db.pool, &EmbeddingSettings::default(), None)
        .await
        .unwrap();
    assert_eq!(
        get_embedding_settings(&db.pool)
            .await
            .unwrap()
            .active_profile,
        "v4"
    );
}
