//! Changing users: create, edit, reset a password, with the rules that protect accounts
//! checked in the transaction of the change, and the audit rows.
use crate::audit_events::AuditEvent;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::checks::{
    check_budgets, check_defaults, clean_email, clean_external_id, clean_name, hash_off_runtime,
};
use super::model::{NewUser, Role, User, UserError, UserPatch};
use super::read::{fetch, get_user};
use crate::audit::{self, Actor};
use crate::db::StoreError;

/// Serializes changes that could leave no active super_admin.
const USERS_LOCK: i64 = 0x766f_7866_6c75_7372;

/// Who acts: the caller's user and role (None for the command line, which may do anything).
#[derive(Debug, Clone, Copy)]
pub struct Acting {
    pub actor: Actor,
    pub role: Option<Role>,
}

impl Acting {
    /// The command line: every rule that protects accounts still holds, none about the caller.
    pub fn cli() -> Self {
        Self {
            actor: Actor::default(),
            role: None,
        }
    }

    pub(super) fn may_manage(&self, role: Role) -> Result<(), UserError> {
        match self.role {
            None => Ok(()),
            Some(r) if r >= Role::Admin && (role < Role::SuperAdmin || r == Role::SuperAdmin) => {
                Ok(())
            }
            Some(_) if role == Role::SuperAdmin => Err(UserError::Forbidden(
                "only a super_admin manages super_admin accounts".into(),
            )),
            Some(_) => Err(UserError::Forbidden("this needs the admin role".into())),
        }
    }

    pub(super) fn is_self(&self, id: Uuid) -> bool {
        self.actor.user == Some(id)
    }
}

/// Active super_admins other than `except`, with the users lock held.
pub(super) async fn other_super_admins(
    con: &mut PgConnection,
    except: Uuid,
) -> Result<i64, UserError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM users \
         WHERE role = 'super_admin' AND NOT disabled AND deleting_at IS NULL AND id <> $1",
    )
    .bind(except)
    .fetch_one(con)
    .await?)
}

pub(super) async fn lock_users(con: &mut PgConnection) -> Result<(), UserError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(USERS_LOCK)
        .execute(con)
        .await?;
    Ok(())
}

/// Creates an account (audited `admin.user.create`).
pub async fn create_user(pool: &PgPool, new: NewUser, by: Acting) -> Result<User, UserError> {
    by.may_manage(new.role)?;
    let name = clean_name(&new.name)?;
    let email = new.email.as_deref().map(clean_email).transpose()?;
    let external_id = new
        .external_id
        .as_deref()
        .map(clean_external_id)
        .transpose()?;
    check_defaults(
        new.default_language.as_deref(),
        new.default_prompt.as_deref(),
    )?;
    check_budgets(new.transcription_budget_minutes, new.token_budget)?;
    let policy = crate::auth_settings::get_auth_settings(pool).await?;
    let hash = hash_off_runtime(new.password, policy).await?;
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, name, role, password_hash, public_sharing, \
                            default_language, default_prompt, external_id, \
                            transcription_budget_minutes, token_budget) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(&email)
    .bind(&name)
    .bind(new.role.as_str())
    .bind(hash)
    .bind(new.public_sharing)
    .bind(&new.default_language)
    .bind(&new.default_prompt)
    .bind(&external_id)
    .bind(new.transcription_budget_minutes)
    .bind(new.token_budget)
    .execute(&mut *tx)
    .await?;
    audit::record_as(
        &mut *tx,
        by.actor,
        AuditEvent::AdminUserCreate,
        Some(&id.to_string()),
        serde_json::json!({"name": name, "email": email, "role": new.role}),
    )
    .await?;
    let u = fetch(&mut tx, id, false)
        .await?
        .ok_or(UserError::NotFound)?;
    tx.commit().await?;
    Ok(u)
}

/// A service account for a bare token (`POST /v1/tokens`, `tokens create`): no email, no
/// password, the token's name and role. Inside the caller's transaction.
pub(crate) async fn create_service_user(
    con: &mut PgConnection,
    name: &str,
    role: Role,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, name, role) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(role.as_str())
        .execute(con)
        .await?;
    Ok(id)
}

