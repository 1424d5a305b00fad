//! Public share links: an expiring, revocable, read-only link to one file's transcript. Only
//! the link's SHA-256 is stored. A link opens nothing once it expired or was revoked, nor
//! while its owner has lost `public_sharing`, is disabled or being deleted, nor while the file
//! is being deleted; whether the instance allows sharing at all is the caller's check
//! (`AuthSettings::public_sharing_allowed`).
use crate::audit_events::AuditEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db::StoreError;
use crate::tokens::{generate_token, hash_token};

/// A share link as its owner sees it (never the secret after creation).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ShareLink {
    pub id: Uuid,
    pub file_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, file_id, created_at, expires_at, revoked_at";

/// Makes a link to `file` (owned by `owner`) until `expires_at`: the record and its secret.
/// Audited `share.create`.
pub async fn create(
    pool: &PgPool,
    file: Uuid,
    owner: Uuid,
    expires_at: DateTime<Utc>,
    actor: Actor,
) -> Result<(ShareLink, String), StoreError> {
    let plain = generate_token();
    let mut tx = pool.begin().await?;
    let link: ShareLink = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO share_links (id, token_sha256, file_id, owner, expires_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(hash_token(&plain))
    .bind(file)
    .bind(owner)
    .bind(expires_at)
    .fetch_one(&mut *tx)
    .await?;
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::ShareCreate,
        Some(&link.id.to_string()),
        serde_json::json!({"file_id": file, "expires_at": expires_at}),
    )
    .await?;
    tx.commit().await?;
    Ok((link, plain))
}

/// A file's links, newest first.
pub async fn list(pool: &PgPool, file: Uuid) -> Result<Vec<ShareLink>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM share_links WHERE file_id = $1 ORDER BY created_at DESC, id DESC"
    )))
    .bind(file)
    .fetch_all(pool)
    .await?)
}

/// Link `id` and its owner.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<(ShareLink, Uuid)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        link: ShareLink,
        owner: Uuid,
    }
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, owner FROM share_links WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.link, r.owner)))
}

/// Revokes link `id` for good (audited `share.revoke`); the record as it is now.
pub async fn revoke(
    pool: &PgPool,
    id: Uuid,
    actor: Actor,
) -> Result<Option<ShareLink>, StoreError> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query(
        "UPDATE share_links SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        audit::record_as(
            &mut *tx,
            actor,
            AuditEvent::ShareRevoke,
            Some(&id.to_string()),
            serde_json::json!({}),
        )
        .await?;
    }
    let link: Option<ShareLink> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM share_links WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(link)
}

/// The file a presented link opens now, if it opens one (see the module's comment).
pub async fn resolve(pool: &PgPool, plain: &str) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT l.file_id FROM share_links l JOIN users u ON u.id = l.owner \
         JOIN files f ON f.id = l.file_id \
         WHERE l.token_sha256 = $1 AND l.revoked_at IS NULL AND l.expires_at > now() \
           AND u.public_sharing AND NOT u.disabled AND u.deleting_at IS NULL \
           AND f.deleting_at IS NULL",
    )
    .bind(hash_token(plain))
    .fetch_optional(pool)
    .await?)
}
