//! Bearer tokens: only their SHA-256 is stored. Roles: `user` (own jobs and files), `admin`
//! (all but auth and audit), `super_admin` (everything).
//!
//! The bootstrap token (`VOXFLEET_ADMIN_TOKEN`) is a super_admin row flagged `bootstrap`; at
//! most one is active. [`ensure_bootstrap`] makes the presented secret that one and revokes
//! the others (rotation); a revoked token is never made valid again. Every change is audited.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::StoreError;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
    SuperAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::SuperAdmin => "super_admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            "super_admin" => Ok(Self::SuperAdmin),
            _ => Err(format!("unknown role `{s}` (user, admin, super_admin)")),
        }
    }
}

/// A token's identity as the API sees it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A token as `tokens list` and `GET /v1/tokens` show it: never its secret nor its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// When the token was last seen (updated at most once a minute per token).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once, never cleared: a revoked token stays revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The `VOXFLEET_ADMIN_TOKEN` token (at most one is active).
    pub bootstrap: bool,
}

type RecordRow = (
    Uuid,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    bool,
);

/// The columns of a [`RecordRow`], for `concat!`.
macro_rules! record_columns {
    () => {
        "id, name, role, created_at, last_used_at, revoked_at, bootstrap"
    };
}

fn record(
    (id, name, role, created_at, last_used_at, revoked_at, bootstrap): RecordRow,
) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id,
        name,
        role: role.parse().map_err(StoreError::Invalid)?,
        created_at,
        last_used_at,
        revoked_at,
        bootstrap,
    })
}

pub fn hash_token(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// A new random token: `vf_` and 64 hex digits.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("vf_{}", hex::encode(bytes))
}

/// The audit row of a token change, inside the caller's transaction.
async fn audit(
    con: &mut PgConnection,
    actor: Option<Uuid>,
    action: &str,
    target: Uuid,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    crate::audit::record(con, actor, action, Some(&target.to_string()), detail).await
}

/// Mints a token and returns its plaintext (shown once; only the hash is kept). No acting
/// token (the command line).
pub async fn create_token(
    pool: &PgPool,
    name: &str,
    role: Role,
) -> Result<(TokenInfo, String), StoreError> {
    create_token_by(pool, name, role, None).await
}

/// As [`create_token`], audited with the token that asked (`actor`).
pub async fn create_token_by(
    pool: &PgPool,
    name: &str,
    role: Role,
    actor: Option<Uuid>,
) -> Result<(TokenInfo, String), StoreError> {
    let plain = generate_token();
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO api_tokens (id, name, role, token_sha256) VALUES ($1, $2, $3, $4) RETURNING created_at",
    )
    .bind(id)
    .bind(name)
    .bind(role.as_str())
    .bind(hash_token(&plain))
    .fetch_one(&mut *tx)
    .await?;
    audit(
        &mut tx,
        actor,
        "token.create",
        id,
        serde_json::json!({"name": name, "role": role}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        TokenInfo {
            id,
            name: name.into(),
            role,
            created_at,
        },
        plain,
    ))
}

/// Serializes bootstrap rotations of replicas starting at the same time.
const BOOTSTRAP_LOCK: i64 = 0x766f_7866_6c74_6b01;