/// Applies `patch` to user `id` (audited `admin.user.update`, and `admin.user.role_change`
/// when the role changes).
pub async fn update_user(
    pool: &PgPool,
    id: Uuid,
    patch: UserPatch,
    by: Acting,
) -> Result<User, UserError> {
    let mut tx = pool.begin().await?;
    lock_users(&mut tx).await?;
    let old = fetch(&mut tx, id, true).await?.ok_or(UserError::NotFound)?;
    by.may_manage(old.role)?;
    if let Some(role) = patch.role {
        by.may_manage(role)?;
    }
    let role_change = patch.role.filter(|r| *r != old.role);
    let disabling = patch.disabled == Some(true) && !old.disabled;
    if by.is_self(id) && role_change.is_some() {
        return Err(UserError::SelfChange(
            "nobody can change their own role".into(),
        ));
    }
    if by.is_self(id) && disabling {
        return Err(UserError::SelfChange(
            "nobody can disable themselves".into(),
        ));
    }
    if old.role == Role::SuperAdmin
        && !old.disabled
        && (role_change.is_some() || disabling)
        && other_super_admins(&mut tx, id).await? == 0
    {
        return Err(UserError::LastSuperAdmin(
            "the last active super_admin cannot be demoted or disabled".into(),
        ));
    }
    let name = patch.name.as_deref().map(clean_name).transpose()?;
    let email = match &patch.email {
        Some(Some(e)) => Some(Some(clean_email(e)?)),
        other => other.clone(),
    };
    let external_id = match &patch.external_id {
        Some(Some(e)) => Some(Some(clean_external_id(e)?)),
        other => other.clone(),
    };
    let language = patch
        .default_language
        .clone()
        .unwrap_or(old.default_language.clone());
    let prompt = patch
        .default_prompt
        .clone()
        .unwrap_or(old.default_prompt.clone());
    check_defaults(language.as_deref(), prompt.as_deref())?;
    let minutes = patch
        .transcription_budget_minutes
        .unwrap_or(old.transcription_budget_minutes);
    let tokens = patch.token_budget.unwrap_or(old.token_budget);
    check_budgets(minutes, tokens)?;
    sqlx::query(
        "UPDATE users SET name = $2, email = $3, role = $4, public_sharing = $5, disabled = $6, \
                default_language = $7, default_prompt = $8, external_id = $9, \
                transcription_budget_minutes = $10, token_budget = $11, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(name.as_deref().unwrap_or(&old.name))
    .bind(email.clone().unwrap_or(old.email.clone()))
    .bind(patch.role.unwrap_or(old.role).as_str())
    .bind(patch.public_sharing.unwrap_or(old.public_sharing))
    .bind(patch.disabled.unwrap_or(old.disabled))
    .bind(&language)
    .bind(&prompt)
    .bind(external_id.clone().unwrap_or(old.external_id.clone()))
    .bind(minutes)
    .bind(tokens)
    .execute(&mut *tx)
    .await?;
    let new = fetch(&mut tx, id, false)
        .await?
        .ok_or(UserError::NotFound)?;
    audit::record_as(
        &mut *tx,
        by.actor,
        AuditEvent::AdminUserUpdate,
        Some(&id.to_string()),
        changes(&old, &new),
    )
    .await?;
    if let Some(role) = role_change {
        audit::record_as(
            &mut *tx,
            by.actor,
            AuditEvent::AdminUserRoleChange,
            Some(&id.to_string()),
            serde_json::json!({"from": old.role, "to": role}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// The fields that differ, as `{field: {"from", "to"}}` (no secrets: users hold none here).
fn changes(old: &User, new: &User) -> serde_json::Value {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let mut out = serde_json::Map::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, v) in b {
            if k != "updated_at" && a.get(k) != Some(v) {
                out.insert(k.clone(), serde_json::json!({"from": a.get(k), "to": v}));
            }
        }
    }
    serde_json::Value::Object(out)
}

/// Sets a user's password (an admin's reset: `confirm` must repeat it). Audited
/// `admin.user.password_reset`, without the password.
pub async fn reset_password(
    pool: &PgPool,
    id: Uuid,
    password: &str,
    confirm: &str,
    by: Acting,
) -> Result<(), UserError> {
    if password != confirm {
        return Err(UserError::PasswordMismatch);
    }
    let policy = crate::auth_settings::get_auth_settings(pool).await?;
    let hash = hash_off_runtime(Some(password.to_string()), policy).await?;
    let mut tx = pool.begin().await?;
    let old = fetch(&mut tx, id, true).await?.ok_or(UserError::NotFound)?;
    by.may_manage(old.role)?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    audit::record_as(
        &mut *tx,
        by.actor,
        AuditEvent::AdminUserPasswordReset,
        Some(&id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `by` may act on user `id` at all (exists, and the role reaches it).
pub async fn check_manageable(pool: &PgPool, id: Uuid, by: Acting) -> Result<User, UserError> {
    let u = get_user(pool, id).await?.ok_or(UserError::NotFound)?;
    by.may_manage(u.role)?;
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_manage_users_and_admins_only_super_admins_manage_super_admins() {
        let by = |r| Acting {
            actor: Actor::default(),
            role: Some(r),
        };
        assert!(by(Role::Admin).may_manage(Role::Admin).is_ok());
        assert!(by(Role::Admin).may_manage(Role::SuperAdmin).is_err());
        assert!(by(Role::SuperAdmin).may_manage(Role::SuperAdmin).is_ok());
        assert!(by(Role::User).may_manage(Role::User).is_err());
        assert!(Acting::cli().may_manage(Role::SuperAdmin).is_ok());
    }
}
