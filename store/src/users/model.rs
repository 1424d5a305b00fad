//! The user types: roles, accounts as the API shows them, new accounts and changes, and
//! why a change is refused.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::db::StoreError;

/// What a user may do: `user` (own jobs and files), `admin` (all but authentication and
/// audit), `super_admin` (everything).
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

/// Longest display name, in characters.
pub const MAX_NAME: usize = 100;
/// Smallest monthly transcription budget, in minutes (the seed's minimum).
pub const MIN_TRANSCRIPTION_BUDGET: i32 = 10;
/// Smallest monthly LLM token budget, and its step (the seed's).
pub const MIN_TOKEN_BUDGET: i64 = 100_000;
pub const TOKEN_BUDGET_STEP: i64 = 10_000;

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    /// None for an account made from a bare token (a service account).
    pub email: Option<String>,
    pub name: String,
    pub role: Role,
    /// Whether a password is set (sign-in with a password possible).
    pub has_password: bool,
    pub public_sharing: bool,
    /// ISO 639-1 code applied to this user's transcriptions that name no language.
    pub default_language: Option<String>,
    /// Prompt applied to this user's transcriptions that give none.
    pub default_prompt: Option<String>,
    /// The platform's own id for this person (`X-Voxfleet-User: ext:<id>`).
    pub external_id: Option<String>,
    pub disabled: bool,
    /// Minutes of audio per calendar month; None: unlimited.
    pub transcription_budget_minutes: Option<i32>,
    /// LLM tokens per calendar month; None: unlimited.
    pub token_budget: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// A second factor (TOTP) is on.
    pub mfa_enabled: bool,
    /// Signing in with a password is locked until then, after too many failures (an admin
    /// can unlock); None when not locked.
    pub locked_until: Option<DateTime<Utc>>,
}

/// What a user holds and spent this calendar month (in the budgets' timezone).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct UserUsage {
    /// Files owned (not being deleted).
    pub recordings: i64,
    /// Their bytes in storage.
    pub storage_bytes: i64,
    /// Minutes of audio transcribed this month.
    pub minutes_this_month: f64,
    /// LLM tokens committed or reported this month.
    pub llm_tokens_this_month: i64,
    /// Estimated US dollars this month, transcription and LLM, at each row's price
    /// (`self_hosted` costs 0).
    pub cost_usd_this_month: f64,
}

/// A row of the admin list: the user and their usage.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserWithUsage {
    #[serde(flatten)]
    pub user: User,
    pub usage: UserUsage,
}

/// A new account.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: Option<String>,
    pub name: String,
    #[serde(default = "default_role")]
    pub role: Role,
    /// As the password policy asks (`/v1/settings/auth`); none: the account cannot sign in with a
    /// password until one is set.
    pub password: Option<String>,
    #[serde(default)]
    pub public_sharing: bool,
    pub default_language: Option<String>,
    pub default_prompt: Option<String>,
    pub external_id: Option<String>,
    pub transcription_budget_minutes: Option<i32>,
    pub token_budget: Option<i64>,
}

fn default_role() -> Role {
    Role::User
}

/// A change to an account: absent fields stay; `null` clears a nullable one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub role: Option<Role>,
    pub public_sharing: Option<bool>,
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub default_language: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub default_prompt: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub transcription_budget_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub token_budget: Option<Option<i64>>,
}

/// A field that is present (even as `null`) becomes `Some(value)`; an absent one stays None
/// through `#[serde(default)]`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Why a change to users was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("user not found")]
    NotFound,
    /// A field out of its rules (422).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    WeakPassword(String),
    #[error("the password and its confirmation differ")]
    PasswordMismatch,
    #[error("another account has this email")]
    EmailTaken,
    #[error("another account has this external id")]
    ExternalIdTaken,
    /// One's own role, disabled flag or account (409).
    #[error("{0}")]
    SelfChange(String),
    /// It would leave no active super_admin (409).
    #[error("{0}")]
    LastSuperAdmin(String),
    /// The caller's role does not reach this account (403).
    #[error("{0}")]
    Forbidden(String),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e
            && d.code().as_deref() == Some("23505")
        {
            match d.constraint() {
                Some("users_email") => return Self::EmailTaken,
                Some("users_external_id_key") => return Self::ExternalIdTaken,
                _ => {}
            }
        }
        Self::Store(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_tells_null_from_absent() {
        let p: UserPatch = serde_json::from_str(r#"{"email": null}"#).unwrap();
        assert_eq!(p.email, Some(None));
        assert_eq!(p.external_id, None);
        assert!(serde_json::from_str::<UserPatch>(r#"{"password": "x"}"#).is_err());
    }
}
