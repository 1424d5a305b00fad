//! Connecting to PostgreSQL: the database is created if missing, then migrated.
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use voxfleet_errors::{Classified, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url: {0}")]
    Url(String),
    #[error("{0}")]
    Invalid(String),
    /// A transcription would take its owner past their monthly budget.
    #[error(
        "this transcription ({needed:.1} min) would exceed the monthly transcription budget: \
         {held:.1} of {budget} minutes are used or held by running work"
    )]
    BudgetExceeded { budget: i32, held: f64, needed: f64 },
}

impl StoreError {
    /// PostgreSQL could not be reached (worth retrying), not a bad query or data. A migration
    /// cut off by a lost connection counts too: it is retried like a query.
    fn unreachable(&self) -> bool {
        use sqlx::migrate::MigrateError;
        match self {
            Self::Db(e)
            | Self::Migrate(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => {
                sqlx_unavailable(e)
            }
            _ => false,
        }
    }
}

impl Classified for StoreError {
    fn code(&self) -> &'static str {
        match self {
            Self::Url(_) | Self::Invalid(_) => "invalid_database_config",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            // What a job records whatever went wrong in PostgreSQL: its owner can do nothing
            // about either, and the detail is in the message.
            _ => "database_unavailable",
        }
    }

    /// `unavailable` when PostgreSQL cannot be reached; other query errors are `retryable`
    /// (a conflict or a dropped statement may pass); a bad configuration is `permanent`.
    fn class(&self) -> ErrorClass {
        match self {
            e if e.unreachable() => ErrorClass::Unavailable,
            Self::Url(_) | Self::Invalid(_) | Self::BudgetExceeded { .. } => ErrorClass::Permanent,
            _ => ErrorClass::Retryable,
        }
    }
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects to `url`, creating its database if it does not exist, and runs the migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Url(e.to_string()))?;
    let db_name = opts
        .get_database()
        .map(str::to_string)
        .unwrap_or_else(|| "voxfleet".into());
    create_database_if_missing(&opts, &db_name).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts.database(&db_name).disable_statement_logging())
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

async fn create_database_if_missing(
    opts: &PgConnectOptions,
    db_name: &str,
) -> Result<(), StoreError> {
    if !db_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(StoreError::Url(format!(
            "unsupported database name `{db_name}`"
        )));
    }
    let mut admin = opts.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(db_name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Processes starting together race here. A loser hears "already exists" (42P04) or,
        // when both inserted into the catalog at once, a unique violation on
        // pg_database_datname_index (23505): either way the database is there.
        match sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{db_name}\""
        )))
        .execute(&mut admin)
        .await
        {
            Ok(_) => tracing::info!(database = db_name, "created database"),
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::migrate::MigrateError;

    fn io() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "expected to read 5 bytes, got 0 bytes at EOF",
        ))
    }

    #[test]
    fn a_connection_lost_during_migration_is_unavailable() {
        assert!(StoreError::Db(io()).class() == ErrorClass::Unavailable);
        assert!(
            StoreError::Migrate(MigrateError::Execute(io())).class() == ErrorClass::Unavailable
        );
        assert!(
            StoreError::Migrate(MigrateError::ExecuteMigration(io(), 2)).class()
                == ErrorClass::Unavailable
        );
        assert!(
            StoreError::Migrate(MigrateError::VersionMissing(2)).class() != ErrorClass::Unavailable
        );
        assert!(StoreError::Db(sqlx::Error::RowNotFound).class() != ErrorClass::Unavailable);
    }
}