/// Makes `plain` (VOXFLEET_ADMIN_TOKEN) the one active bootstrap super_admin token and
/// revokes every other active bootstrap token (audited `token.rotate`). Fails, changing
/// nothing, when `plain` is a revoked token (a revoked token never comes back) or an
/// existing token that is not the bootstrap one.
pub async fn ensure_bootstrap(pool: &PgPool, plain: &str) -> Result<Uuid, StoreError> {
    if plain.len() < 16 {
        return Err(StoreError::Invalid(
            "VOXFLEET_ADMIN_TOKEN must be at least 16 characters".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(BOOTSTRAP_LOCK)
        .execute(&mut *tx)
        .await?;
    let found: Option<(Uuid, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT id, bootstrap, revoked_at FROM api_tokens WHERE token_sha256 = $1 FOR UPDATE",
    )
    .bind(hash_token(plain))
    .fetch_optional(&mut *tx)
    .await?;
    let id = match found {
        Some((id, _, Some(at))) => {
            return Err(StoreError::Invalid(format!(
                "VOXFLEET_ADMIN_TOKEN is token {id}, which was revoked at {at} and is never \
                 made valid again: set a new VOXFLEET_ADMIN_TOKEN (e.g. `openssl rand -hex 24`)"
            )));
        }
        Some((id, false, None)) => {
            return Err(StoreError::Invalid(format!(
                "VOXFLEET_ADMIN_TOKEN is the secret of token {id}, which is not a bootstrap \
                 token: set a new VOXFLEET_ADMIN_TOKEN (e.g. `openssl rand -hex 24`)"
            )));
        }
        Some((id, true, None)) => id,
        None => {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO api_tokens (id, name, role, token_sha256, bootstrap) \
                 VALUES ($1, 'bootstrap', 'super_admin', $2, true)",
            )
            .bind(id)
            .bind(hash_token(plain))
            .execute(&mut *tx)
            .await?;
            audit(
                &mut tx,
                None,
                "token.create",
                id,
                serde_json::json!({
                    "name": "bootstrap", "role": Role::SuperAdmin, "bootstrap": true,
                }),
            )
            .await?;
            id
        }
    };
    let replaced: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE api_tokens SET revoked_at = now() \
         WHERE bootstrap AND revoked_at IS NULL AND id <> $1 RETURNING id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    for old in replaced {
        tracing::info!(token.id = %old, replaced_by = %id, "bootstrap token rotated: revoked");
        audit(
            &mut tx,
            None,
            "token.rotate",
            old,
            serde_json::json!({"replaced_by": id, "via": "VOXFLEET_ADMIN_TOKEN"}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Looks a presented token up; revoked and unknown tokens give None. Marks the token used
/// (at most once a minute, so lookups stay reads).
pub async fn find_token(pool: &PgPool, plain: &str) -> Result<Option<TokenInfo>, StoreError> {
    let row: Option<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "WITH t AS (SELECT id, name, role, created_at, last_used_at FROM api_tokens \
                    WHERE token_sha256 = $1 AND revoked_at IS NULL), \
              u AS (UPDATE api_tokens SET last_used_at = now() WHERE id IN \
                    (SELECT id FROM t WHERE last_used_at IS NULL \
                     OR last_used_at < now() - interval '1 minute')) \
         SELECT id, name, role, created_at FROM t",
    )
    .bind(hash_token(plain))
    .fetch_optional(pool)
    .await?;
    row.map(|(id, name, role, created_at)| {
        Ok(TokenInfo {
            id,
            name,
            role: role.parse().map_err(StoreError::Invalid)?,
            created_at,
        })
    })
    .transpose()
}

/// Every token, oldest first (tokens are few: no paging).
pub async fn list_tokens(pool: &PgPool) -> Result<Vec<TokenRecord>, StoreError> {
    let rows: Vec<RecordRow> = sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        " FROM api_tokens ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(record).collect()
}

/// What [`revoke_token`] did.
#[derive(Debug, Clone)]
pub enum Revoked {
    /// Revoked now (and audited).
    Now(TokenRecord),
    /// It was revoked before; nothing changed.
    Already(TokenRecord),
    NotFound,
}

/// Revokes token `id` for good, audited `token.revoke` with the acting token (`actor`; None
/// for the command line) and `via`.
pub async fn revoke_token(
    pool: &PgPool,
    id: Uuid,
    actor: Option<Uuid>,
    via: &str,
) -> Result<Revoked, StoreError> {
    let mut tx = pool.begin().await?;
    let now: Option<RecordRow> = sqlx::query_as(concat!(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING ",
        record_columns!()
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let out = match now {
        Some(row) => {
            let rec = record(row)?;
            audit(
                &mut tx,
                actor,
                "token.revoke",
                id,
                serde_json::json!({
                    "name": rec.name, "role": rec.role, "bootstrap": rec.bootstrap, "via": via,
                }),
            )
            .await?;
            Revoked::Now(rec)
        }
        None => {
            let row: Option<RecordRow> = sqlx::query_as(concat!(
                "SELECT ",
                record_columns!(),
                " FROM api_tokens WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(row) => Revoked::Already(record(row)?),
                None => Revoked::NotFound,
            }
        }
    };
    tx.commit().await?;
    Ok(out)
}
