//! Sign-in with email and password, for the people who use the admin dashboard: a session
//! with a short-lived access token (an `api_tokens` row tied to the session, so every route
//! takes it like any bearer token) and a refresh token that rotates on each use. A rotated
//! refresh token presented again means it was stolen or replayed: the whole session is
//! revoked. A session ends at its absolute expiry, after the idle timeout without a refresh,
//! or at logout. Failed sign-ins in a row lock the account ([`AuthSettings`]); an admin can
//! unlock it. Every step is audited (`auth.login.success`, `auth.login.failure`,
//! `auth.lockout`, `auth.refresh`, `auth.refresh.reuse`, `auth.logout`, `auth.unlock`,
//! `auth.password.change`).
use crate::audit_events::AuditEvent;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth_settings::{AuthSettings, get_auth_settings};
use crate::db::StoreError;
use crate::tokens::{generate_token, hash_token, insert_token};
use crate::users::UserError;

/// A hash to verify against when the email is unknown, so that answer takes as long as a
/// wrong password (argon2id of a random string, made once).
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        crate::users::hash_password(&generate_token(), &AuthSettings::default()).unwrap_or_default()
    })
}

/// What a sign-in or a refresh hands out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Issued {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// A bearer token for every route, until `access_expires_at`.
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    /// Exchange it at `POST /v1/auth/refresh` for a new pair; usable once.
    pub refresh_token: String,
    /// The session ends then whatever happens (and earlier after the idle timeout).
    pub session_expires_at: DateTime<Utc>,
    /// The user's role must sign in with a second factor and they have none yet: until they
    /// enrol (`POST /v1/me/mfa/enroll`, then `/verify`) this session reaches nothing else.
    pub mfa_enrollment_required: bool,
}

/// Why a sign-in or refresh was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Unknown email, wrong password, or no password set: one answer for all.
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many failed sign-ins: the account is locked until {0}")]
    Locked(DateTime<Utc>),
    #[error("this account is disabled")]
    Disabled,
    #[error(
        "this account signs in with a second factor: send `code` (an authenticator code or a backup code)"
    )]
    MfaRequired,
    #[error("wrong, expired or already used code")]
    InvalidMfaCode,
    #[error("unknown or expired refresh token")]
    InvalidRefresh,
    /// The user whose session was revoked.
    #[error("this refresh token was used before: the session is revoked, sign in again")]
    RefreshReused(Uuid),
    /// Why, and whose.
    #[error("the session ended ({0}): sign in again")]
    SessionEnded(&'static str, Uuid),
}

impl From<sqlx::Error> for SignInError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

