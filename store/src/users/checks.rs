//! The rules of an account's fields: name, email, external id, transcription defaults,
//! budgets, and the password (argon2id).
use uuid::Uuid;
use voxfleet_jobs::{Kind, TranscribeInput};

use super::model::{
    MAX_NAME, MIN_TOKEN_BUDGET, MIN_TRANSCRIPTION_BUDGET, TOKEN_BUDGET_STEP, UserError,
};
use crate::auth_settings::AuthSettings;
use crate::db::StoreError;

pub(super) fn clean_name(name: &str) -> Result<String, UserError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(UserError::Invalid(format!(
            "`name` must be 1-{MAX_NAME} characters without control characters"
        )));
    }
    Ok(name.to_string())
}

/// An email's shape: one `@`, something before it, a dotted domain after, no spaces. Who
/// owns it is not checked (no mail is sent).
pub fn clean_email(email: &str) -> Result<String, UserError> {
    let email = email.trim();
    let bad = || UserError::Invalid(format!("`email` {email:?} is not an email address"));
    if email.len() < 3 || email.len() > 254 || email.chars().any(|c| c.is_whitespace()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email.chars().any(char::is_control)
    {
        return Err(bad());
    }
    Ok(email.to_string())
}

pub(super) fn clean_external_id(id: &str) -> Result<String, UserError> {
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "`external_id` must be 1-200 bytes without control characters".into(),
        ));
    }
    Ok(id.to_string())
}

/// The defaults must be what a transcription job would accept.
pub(super) fn check_defaults(
    language: Option<&str>,
    prompt: Option<&str>,
) -> Result<(), UserError> {
    let probe = TranscribeInput {
        language: language.map(str::to_string),
        prompt: prompt.map(str::to_string),
        ..TranscribeInput::for_file(Uuid::nil())
    };
    probe
        .check()
        .map_err(|e| UserError::Invalid(format!("default transcription settings: {}", e.0)))
}

pub(super) fn check_budgets(minutes: Option<i32>, tokens: Option<i64>) -> Result<(), UserError> {
    if let Some(m) = minutes
        && m < MIN_TRANSCRIPTION_BUDGET
    {
        return Err(UserError::Invalid(format!(
            "`transcription_budget_minutes` must be at least {MIN_TRANSCRIPTION_BUDGET} (or null: unlimited)"
        )));
    }
    if let Some(t) = tokens
        && (t < MIN_TOKEN_BUDGET || t % TOKEN_BUDGET_STEP != 0)
    {
        return Err(UserError::Invalid(format!(
            "`token_budget` must be at least {MIN_TOKEN_BUDGET} in steps of {TOKEN_BUDGET_STEP} (or null: unlimited)"
        )));
    }
    Ok(())
}

/// An argon2id hash (PHC string) of a password that meets `policy`.
pub fn hash_password(password: &str, policy: &AuthSettings) -> Result<String, UserError> {
    use argon2::password_hash::PasswordHasher;
    use argon2::password_hash::phc::PasswordHash;
    if let Some(problem) = policy.password_problem(password) {
        return Err(UserError::WeakPassword(problem));
    }
    let hash: PasswordHash = argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| UserError::Store(StoreError::Invalid(format!("argon2: {e}"))))?;
    Ok(hash.to_string())
}

/// [`hash_password`] on a blocking thread: argon2 takes tens of milliseconds of CPU, which
/// the async runtime's threads should not spend.
pub(crate) async fn hash_off_runtime(
    password: Option<String>,
    policy: AuthSettings,
) -> Result<Option<String>, UserError> {
    match password {
        None => Ok(None),
        Some(p) => tokio::task::spawn_blocking(move || hash_password(&p, &policy))
            .await
            .map_err(|e| UserError::Store(StoreError::Invalid(format!("hashing: {e}"))))?
            .map(Some),
    }
}

/// Whether `password` matches the stored argon2 `hash` (constant time in the digest).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_have_a_local_part_and_a_dotted_domain() {
        for ok in ["a@b.co", " Ann.Lee+x@Example.org "] {
            assert!(clean_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "ab", "a@b", "@b.co", "a@.co", "a@b.", "a b@c.de", "a@b@c.de",
        ] {
            assert!(clean_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn budgets_keep_the_seeds_minimums_and_steps() {
        assert!(check_budgets(Some(10), Some(100_000)).is_ok());
        assert!(check_budgets(None, Some(250_000)).is_ok());
        assert!(check_budgets(Some(9), None).is_err());
        assert!(check_budgets(None, Some(90_000)).is_err());
        assert!(check_budgets(None, Some(105_000)).is_err());
    }

    #[test]
    fn transcription_defaults_follow_the_jobs_rules() {
        assert!(check_defaults(Some("de"), Some("Namen: Anna, Jörg.")).is_ok());
        assert!(check_defaults(Some("German"), None).is_err());
        assert!(check_defaults(None, Some(&"x".repeat(2001))).is_err());
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let policy = AuthSettings::default();
        assert!(matches!(
            hash_password("short", &policy),
            Err(UserError::WeakPassword(_))
        ));
        let h = hash_password("correct horse", &policy).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
