//! Sign-in settings (`GET/PUT /v1/settings/auth`, super_admin): token lifetimes, the idle
//! timeout, the password policy and the lockout. A value stored in PostgreSQL wins; until one
//! is stored, `VOXFLEET_AUTH_*` environment variables give the defaults (then the built-in
//! ones below).
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::StoreError;
use crate::users::Role;

const AUTH_KEY: &str = "auth";

/// Longest password accepted: argon2 takes any length, this only bounds the work per request.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// How sign-in works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Lifetime of an access token from `POST /v1/auth/login` or `/refresh` (60–86,400 s;
    /// default 900, `VOXFLEET_AUTH_ACCESS_SECONDS`).
    pub access_token_seconds: u32,
    /// A session ends this long after sign-in whatever happens (1–365 days; default 7,
    /// `VOXFLEET_AUTH_SESSION_DAYS`).
    pub session_days: u32,
    /// A session not refreshed for this long ends (300–2,592,000 s; default 3,600,
    /// `VOXFLEET_AUTH_IDLE_SECONDS`).
    pub idle_timeout_seconds: u32,
    /// Shortest password (8–128; default 8, `VOXFLEET_AUTH_PASSWORD_MIN_LENGTH`).
    pub password_min_length: u32,
    /// How many of lower case, upper case, digits and other characters a password must mix
    /// (1–4; default 1, `VOXFLEET_AUTH_PASSWORD_CLASSES`).
    pub password_min_classes: u32,
    /// Failed sign-ins in a row that lock the account (3–100; default 5,
    /// `VOXFLEET_AUTH_LOCKOUT_ATTEMPTS`).
    pub lockout_attempts: u32,
    /// How long it stays locked (1–1,440 minutes; default 15, `VOXFLEET_AUTH_LOCKOUT_MINUTES`).
    pub lockout_minutes: u32,
    /// Roles that must sign in with a second factor: their sessions reach only enrolment
    /// until they have one (default none, `VOXFLEET_AUTH_MFA_ROLES`, comma-separated).
    pub mfa_required_roles: Vec<Role>,
    /// Whether users with `public_sharing` may make public links to their transcripts, and
    /// whether such links open (default false, `VOXFLEET_PUBLIC_SHARING=true`).
    pub public_sharing_allowed: bool,
}

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_seconds: env_or("VOXFLEET_AUTH_ACCESS_SECONDS", 900),
            session_days: env_or("VOXFLEET_AUTH_SESSION_DAYS", 7),
            idle_timeout_seconds: env_or("VOXFLEET_AUTH_IDLE_SECONDS", 3600),
            password_min_length: env_or("VOXFLEET_AUTH_PASSWORD_MIN_LENGTH", 8),
            password_min_classes: env_or("VOXFLEET_AUTH_PASSWORD_CLASSES", 1),
            lockout_attempts: env_or("VOXFLEET_AUTH_LOCKOUT_ATTEMPTS", 5),
            lockout_minutes: env_or("VOXFLEET_AUTH_LOCKOUT_MINUTES", 15),
            mfa_required_roles: std::env::var("VOXFLEET_AUTH_MFA_ROLES")
                .unwrap_or_default()
                .split(',')
                .filter_map(|r| r.trim().parse().ok())
                .collect(),
            public_sharing_allowed: std::env::var("VOXFLEET_PUBLIC_SHARING")
                .is_ok_and(|v| v.trim() == "true"),
        }
    }
}

impl AuthSettings {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v, lo, hi) in [
            (
                "access_token_seconds",
                self.access_token_seconds,
                60,
                86_400,
            ),
            ("session_days", self.session_days, 1, 365),
            (
                "idle_timeout_seconds",
                self.idle_timeout_seconds,
                300,
                2_592_000,
            ),
            ("password_min_length", self.password_min_length, 8, 128),
            ("password_min_classes", self.password_min_classes, 1, 4),
            ("lockout_attempts", self.lockout_attempts, 3, 100),
            ("lockout_minutes", self.lockout_minutes, 1, 1440),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{name} must be {lo}-{hi}, got {v}"));
            }
        }
        Ok(())
    }

    /// Why `password` does not meet the policy, if it does not.
    pub fn password_problem(&self, password: &str) -> Option<String> {
        let n = password.chars().count();
        if n < self.password_min_length as usize {
            return Some(format!(
                "the password must be at least {} characters",
                self.password_min_length
            ));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Some(format!(
                "the password must be at most {} bytes",
                MAX_PASSWORD_LEN
            ));
        }
        let classes = [
            password.chars().any(char::is_lowercase),
            password.chars().any(char::is_uppercase),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        (classes < self.password_min_classes as usize).then(|| {
            format!(
                "the password must mix at least {} of lower case, upper case, digits and other characters",
                self.password_min_classes
            )
        })
    }
}

/// The settings in force: PostgreSQL's, or the environment's defaults. A stored value that
/// no longer validates (an older release's) falls back to the defaults.
pub async fn get_auth_settings(pool: &PgPool) -> Result<AuthSettings, StoreError> {
    let s: AuthSettings = crate::settings::get_setting(pool, AUTH_KEY).await?;
    Ok(if s.validate().is_ok() {
        s
    } else {
        AuthSettings::default()
    })
}

pub async fn put_auth_settings(
    pool: &PgPool,
    s: &AuthSettings,
    by: Option<Uuid>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    crate::settings::put_setting(pool, AUTH_KEY, s, by).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_counts_length_and_character_classes() {
        let p = AuthSettings {
            password_min_length: 10,
            password_min_classes: 3,
            ..AuthSettings::default()
        };
        assert!(p.password_problem("Short1!").is_some());
        assert!(p.password_problem("alllowercaseletters").is_some());
        assert!(p.password_problem("Lower and Upper 7").is_none());
        assert!(p.password_problem("lower-and-digits-7").is_none());
        assert!(
            AuthSettings::default()
                .password_problem("eight ch")
                .is_none()
        );
        assert!(
            AuthSettings {
                lockout_attempts: 1,
                ..AuthSettings::default()
            }
            .validate()
            .is_err()
        );
    }
}
