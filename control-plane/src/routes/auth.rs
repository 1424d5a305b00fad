//! Sign-in for the people who use the admin dashboard (`voxfleet_store::sessions`): email and
//! password for a short-lived access token and a refresh token; refresh rotates, re-use of a
//! rotated refresh token revokes the session, logout ends it. One's own password change, an
//! admin's unlock, and the settings (lifetimes, idle timeout, password policy, lockout).
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_store::auth_settings::AuthSettings;
use voxfleet_store::mfa::{Enrollment, MfaError};
use voxfleet_store::sessions::{Issued, SignInError};
use voxfleet_store::tokens::Role;

use crate::AppState;
use crate::auth::{Auth, PeerIp};
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;
use voxfleet_store::audit_events::AuditEvent;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// The second factor, for accounts that have one: an authenticator code or a backup code.
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCode {
    /// An authenticator code (or, to turn it off, a backup code).
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupCodes {
    /// Ten single-use codes for when the authenticator is not at hand: shown once.
    pub backup_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub password: String,
    /// Must repeat `password`.
    pub confirm: String,
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        let code = match e {
            SignInError::Store(s) => return s.into(),
            SignInError::InvalidCredentials => Code::InvalidCredentials,
            SignInError::Locked(_) => Code::AccountLocked,
            SignInError::Disabled => Code::UserDisabled,
            SignInError::MfaRequired => Code::MfaRequired,
            SignInError::InvalidMfaCode => Code::InvalidMfaCode,
            SignInError::InvalidRefresh => Code::InvalidRefresh,
            SignInError::RefreshReused(_) => Code::RefreshReused,
            SignInError::SessionEnded(..) => Code::SessionExpired,
        };
        ApiError::new(code, e.to_string())
    }
}

/// Sign in: an access token (a bearer token for every route, for `access_token_seconds`) and
/// a refresh token. 401 `invalid_credentials` whatever was wrong; after
/// `lockout_attempts` failures in a row 423 `account_locked` for `lockout_minutes`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = Issued), (status = 401, body = ErrorBody), (status = 403, description = "`user_disabled`", body = ErrorBody), (status = 423, description = "`account_locked`", body = ErrorBody)))]
pub async fn login(
    State(st): State<AppState>,
    PeerIp(ip): PeerIp,
    ApiJson(req): ApiJson<Login>,
) -> ApiResult<Json<Issued>> {
    if req.email.len() > 254 || req.password.len() > 1024 {
        return Err(ApiError::new(
            Code::InvalidCredentials,
            SignInError::InvalidCredentials.to_string(),
        ));
    }
    Ok(Json(
        voxfleet_store::sessions::login(
            &st.pool,
            &req.email,
            &req.password,
            req.code.as_deref(),
            ip,
        )
        .await?,
    ))
}

/// A new access and refresh token for a refresh token, which is used up. Presenting a used
/// one revokes the whole session (401 `refresh_reused`); an ended session is 401
/// `session_expired`.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = Refresh,
    responses((status = 200, body = Issued), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(st): State<AppState>,
    PeerIp(ip): PeerIp,
    ApiJson(req): ApiJson<Refresh>,
) -> ApiResult<Json<Issued>> {
    // The session's earlier access tokens were replaced or revoked: this replica forgets
    // them at once (others within the cache's 10 s).
    match voxfleet_store::sessions::refresh(&st.pool, &req.refresh_token, ip).await {
        Ok(issued) => {
            st.tokens.evict_user(issued.user_id);
            Ok(Json(issued))
        }
        Err(e) => {
            if let SignInError::RefreshReused(user) | SignInError::SessionEnded(_, user) = &e {
                st.tokens.evict_user(*user);
            }
            Err(e.into())
        }
    }
}

