//! What the tests set up behind the page: accounts through the admin API and transcripts
//! written straight into PostgreSQL.

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::common::Env;

/// A person's account through the admin API.
pub(crate) async fn person(
    env: &Env,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> String {
    let (s, u) = env
        .post(
            "/v1/users",
            json!({"email": email, "name": name, "role": role, "password": password}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    u["id"].as_str().unwrap().to_string()
}

/// Transcripts written as a worker would have, for the re-index to work on.
pub(crate) async fn plant_transcripts(env: &Env, n: usize) {
    let pg = env.pg().await;
    for i in 0..n {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO files (id, owner, filename, size_bytes, sha256, storage_key, \
             transcribed_at) VALUES ($1, NULL, $2, 1, 'x', $3, now())",
        )
        .bind(id)
        .bind(format!("planted-{i}.wav"))
        .bind(format!("planted/{id}"))
        .execute(&pg)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO transcript_segments (file_id, idx, start_s, end_s, text, avg_logprob, \
             no_speech_prob, temperature, compression_ratio, language) \
             VALUES ($1, 0, 0, 60, $2, 0, 0, 0, 1, 'en')",
        )
        .bind(id)
        .bind(format!(
            "meeting {i} about rivers, budgets and the quarterly plan"
        ))
        .execute(&pg)
        .await
        .unwrap();
    }
}
