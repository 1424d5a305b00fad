//! A submission's job rows and its files' links are one transaction, and taking a submission
//! back (its jobs could not be queued) points the files at their previous jobs again.
mod common;

use common::Db;
use serde_json::json;
use uuid::Uuid;
use voxfleet_jobs::{JobKind, Priority, QueueName};
use voxfleet_store::files::{Deleted, JobColumn, StoredFile, delete_file, get_file, insert_file};
use voxfleet_store::jobs::{Inserted, get_job, insert_and_link, new_snapshot, undo_submission};

async fn file(db: &Db, key: &str, owns_object: bool) -> Uuid {
    let id = Uuid::now_v7();
    insert_file(
        &db.pool,
        &StoredFile {
            id,
            owner: None,
            filename: "a.wav".into(),
            content_type: None,
            size_bytes: 1,
            sha256: "00".repeat(32),
            storage_key: key.replace("{id}", &id.to_string()),
            owns_object,
            duration_s: Some(1.0),
            audio: None,
            probe_error: None,
        },
    )
    .await
    .unwrap();
    id
}

fn transcription(file: Uuid, input: serde_json::Value) -> voxfleet_jobs::JobSnapshot {
    let mut input = input;
    input["file_id"] = json!(file);
    new_snapshot(
        JobKind::Transcribe,
        QueueName::gpu(),
        Priority::Normal,
        input,
        None,
        None,
        None,
    )
}

fn links(j: &voxfleet_jobs::JobSnapshot) -> Vec<(JobColumn, Uuid)> {
    let f: Uuid = j.input["file_id"].as_str().unwrap().parse().unwrap();
    vec![(JobColumn::Transcription, f)]
}

#[tokio::test]
async fn a_failed_or_undone_submission_repoints_no_file() {
    let db = Db::fresh().await;
    let f = file(&db, "files/{id}", true).await;
    let first = transcription(f, json!({}));
    let (ins, relinked) = insert_and_link(&db.pool, std::slice::from_ref(&first), links)
        .await
        .unwrap();
    assert!(matches!(&ins[..], [Inserted::Created(_)]));
    assert_eq!(relinked[0].previous, None);
    let linked = |db: &Db| {
        let pool = db.pool.clone();
        async move { get_file(&pool, f).await.unwrap().unwrap().transcription_job }
    };
    assert_eq!(linked(&db).await, Some(first.id.0));

    // An insert that PostgreSQL refuses (a NUL byte: jsonb cannot hold it) changes nothing.
    let bad = transcription(f, json!({"prompt": "a\u{0}b"}));
    assert!(
        insert_and_link(&db.pool, std::slice::from_ref(&bad), links)
            .await
            .is_err()
    );
    assert_eq!(linked(&db).await, Some(first.id.0));
    assert!(get_job(&db.pool, bad.id).await.unwrap().is_none());

    // A submission taken back: its row goes and the file points at the first job again.
    let second = transcription(f, json!({}));
    let (_, relinked) = insert_and_link(&db.pool, std::slice::from_ref(&second), links)
        .await
        .unwrap();
    assert_eq!(relinked[0].previous, Some(first.id.0));
    assert_eq!(linked(&db).await, Some(second.id.0));
    undo_submission(&db.pool, &[second.id], &relinked)
        .await
        .unwrap();
    assert_eq!(linked(&db).await, Some(first.id.0));
    assert!(get_job(&db.pool, second.id).await.unwrap().is_none());
}

#[tokio::test]
async fn an_object_goes_only_with_its_owning_last_record() {
    let db = Db::fresh().await;
    let upload = file(&db, "files/{id}", true).await;
    assert_eq!(
        delete_file(&db.pool, upload).await.unwrap(),
        Deleted::DeleteObject(format!("files/{upload}"))
    );
    assert_eq!(
        delete_file(&db.pool, upload).await.unwrap(),
        Deleted::Missing
    );

    // Two records of one registered object, one owning it.
    let owning = file(&db, "incoming/x.wav", true).await;
    let other = file(&db, "incoming/x.wav", false).await;
    assert_eq!(
        delete_file(&db.pool, owning).await.unwrap(),
        Deleted::KeepObject
    );
    assert_eq!(
        delete_file(&db.pool, other).await.unwrap(),
        Deleted::KeepObject
    );
    // Two owners of one object are refused by the schema.
    file(&db, "incoming/y.wav", true).await;
    let dup = insert_file(
        &db.pool,
        &StoredFile {
            id: Uuid::now_v7(),
            owner: None,
            filename: "y.wav".into(),
            content_type: None,
            size_bytes: 1,
            sha256: "00".repeat(32),
            storage_key: "incoming/y.wav".into(),
            owns_object: true,
            duration_s: None,
            audio: None,
            probe_error: None,
        },
    )
    .await;
    assert!(dup.is_err());
}
