//! TOTP multi-factor sign-in (RFC 6238 through `totp-rs`: SHA-1, 6 digits, 30 s steps, one
//! step either side). Enrol (a secret, its `otpauth://` URI and a QR image), verify a code to
//! turn it on (ten single-use backup codes, shown once, stored as SHA-256), sign in with a
//! code or a backup code, turn it off only with a valid code. A code is accepted once: the
//! newest accepted time step is kept and an older or equal one is refused. Audited
//! `auth.mfa.enroll`, `auth.mfa.enable`, `auth.mfa.disable`.
use crate::audit_events::AuditEvent;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db::StoreError;
use crate::tokens::hash_token;

/// Backup codes made at activation.
pub const BACKUP_CODES: usize = 10;
const ISSUER: &str = "voxfleet";

/// What enrolment hands out, once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enrollment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code: a PNG, base64.
    pub qr_png_base64: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("multi-factor sign-in is already on; turn it off first")]
    AlreadyEnabled,
    #[error("multi-factor sign-in is not on")]
    NotEnabled,
    #[error("no enrolment to verify: start with POST /v1/me/mfa/enroll")]
    NotEnrolled,
    #[error("wrong, expired or already used code")]
    InvalidCode,
    #[error("{0}")]
    Totp(String),
}

impl From<sqlx::Error> for MfaError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

fn totp(secret: &str, account: &str) -> Result<Totp, MfaError> {
    let bytes = Secret::try_from_base32(secret).map_err(|e| MfaError::Totp(e.to_string()))?;
    Builder::new()
        .with_secret(bytes)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| MfaError::Totp(e.to_string()))
}

/// The time step `code` matches now under `secret`, if it does.
fn matching_step(secret: &str, code: &str) -> Option<i64> {
    let t = totp(secret, "x").ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    t.check(code.trim(), now)
        .and_then(|s| i64::try_from(s).ok())
}

/// Starts (or restarts) enrolment of `user`: a new secret, not active until a code from it
/// verifies ([`activate`]).
pub async fn enroll(pool: &PgPool, user: Uuid, actor: Actor) -> Result<Enrollment, MfaError> {
    let row: Option<(bool, Option<String>, String)> =
        sqlx::query_as("SELECT mfa_enabled, email, name FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(pool)
            .await?;
    let Some((enabled, email, name)) = row else {
        return Err(MfaError::NotEnrolled);
    };
    if enabled {
        return Err(MfaError::AlreadyEnabled);
    }
    let secret = Secret::generate().to_base32();
    let account: String = email
        .unwrap_or(name)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let t = totp(&secret, &account)?;
    let otpauth_uri = t.to_url().map_err(|e| MfaError::Totp(e.to_string()))?;
    let qr_png_base64 = t
        .to_qr_base64()
        .map_err(|e| MfaError::Totp(e.to_string()))?;
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET mfa_secret = $2, mfa_last_step = NULL WHERE id = $1")
        .bind(user)
        .bind(&secret)
        .execute(&mut *tx)
        .await?;
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthMfaEnroll,
        Some(&user.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(Enrollment {
        secret,
        otpauth_uri,
        qr_png_base64,
    })
}

/// Checks a TOTP `code` for `user` inside `con`'s transaction and records its step, so it is
/// accepted once. `pending`: check the enrolment's secret, not yet active.
async fn accept_code(
    con: &mut PgConnection,
    user: Uuid,
    code: &str,
    pending: bool,
) -> Result<(), MfaError> {
    let row: Option<(Option<String>, bool, Option<i64>)> = sqlx::query_as(
        "SELECT mfa_secret, mfa_enabled, mfa_last_step FROM users WHERE id = $1 FOR UPDATE",
    )
    .bind(user)
    .fetch_optional(&mut *con)
    .await?;
    let Some((Some(secret), enabled, last)) = row else {
        return Err(if pending {
            MfaError::NotEnrolled
        } else {
            MfaError::NotEnabled
        });
    };
    if enabled == pending {
        return Err(if pending {
            MfaError::AlreadyEnabled
        } else {
            MfaError::NotEnabled
        });
    }
    let step = matching_step(&secret, code).ok_or(MfaError::InvalidCode)?;
    if last.is_some_and(|l| step <= l) {
        return Err(MfaError::InvalidCode);
    }
    sqlx::query("UPDATE users SET mfa_last_step = $2 WHERE id = $1")
        .bind(user)
        .bind(step)
        .execute(&mut *con)
        .await?;
    Ok(())
}

/// A new backup code: ten characters from an alphabet without look-alikes, as `xxxxx-xxxxx`.
fn backup_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes: [u8; 10] = rand::random();
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

fn normalized(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

/// Turns multi-factor sign-in on once `code` verifies against the enrolment; returns the
/// backup codes (shown once).
pub async fn activate(
    pool: &PgPool,
    user: Uuid,
    code: &str,
    actor: Actor,
) -> Result<Vec<String>, MfaError> {
    let mut tx = pool.begin().await?;
    accept_code(&mut tx, user, code, true).await?;
    sqlx::query("UPDATE users SET mfa_enabled = true WHERE id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    let codes: Vec<String> = (0..BACKUP_CODES).map(|_| backup_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| hash_token(c)).collect();
    sqlx::query(
        "INSERT INTO mfa_backup_codes (user_id, code_sha256) SELECT $1, unnest($2::text[])",
    )
    .bind(user)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthMfaEnable,
        Some(&user.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// A second factor for `user`: a TOTP code, or else an unused backup code (used up here).
pub(crate) async fn check_second_factor(
    con: &mut PgConnection,
    user: Uuid,
    code: &str,
) -> Result<(), MfaError> {
    match accept_code(con, user, code, false).await {
        Err(MfaError::InvalidCode) => {}
        other => return other,
    }
    let used = sqlx::query(
        "UPDATE mfa_backup_codes SET used_at = now() \
         WHERE user_id = $1 AND code_sha256 = $2 AND used_at IS NULL",
    )
    .bind(user)
    .bind(hash_token(&normalized(code)))
    .execute(&mut *con)
    .await?
    .rows_affected();
    if used == 1 {
        Ok(())
    } else {
        Err(MfaError::InvalidCode)
    }
}

/// Turns multi-factor sign-in off, only with a valid code (or backup code).
pub async fn disable(pool: &PgPool, user: Uuid, code: &str, actor: Actor) -> Result<(), MfaError> {
    let mut tx = pool.begin().await?;
    check_second_factor(&mut tx, user, code).await?;
    sqlx::query(
        "UPDATE users SET mfa_enabled = false, mfa_secret = NULL, mfa_last_step = NULL \
         WHERE id = $1",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    audit::record_as(
        &mut *tx,
        actor,
        AuditEvent::AuthMfaDisable,
        Some(&user.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The code an authenticator app shows `offset_s` seconds from now for a base32 `secret`
/// (for tests and tools).
pub fn code_at(secret: &str, offset_s: i64) -> Option<String> {
    let t = totp(secret, "x").ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(t.generate(now.checked_add_signed(offset_s)?).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_secret_verifies_its_own_code_and_backup_codes_look_alike() {
        let secret = Secret::generate().to_base32();
        let code = code_at(&secret, 0).unwrap();
        assert_eq!(code.len(), 6);
        assert!(matching_step(&secret, &code).is_some());
        assert!(matching_step(&secret, "000000").is_none() || code == "000000");
        let b = backup_code();
        assert_eq!(b.len(), 11);
        assert_eq!(&b[5..6], "-");
    }
}
