//! Deleting a user, crash-safe the way retention deletes files: the account is marked first
//! (from then on it is gone from the API and its tokens are revoked), then the `delete_user`
//! job tombstones and removes every file of theirs (index documents, storage object, rows;
//! speakers, voiceprints and transcripts go with the rows), and last
//! [`finish_delete`] removes the tokens and the row. Usage rows stay for accounting, detached
//! from the person; job rows stay for the fleet's history, detached too. Every step can run
//! again, so a worker killed anywhere leaves a hidden account the next attempt finishes.
use crate::audit_events::AuditEvent;
use sqlx::PgPool;
use uuid::Uuid;

use super::model::{Role, UserError};
use super::read::fetch_any;
use super::write::{Acting, lock_users, other_super_admins};
use crate::audit;
use crate::db::StoreError;

/// What [`mark_deleting`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// Marked now (tokens revoked, audited `admin.user.delete`).
    Now,
    /// An earlier request marked it; its deletion may still be running or have failed.
    Already,
}

/// Step 1: marks user `id` deleted, tombstones their files and revokes their tokens, in one
/// transaction. Nobody
/// deletes themselves, the last active super_admin stays, and only a super_admin deletes a
/// super_admin.
pub async fn mark_deleting(pool: &PgPool, id: Uuid, by: Acting) -> Result<Marked, UserError> {
    let mut tx = pool.begin().await?;
    lock_users(&mut tx).await?;
    let (user, deleting) = fetch_any(&mut tx, id).await?.ok_or(UserError::NotFound)?;
    by.may_manage(user.role)?;
    if deleting {
        return Ok(Marked::Already);
    }
    if by.is_self(id) {
        return Err(UserError::SelfChange("nobody can delete themselves".into()));
    }
    if user.role == Role::SuperAdmin
        && !user.disabled
        && other_super_admins(&mut tx, id).await? == 0
    {
        return Err(UserError::LastSuperAdmin(
            "the last active super_admin cannot be deleted".into(),
        ));
    }
    sqlx::query("UPDATE users SET deleting_at = now(), updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // Every file of theirs is hidden from now on (retention's tombstone); the job removes
    // them.
    let files = sqlx::query(
        "UPDATE files SET deleting_at = now() WHERE owner = $1 AND deleting_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    audit::record_as(
        &mut *tx,
        by.actor,
        AuditEvent::AdminUserDelete,
        Some(&id.to_string()),
        serde_json::json!({"name": user.name, "email": user.email, "role": user.role,
                           "tokens_revoked": revoked, "files": files}),
    )
    .await?;
    tx.commit().await?;
    Ok(Marked::Now)
}

/// Whether user `id` is marked for deletion (and not yet gone).
pub async fn is_deleting(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleting_at IS NOT NULL)",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}

/// What the last step removed or detached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    pub tokens_deleted: u64,
    pub usage_rows_detached: u64,
    pub jobs_detached: u64,
}

/// Last step, once no file of theirs is left: detaches their usage rows and jobs, deletes
/// their tokens and the row, in one transaction. None when the user is not marked (or is
/// gone already); an error when files remain.
pub async fn finish_delete(pool: &PgPool, id: Uuid) -> Result<Option<Finished>, StoreError> {
    let mut tx = pool.begin().await?;
    let marked: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE id = $1 AND deleting_at IS NOT NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if marked.is_none() {
        return Ok(None);
    }
    let files: i64 = sqlx::query_scalar("SELECT count(*) FROM files WHERE owner = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if files > 0 {
        return Err(StoreError::Invalid(format!(
            "user {id} still owns {files} files"
        )));
    }
    let exec = |sql: &'static str| sqlx::query(sql).bind(id);
    let usage_rows_detached = exec("UPDATE usage_records SET owner = NULL WHERE owner = $1")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let jobs_detached = exec("UPDATE jobs SET owner = NULL WHERE owner = $1")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    exec("DELETE FROM speakers WHERE owner = $1")
        .execute(&mut *tx)
        .await?;
    exec("DELETE FROM budget_reservations WHERE owner = $1")
        .execute(&mut *tx)
        .await?;
    // LLM usage rows stay for accounting, like usage records: detached from the person.
    exec("UPDATE llm_usage SET owner = NULL WHERE owner = $1")
        .execute(&mut *tx)
        .await?;
    let tokens_deleted = exec("DELETE FROM api_tokens WHERE user_id = $1")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    exec("DELETE FROM users WHERE id = $1")
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        None,
        AuditEvent::AdminUserDeleted,
        Some(&id.to_string()),
        serde_json::json!({"tokens_deleted": tokens_deleted,
                           "usage_rows_detached": usage_rows_detached,
                           "jobs_detached": jobs_detached}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Finished {
        tokens_deleted,
        usage_rows_detached,
        jobs_detached,
    }))
}