/// End the caller's session (an access token from sign-in; 422 for an API token).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logout(State(st): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    let session = auth.session_id.ok_or_else(|| {
        ApiError::new(
            Code::InvalidInput,
            "this is an API token, not a session: revoke it instead (DELETE /v1/me/tokens/{id})",
        )
    })?;
    voxfleet_store::sessions::logout(&st.pool, session, auth.actor()).await?;
    st.tokens.evict(auth.token_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Change one's own password: the current one, the new one (the password policy) and its
/// confirmation. The caller's other sessions end.
#[utoipa::path(post, path = "/v1/me/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204), (status = 422, description = "`invalid_input` (wrong current password), `weak_password`, `password_mismatch`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn change_password(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    voxfleet_store::sessions::change_password(
        &st.pool,
        auth.user_id,
        &req.current_password,
        &req.password,
        &req.confirm,
        auth.session_id,
        auth.actor(),
    )
    .await?;
    st.tokens.evict_user(auth.user_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a lockout (admin; super_admin for super_admin accounts). Audited `auth.unlock`.
#[utoipa::path(post, path = "/v1/users/{id}/unlock", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unlock(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Role::Admin)?;
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("user"))?;
    voxfleet_store::users::check_manageable(&st.pool, id, auth.acting()).await?;
    if !voxfleet_store::sessions::unlock(&st.pool, id, auth.actor()).await? {
        return Err(ApiError::not_found("user"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The sign-in settings (super_admin): lifetimes, idle timeout, password policy, lockout.
#[utoipa::path(get, path = "/v1/settings/auth", tag = "auth",
    responses((status = 200, body = AuthSettings), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_settings(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<AuthSettings>> {
    auth.require(Role::SuperAdmin)?;
    Ok(Json(
        voxfleet_store::auth_settings::get_auth_settings(&st.pool).await?,
    ))
}

/// Change the sign-in settings (super_admin; audited `settings.auth`). Stored values win
/// over the `VOXFLEET_AUTH_*` environment.
#[utoipa::path(put, path = "/v1/settings/auth", tag = "auth", request_body = AuthSettings,
    responses((status = 200, body = AuthSettings), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_settings(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(s): ApiJson<AuthSettings>,
) -> ApiResult<Json<AuthSettings>> {
    auth.require(Role::SuperAdmin)?;
    s.validate()
        .map_err(|e| ApiError::new(Code::InvalidSetting, e))?;
    voxfleet_store::auth_settings::put_auth_settings(&st.pool, &s, Some(auth.token_id)).await?;
    voxfleet_store::audit::record_as(
        &st.pool,
        auth.actor(),
        AuditEvent::SettingsAuth,
        None,
        serde_json::to_value(&s).unwrap_or_default(),
    )
    .await?;
    Ok(Json(s))
}

impl From<MfaError> for ApiError {
    fn from(e: MfaError) -> Self {
        let code = match e {
            MfaError::Store(s) => return s.into(),
            MfaError::AlreadyEnabled | MfaError::NotEnabled | MfaError::NotEnrolled => {
                Code::MfaState
            }
            MfaError::InvalidCode => Code::InvalidInput,
            MfaError::Totp(_) => Code::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

/// Start enrolling a second factor: a new secret, its `otpauth://` URI and a QR image to scan
/// (not active until `POST /v1/me/mfa/verify`). 409 `mfa_state` when one is on already.
#[utoipa::path(post, path = "/v1/me/mfa/enroll", tag = "auth",
    responses((status = 200, body = Enrollment), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mfa_enroll(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Enrollment>> {
    Ok(Json(
        voxfleet_store::mfa::enroll(&st.pool, auth.user_id, auth.actor()).await?,
    ))
}

/// Turn the second factor on with a code from the enrolled authenticator: the answer holds
/// ten single-use backup codes, shown once. 422 `invalid_input` for a wrong code.
#[utoipa::path(post, path = "/v1/me/mfa/verify", tag = "auth", request_body = MfaCode,
    responses((status = 200, body = BackupCodes), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mfa_verify(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<MfaCode>,
) -> ApiResult<Json<BackupCodes>> {
    let backup_codes =
        voxfleet_store::mfa::activate(&st.pool, auth.user_id, &req.code, auth.actor()).await?;
    // A session waiting for enrolment reaches everything now.
    st.tokens.evict_user(auth.user_id);
    Ok(Json(BackupCodes { backup_codes }))
}

/// Turn the second factor off, only with a valid authenticator or backup code.
#[utoipa::path(post, path = "/v1/me/mfa/disable", tag = "auth", request_body = MfaCode,
    responses((status = 204), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mfa_disable(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<MfaCode>,
) -> ApiResult<StatusCode> {
    voxfleet_store::mfa::disable(&st.pool, auth.user_id, &req.code, auth.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
