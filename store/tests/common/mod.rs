//! A fresh PostgreSQL database per test (created and migrated by `voxfleet_store::connect`,
//! dropped when the test ends).
#![allow(dead_code)]

use uuid::Uuid;

pub struct Db {
    pub name: String,
    pub pool: sqlx::PgPool,
}

pub fn base() -> String {
    std::env::var("VOXFLEET_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl Db {
    pub async fn fresh() -> Self {
        let name = format!("vf_store_{}", &Uuid::new_v4().simple().to_string()[..12]);
        // created by connect() itself, then migrated
        let pool = voxfleet_store::connect(&format!("{}/{}", base(), name), 4)
            .await
            .unwrap();
        Self { name, pool }
    }

    /// A fresh database migrated only up to `version` (a database as an older release left
    /// it); `voxfleet_store::db::MIGRATOR.run` then brings it up to date.
    pub async fn at_version(version: i64) -> Self {
        let name = format!("vf_store_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let admin = sqlx::PgPool::connect(&format!("{}/postgres", base()))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let pool = sqlx::PgPool::connect(&format!("{}/{}", base(), name))
            .await
            .unwrap();
        voxfleet_store::db::MIGRATOR
            .run_to(version, &pool)
            .await
            .unwrap();
        Self { name, pool }
    }

    /// One `count(*)`-style scalar.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .output();
    }
}