async fn verify_off_runtime(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || crate::users::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Opens a session with a new access token and refresh token, inside `con`'s transaction.
async fn open_session(
    con: &mut PgConnection,
    user: Uuid,
    s: &AuthSettings,
    ip: Option<std::net::IpAddr>,
    mfa_pending: bool,
) -> Result<Issued, StoreError> {
    let id = Uuid::now_v7();
    let session_expires_at = Utc::now() + Duration::days(i64::from(s.session_days));
    sqlx::query(
        "INSERT INTO sessions (id, user_id, expires_at, source_ip, mfa_pending) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(user)
    .bind(session_expires_at)
    .bind(ip.map(|i| i.to_string()))
    .bind(mfa_pending)
    .execute(&mut *con)
    .await?;
    let mut issued = issue(con, id, user, session_expires_at, s).await?;
    issued.mfa_enrollment_required = mfa_pending;
    Ok(issued)
}

/// A new access token and refresh token for session `id`; the session's earlier access
/// tokens are deleted (a refresh replaces them).
async fn issue(
    con: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    session_expires_at: DateTime<Utc>,
    s: &AuthSettings,
) -> Result<Issued, StoreError> {
    sqlx::query("DELETE FROM api_tokens WHERE session_id = $1")
        .bind(id)
        .execute(&mut *con)
        .await?;
    let access_expires_at =
        (Utc::now() + Duration::seconds(i64::from(s.access_token_seconds))).min(session_expires_at);
    let (_, access_token) =
        insert_token(con, user, "session", Some(access_expires_at), Some(id)).await?;
    let refresh_token = generate_token();
    sqlx::query("INSERT INTO session_refresh_tokens (token_sha256, session_id) VALUES ($1, $2)")
        .bind(hash_token(&refresh_token))
        .bind(id)
        .execute(&mut *con)
        .await?;
    Ok(Issued {
        session_id: id,
        user_id: user,
        access_token,
        access_expires_at,
        refresh_token,
        session_expires_at,
        mfa_enrollment_required: false,
    })
}

/// Signs in with `email` and `password` (see the module's comment).
pub async fn login(
    pool: &PgPool,
    email: &str,
    password: &str,
    code: Option<&str>,
    ip: Option<std::net::IpAddr>,
) -> Result<Issued, SignInError> {
    let s = get_auth_settings(pool).await?;
    type Row = (
        Uuid,
        Option<String>,
        bool,
        Option<DateTime<Utc>>,
        bool,
        String,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, password_hash, disabled, locked_until, mfa_enabled, role FROM users \
         WHERE lower(email) = lower($1) AND deleting_at IS NULL",
    )
    .bind(email.trim())
    .fetch_optional(pool)
    .await?;
    let failure = |user: Option<Uuid>, why: &str| {
        let detail = serde_json::json!({"email": email.trim(), "reason": why});
        async move {
            let actor = Actor {
                user,
                ip,
                ..Actor::default()
            };
            audit::record_failure(pool, actor, AuditEvent::AuthLoginFailure, None, detail).await
        }
    };
    let Some((user, hash, disabled, locked_until, mfa_enabled, role)) = row else {
        verify_off_runtime(password.to_string(), decoy_hash().to_string()).await;
        failure(None, "unknown email").await?;
        return Err(SignInError::InvalidCredentials);
    };
    if let Some(until) = locked_until.filter(|u| *u > Utc::now()) {
        failure(Some(user), "locked").await?;
        return Err(SignInError::Locked(until));
    }
    let ok = match hash {
        Some(h) => verify_off_runtime(password.to_string(), h).await,
        None => {
            verify_off_runtime(password.to_string(), decoy_hash().to_string()).await;
            false
        }
    };
    let actor = Actor {
        token: None,
        user: Some(user),
        ip,
    };
    if ok && mfa_enabled && code.is_none() {
        return Err(SignInError::MfaRequired);
    }
    let mut tx = pool.begin().await?;
    // The second factor, in the same transaction (a code is accepted once). A wrong one
    // counts as a failed sign-in.
    let (ok, wrong_code) = match (ok, mfa_enabled, code) {
        (true, true, Some(c)) => match crate::mfa::check_second_factor(&mut tx, user, c).await {
            Ok(()) => (true, false),
            Err(crate::mfa::MfaError::Store(e)) => return Err(e.into()),
            Err(_) => (false, true),
        },
        (ok, ..) => (ok, false),
    };
    if !ok {
        let (failed,): (i32,) = sqlx::query_as(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 \
             RETURNING failed_logins",
        )
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        let locked = failed >= s.lockout_attempts as i32;
        if locked {
            let until = Utc::now() + Duration::minutes(i64::from(s.lockout_minutes));
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = $2 WHERE id = $1")
                .bind(user)
                .bind(until)
                .execute(&mut *tx)
                .await?;
            audit::record_as(
                &mut *tx,
                actor,
                AuditEvent::AuthLockout,
                Some(&user.to_string()),
                serde_json::json!({"failed_attempts": failed, "until": until}),
            )
            .await?;
        }
        tx.commit().await?;
        if wrong_code {
            failure(Some(user), "wrong second factor").await?;
            return Err(SignInError::InvalidMfaCode);
        }
        failure(Some(user), "wrong password").await?;
        return Err(SignInError::InvalidCredentials);
    }
    if disabled {
        tx.commit().await?;
        failure(Some(user), "disabled").await?;
        return Err(SignInError::Disabled);
    }
    sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now() \
         WHERE id = $1",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    let must_enrol = !mfa_enabled
        && role
            .parse::<crate::users::Role>()
            .is_ok_and(|r| s.mfa_required_roles.contains(&r));
    let issued = open_session(&mut tx, user, &s, ip, must_enrol).await?;
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthLoginSuccess,
        Some(&issued.session_id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Revokes session `id` and its access tokens (inside `con`'s transaction).
async fn revoke(con: &mut PgConnection, id: Uuid, reason: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = $2 \
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *con)
    .await?;
    sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE session_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *con)
    .await?;
    Ok(())
}

/// Exchanges a refresh token for a new pair (see the module's comment).
pub async fn refresh(
    pool: &PgPool,
    refresh_token: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Issued, SignInError> {
    let s = get_auth_settings(pool).await?;
    let mut tx = pool.begin().await?;
    type Row = (
        Uuid,
        Option<DateTime<Utc>>,
        Uuid,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        DateTime<Utc>,
        bool,
        bool,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT r.session_id, r.used_at, s.user_id, s.revoked_at, s.expires_at, s.last_seen_at, \
                (u.disabled OR u.deleting_at IS NOT NULL), (s.mfa_pending AND NOT u.mfa_enabled) \
         FROM session_refresh_tokens r JOIN sessions s ON s.id = r.session_id \
         JOIN users u ON u.id = s.user_id WHERE r.token_sha256 = $1 FOR UPDATE OF r, s",
    )
    .bind(hash_token(refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((session, used_at, user, revoked_at, expires_at, last_seen, gone, pending)) = row
    else {
        return Err(SignInError::InvalidRefresh);
    };
    let actor = Actor {
        token: None,
        user: Some(user),
        ip,
    };
    let target = session.to_string();
    if used_at.is_some() {
        revoke(&mut tx, session, "refresh token reused").await?;
        audit::record_failure(
            &mut *tx,
            actor,
            AuditEvent::AuthRefreshReuse,
            Some(&target),
            serde_json::json!({"session_revoked": revoked_at.is_none()}),
        )
        .await?;
        tx.commit().await?;
        return Err(SignInError::RefreshReused(user));
    }
    if revoked_at.is_some() || gone {
        return Err(SignInError::InvalidRefresh);
    }
    let now = Utc::now();
    let ended = if expires_at <= now {
        Some("expired")
    } else if last_seen + Duration::seconds(i64::from(s.idle_timeout_seconds)) <= now {
        Some("idle")
    } else {
        None
    };
    if let Some(why) = ended {
        revoke(&mut tx, session, why).await?;
        tx.commit().await?;
        return Err(SignInError::SessionEnded(why, user));
    }
    sqlx::query("UPDATE session_refresh_tokens SET used_at = now() WHERE token_sha256 = $1")
        .bind(hash_token(refresh_token))
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE id = $1")
        .bind(session)
        .execute(&mut *tx)
        .await?;
    let mut issued = issue(&mut tx, session, user, expires_at, &s).await?;
    issued.mfa_enrollment_required = pending;
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthRefresh,
        Some(&target),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Ends session `id` (its access and refresh tokens stop working). Audited `auth.logout`.
pub async fn logout(pool: &PgPool, id: Uuid, actor: Actor) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    revoke(&mut tx, id, "logout").await?;
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthLogout,
        Some(&id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Lifts a lockout (audited `auth.unlock`). False when the user does not exist.
pub async fn unlock(pool: &PgPool, user: Uuid, actor: Actor) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = NULL \
         WHERE id = $1 AND deleting_at IS NULL",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthUnlock,
        Some(&user.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// One's own password change: the current password must verify, the new one meet the
/// policy and `confirm` repeat it. Every other session of the user is revoked. Audited
/// `auth.password.change`.
pub async fn change_password(
    pool: &PgPool,
    user: Uuid,
    current: &str,
    new: &str,
    confirm: &str,
    keep_session: Option<Uuid>,
    actor: Actor,
) -> Result<(), UserError> {
    if new != confirm {
        return Err(UserError::PasswordMismatch);
    }
    let hash: Option<Option<String>> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(pool)
            .await?;
    let ok = match hash.flatten() {
        Some(h) => verify_off_runtime(current.to_string(), h).await,
        None => false,
    };
    if !ok {
        return Err(UserError::Invalid("the current password is wrong".into()));
    }
    let policy = get_auth_settings(pool).await?;
    let hash = crate::users::hash_off_runtime(Some(new.to_string()), policy)
        .await?
        .unwrap_or_default();
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(user)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    let others: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
           AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user)
    .bind(keep_session)
    .fetch_all(&mut *tx)
    .await?;
    for s in &others {
        revoke(&mut tx, *s, "password changed").await?;
    }
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthPasswordChange,
        Some(&user.to_string()),
        serde_json::json!({"sessions_revoked": others.len()}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
