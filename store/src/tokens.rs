//! Bearer tokens: only their SHA-256 is stored. Each belongs to a user, whose role it acts
//! with ([`Role`]: `user` own jobs and files, `admin` all but auth and audit, `super_admin`
//! everything); a token an admin allowed may act for other users (`can_delegate`), and a
//! token may expire.
//!
//! The bootstrap token (`VOXFLEET_ADMIN_TOKEN`) is a super_admin row flagged `bootstrap`; at
//! most one is active. [`ensure_bootstrap`] makes the presented secret that one and revokes
//! the others (rotation); a revoked token is never made valid again. Every change is audited.
use crate::audit_events::AuditEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::StoreError;

pub use crate::users::Role;

/// A token's identity as authentication sees it: the token, its user and the user's role.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    /// The user the token belongs to (the owner of what it makes).
    pub user_id: Uuid,
    /// The user's role.
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// May act for other users (`X-Voxfleet-User`).
    pub can_delegate: bool,
    /// The user is disabled: the token authenticates nothing.
    pub disabled: bool,
    /// The sign-in session an access token belongs to (none for API tokens).
    pub session_id: Option<Uuid>,
    /// A session whose user must enrol a second factor first (see `sessions`).
    pub mfa_pending: bool,
}

/// A token as `tokens list` and `GET /v1/tokens` show it: never its secret nor its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    /// The user it belongs to.
    pub user_id: Uuid,
    /// The user's role.
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// When the token was last seen (updated at most once a minute per token).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once, never cleared: a revoked token stays revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The `VOXFLEET_ADMIN_TOKEN` token (at most one is active).
    pub bootstrap: bool,
    /// May act for other users (`X-Voxfleet-User`), as an admin granted.
    pub can_delegate: bool,
    /// After this the token authenticates nothing; None: no expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: Uuid,
    name: String,
    user_id: Uuid,
    role: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    bootstrap: bool,
    can_delegate: bool,
    expires_at: Option<DateTime<Utc>>,
}

/// The columns of a [`RecordRow`] of `api_tokens t JOIN users u`, for `concat!`.
macro_rules! record_columns {
    () => {
        "t.id, t.name, t.user_id, u.role, t.created_at, t.last_used_at, t.revoked_at, \
         t.bootstrap, t.can_delegate, t.expires_at"
    };
}

/// `FROM` with its join, for `concat!`.
macro_rules! record_from {
    () => {
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
    };
}

fn record(r: RecordRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: r.id,
        name: r.name,
        user_id: r.user_id,
        role: r.role.parse().map_err(StoreError::Invalid)?,
        created_at: r.created_at,
        last_used_at: r.last_used_at,
        revoked_at: r.revoked_at,
        bootstrap: r.bootstrap,
        can_delegate: r.can_delegate,
        expires_at: r.expires_at,
    })
}

async fn record_by_id(con: &mut PgConnection, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
    let row: Option<RecordRow> = sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        record_from!(),
        " WHERE t.id = $1"
    ))
    .bind(id)
    .fetch_optional(con)
    .await?;
    row.map(record).transpose()
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
    action: AuditEvent,
    target: Uuid,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    crate::audit::record(con, actor, action, Some(&target.to_string()), detail).await
}

/// Mints a token for a new service account (a user with `name` and `role`, no email nor
/// password) and returns its plaintext (shown once; only the hash is kept). No acting
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
    let mut tx = pool.begin().await?;
    let user = crate::users::create_service_user(&mut tx, name, role).await?;
    let (rec, plain) = insert_token(&mut tx, user, name, None, None).await?;
    audit(
        &mut tx,
        actor,
        AuditEvent::TokenCreate,
        rec.id,
        serde_json::json!({"name": name, "role": role, "user_id": user, "service_account": true}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        TokenInfo {
            id: rec.id,
            name: rec.name,
            user_id: user,
            role,
            created_at: rec.created_at,
            can_delegate: false,
            disabled: false,
            session_id: None,
            mfa_pending: false,
        },
        plain,
    ))
}

