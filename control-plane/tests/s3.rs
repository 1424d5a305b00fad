//! The S3 path of media storage against a real S3-protocol server: s3s-fs (installed by
//! scripts/tools.sh) over a temporary folder. Upload, transcription by the worker (which
//! fetches from S3), registration by `s3://` URI, and deletion all go through it.
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN, Env, files_under, free_port};
use reqwest::StatusCode;
use serde_json::json;

struct S3 {
    child: Child,
    root: PathBuf,
    port: u16,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn s3s_fs() -> PathBuf {
    let home = PathBuf::from(std::env::var("HOME").unwrap());
    let bin = home.join(".cargo/bin/s3s-fs");
    assert!(
        bin.exists(),
        "{} missing: run scripts/tools.sh",
        bin.display()
    );
    bin
}

async fn start_s3(bucket: &str) -> S3 {
    let root = std::env::temp_dir().join(format!("voxfleet-s3-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(root.join(bucket)).unwrap();
    let port = free_port();
    let child = Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--access-key",
            "voxfleet",
            "--secret-key",
            "voxfleet-secret",
        ])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    S3 { child, root, port }
}

#[tokio::test(flavor = "multi_thread")]
async fn media_in_s3_is_uploaded_transcribed_registered_and_deleted() {
    let s3 = start_s3("voxfleet").await;
    let mut env = Env::start().await;
    for (k, v) in [
        ("VOXFLEET_STORAGE_URL", "s3://voxfleet/media".to_string()),
        ("AWS_ACCESS_KEY_ID", "voxfleet".into()),
        ("AWS_SECRET_ACCESS_KEY", "voxfleet-secret".into()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", s3.port)),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
    ] {
        env.child_env.push((k.into(), v));
    }
    env.restart_control_plane().await;
    env.worker("asr", &["--queues", "gpu"]);

    let wav = env.logs.join("speech.wav");
    let ok = Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&wav)
        .arg("Files can live in any S3 compatible storage.")
        .status()
        .unwrap()
        .success();
    assert!(ok, "espeak-ng failed (run scripts/tools.sh)");
    let (status, v) = env.upload(ADMIN, &wav, Some("transcribe")).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let object = s3.root.join("voxfleet/media/files").join(&id);
    assert_eq!(
        std::fs::read(&object).unwrap_or_else(|e| panic!(
            "{}: {e}; bucket holds {:?}",
            object.display(),
            files_under(&s3.root)
        )),
        std::fs::read(&wav).unwrap(),
        "the upload is stored in the bucket under media/files/<id>"
    );

    let job = v["jobs"][0].as_str().unwrap();
    let done = env
        .wait_job(job, Duration::from_secs(120), |j| {
            matches!(j["status"].as_str(), Some("succeeded" | "failed"))
        })
        .await;
    assert_eq!(
        done["status"], "succeeded",
        "the worker fetched from S3: {done}"
    );
    let text = env
        .text_auth(&format!("/v1/files/{id}/transcript?format=txt"))
        .await;
    assert!(text.to_lowercase().contains("storage"), "{text}");

    // An object placed in the bucket by someone else, registered by URI.
    let placed = s3.root.join("voxfleet/media/incoming/call.wav");
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::copy(&wav, &placed).unwrap();
    let (s, r) = env
        .post(
            "/v1/files",
            json!({"uri": "s3://voxfleet/media/incoming/call.wav"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["size_bytes"], std::fs::metadata(&wav).unwrap().len());
    let (s, r) = env
        .post("/v1/files", json!({"uri": "s3://other-bucket/call.wav"}))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "outside the store: as if missing; {r}"
    );

    let (s, _) = env
        .call("DELETE", &format!("/v1/files/{id}"), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!object.exists(), "the object left the bucket");
    assert!(
        files_under(&s3.root.join("voxfleet/media/files")).is_empty(),
        "{:?}",
        files_under(&s3.root)
    );
}
