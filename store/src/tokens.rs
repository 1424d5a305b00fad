//! Bearer tokens: only their SHA-256 is stored. Roles: `user` (own jobs and files), `admin`
//! (all but auth and audit), `super_admin` (everything).
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
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

pub fn hash_token(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// A new random token: `vf_` and 64 hex digits.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("vf_{}", hex::encode(bytes))
}

/// Mints a token and returns its plaintext (shown once; only the hash is kept).
pub async fn create_token(
    pool: &PgPool,
    name: &str,
    role: Role,
) -> Result<(TokenInfo, String), StoreError> {
    let plain = generate_token();
    let id = Uuid::now_v7();
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO api_tokens (id, name, role, token_sha256) VALUES ($1, $2, $3, $4) RETURNING created_at",
    )
    .bind(id)
    .bind(name)
    .bind(role.as_str())
    .bind(hash_token(&plain))
    .fetch_one(pool)
    .await?;
    crate::audit::record(
        pool,
        None,
        "token.create",
        Some(&id.to_string()),
        serde_json::json!({"name": name, "role": role}),
    )
    .await?;
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

/// Makes `plain` a valid super_admin token (the VOXFLEET_ADMIN_TOKEN bootstrap).
pub async fn ensure_bootstrap(pool: &PgPool, plain: &str) -> Result<Uuid, StoreError> {
    if plain.len() < 16 {
        return Err(StoreError::Invalid(
            "VOXFLEET_ADMIN_TOKEN must be at least 16 characters".into(),
        ));
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO api_tokens (id, name, role, token_sha256) VALUES ($1, 'bootstrap', 'super_admin', $2) \
         ON CONFLICT (token_sha256) DO UPDATE SET role = 'super_admin', revoked_at = NULL RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(hash_token(plain))
    .fetch_one(pool)
    .await?;
    Ok(id)
}

/// Looks a presented token up; revoked and unknown tokens give None.
pub async fn find_token(pool: &PgPool, plain: &str) -> Result<Option<TokenInfo>, StoreError> {
    let row: Option<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, name, role, created_at FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
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