/// Inserts a token of `user` (a sign-in session's access token when `session` is set).
pub(crate) async fn insert_token(
    con: &mut PgConnection,
    user: Uuid,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    session: Option<Uuid>,
) -> Result<(TokenRecord, String), StoreError> {
    let plain = generate_token();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO api_tokens (id, name, user_id, token_sha256, expires_at, session_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(name)
    .bind(user)
    .bind(hash_token(&plain))
    .bind(expires_at)
    .bind(session)
    .execute(&mut *con)
    .await?;
    let rec = record_by_id(con, id)
        .await?
        .ok_or_else(|| StoreError::Invalid("token vanished".into()))?;
    Ok((rec, plain))
}

/// Mints a token for an existing user (audited `token.create` by `by`). The user must exist.
pub async fn create_user_token(
    pool: &PgPool,
    user: Uuid,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    by: crate::audit::Actor,
) -> Result<(TokenRecord, String), StoreError> {
    let mut tx = pool.begin().await?;
    let (rec, plain) = insert_token(&mut tx, user, name, expires_at, None).await?;
    crate::audit::record_as(
        &mut *tx,
        by,
        AuditEvent::TokenCreate,
        Some(&rec.id.to_string()),
        serde_json::json!({"name": name, "user_id": user, "expires_at": expires_at}),
    )
    .await?;
    tx.commit().await?;
    Ok((rec, plain))
}

/// A user's tokens, revoked ones included, oldest first.
pub async fn list_user_tokens(pool: &PgPool, user: Uuid) -> Result<Vec<TokenRecord>, StoreError> {
    let rows: Vec<RecordRow> = sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        record_from!(),
        " WHERE t.user_id = $1 AND t.session_id IS NULL ORDER BY t.created_at, t.id"
    ))
    .bind(user)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(record).collect()
}

/// One token, revoked or not.
pub async fn get_token(pool: &PgPool, id: Uuid) -> Result<Option<TokenRecord>, StoreError> {
    let mut con = pool.acquire().await?;
    record_by_id(&mut con, id).await
}

/// Grants or withdraws a token's right to act for other users (audited
/// `token.delegation`). None when there is no such token.
pub async fn set_delegation(
    pool: &PgPool,
    id: Uuid,
    can_delegate: bool,
    by: crate::audit::Actor,
) -> Result<Option<TokenRecord>, StoreError> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query("UPDATE api_tokens SET can_delegate = $2 WHERE id = $1")
        .bind(id)
        .bind(can_delegate)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed == 0 {
        return Ok(None);
    }
    crate::audit::record_as(
        &mut *tx,
        by,
        AuditEvent::TokenDelegation,
        Some(&id.to_string()),
        serde_json::json!({"can_delegate": can_delegate}),
    )
    .await?;
    let rec = record_by_id(&mut tx, id).await?;
    tx.commit().await?;
    Ok(rec)
}

/// Serializes bootstrap rotations of replicas starting at the same time.
const BOOTSTRAP_LOCK: i64 = 0x766f_7866_6c74_6b01;

/// Makes `plain` (VOXFLEET_ADMIN_TOKEN) the one active bootstrap token and revokes every
/// other active bootstrap token (audited `token.rotate`). Every bootstrap token belongs to
/// the same user (the newest bootstrap token's; a new `bootstrap` super_admin the first
/// time), who is kept an enabled super_admin: the operator's way back in. Fails, changing
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
            let user: Option<Uuid> = sqlx::query_scalar(
                "SELECT user_id FROM api_tokens WHERE bootstrap \
                 ORDER BY (revoked_at IS NULL) DESC, created_at DESC, id DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let user = match user {
                Some(u) => u,
                None => {
                    crate::users::create_service_user(&mut tx, "bootstrap", Role::SuperAdmin)
                        .await?
                }
            };
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO api_tokens (id, name, user_id, token_sha256, bootstrap) \
                 VALUES ($1, 'bootstrap', $2, $3, true)",
            )
            .bind(id)
            .bind(user)
            .bind(hash_token(plain))
            .execute(&mut *tx)
            .await?;
            audit(
                &mut tx,
                None,
                AuditEvent::TokenCreate,
                id,
                serde_json::json!({
                    "name": "bootstrap", "role": Role::SuperAdmin, "bootstrap": true,
                    "user_id": user,
                }),
            )
            .await?;
            id
        }
    };
    let restored: Option<Uuid> = sqlx::query_scalar(
        "UPDATE users SET role = 'super_admin', disabled = false, updated_at = now() \
         WHERE id = (SELECT user_id FROM api_tokens WHERE id = $1) \
           AND (role <> 'super_admin' OR disabled) RETURNING id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(user) = restored {
        tracing::warn!(user.id = %user, "the bootstrap user was restored to an enabled super_admin");
        crate::audit::record(
            &mut *tx,
            None,
            AuditEvent::AdminUserBootstrapRestore,
            Some(&user.to_string()),
            serde_json::json!({"via": "VOXFLEET_ADMIN_TOKEN"}),
        )
        .await?;
    }
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
            AuditEvent::TokenRotate,
            old,
            serde_json::json!({"replaced_by": id, "via": "VOXFLEET_ADMIN_TOKEN"}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Looks a presented token up; revoked, expired and unknown tokens give None (a disabled
/// user's token is found, with `disabled` set). Marks the token used (at most once a
/// minute, so lookups stay reads).
pub async fn find_token(pool: &PgPool, plain: &str) -> Result<Option<TokenInfo>, StoreError> {
    type Row = (
        Uuid,
        String,
        Uuid,
        String,
        DateTime<Utc>,
        bool,
        bool,
        Option<Uuid>,
        bool,
    );
    let row: Option<Row> = sqlx::query_as(
        "WITH t AS (SELECT t.id, t.name, t.user_id, u.role, t.created_at, t.last_used_at, \
                           t.can_delegate, u.disabled, t.session_id, \
                           coalesce(s.mfa_pending AND NOT u.mfa_enabled, false) AS mfa_pending \
                    FROM api_tokens t JOIN users u ON u.id = t.user_id \
                    LEFT JOIN sessions s ON s.id = t.session_id \
                    WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND u.deleting_at IS NULL \
                      AND (t.expires_at IS NULL OR t.expires_at > now()) \
                      AND (t.session_id IS NULL OR s.revoked_at IS NULL)), \
              x AS (UPDATE api_tokens SET last_used_at = now() WHERE id IN \
                    (SELECT id FROM t WHERE last_used_at IS NULL \
                     OR last_used_at < now() - interval '1 minute')) \
         SELECT id, name, user_id, role, created_at, can_delegate, disabled, session_id, \
                mfa_pending FROM t",
    )
    .bind(hash_token(plain))
    .fetch_optional(pool)
    .await?;
    row.map(
        |(id, name, user_id, role, created_at, can_delegate, disabled, session_id, mfa_pending)| {
            Ok(TokenInfo {
                id,
                name,
                user_id,
                role: role.parse().map_err(StoreError::Invalid)?,
                created_at,
                can_delegate,
                disabled,
                session_id,
                mfa_pending,
            })
        },
    )
    .transpose()
}

/// Every token, oldest first (tokens are few: no paging).
pub async fn list_tokens(pool: &PgPool) -> Result<Vec<TokenRecord>, StoreError> {
    let rows: Vec<RecordRow> = sqlx::query_as(concat!(
        "SELECT ",
        record_columns!(),
        record_from!(),
        " WHERE t.session_id IS NULL ORDER BY t.created_at, t.id"
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
    let changed = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let rec = record_by_id(&mut tx, id).await?;
    let out = match rec {
        Some(rec) if changed > 0 => {
            audit(
                &mut tx,
                actor,
                AuditEvent::TokenRevoke,
                id,
                serde_json::json!({
                    "name": rec.name, "role": rec.role, "bootstrap": rec.bootstrap, "via": via,
                    "user_id": rec.user_id,
                }),
            )
            .await?;
            Revoked::Now(rec)
        }
        Some(rec) => Revoked::Already(rec),
        None => Revoked::NotFound,
    };
    tx.commit().await?;
    Ok(out)
}
