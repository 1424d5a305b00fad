//! API tokens (super_admin: tokens are authentication): list without secrets
//! (`GET /v1/tokens`), create a service account's token with the plaintext shown once
//! (`POST /v1/tokens`), revoke for good (`DELETE /v1/tokens/{id}`). Admins grant or withdraw
//! delegation (`PATCH /v1/tokens/{id}`). A user's own tokens are under `/v1/me/tokens`, an
//! admin's view of a user's under `/v1/users/{id}/tokens`. Changes are audited with the
//! acting token.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use voxfleet_store::tokens::{Revoked, Role, TokenRecord};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::ApiJson;

/// Longest token name, in characters.
const MAX_NAME: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Every token, revoked ones included, oldest first.
    pub tokens: Vec<TokenRecord>,
}

/// A token for a new service account (a user with this name and role, no email nor
/// password); `POST /v1/users/{id}/tokens` mints one for an existing user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Who or what the token is for (1-100 characters, no control characters).
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPatch {
    /// May act for other users with `X-Voxfleet-User`.
    pub can_delegate: bool,
}

/// A token's name, trimmed: 1-100 characters without control characters.
pub fn check_token_name(name: &str) -> ApiResult<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            Code::InvalidInput,
            format!("`name` must be 1-{MAX_NAME} characters without control characters"),
        ));
    }
    Ok(name)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub record: TokenRecord,
    /// The secret: shown here once, only its hash is kept.
    pub token: String,
}

/// Every token, revoked ones included; never a secret nor its hash (super_admin).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tokens(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<TokenList>> {
    auth.require(Role::SuperAdmin)?;
    let tokens = voxfleet_store::tokens::list_tokens(&st.pool).await?;
    Ok(Json(TokenList { tokens }))
}

/// Mint a token; its secret is in this answer only (super_admin; audited `token.create`).
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    auth.require(Role::SuperAdmin)?;
    let name = check_token_name(&req.name)?;
    let (info, token) =
        voxfleet_store::tokens::create_token_by(&st.pool, name, req.role, Some(auth.token_id))
            .await?;
    let record = voxfleet_store::tokens::get_token(&st.pool, info.id)
        .await?
        .ok_or_else(|| ApiError::new(Code::Internal, "the token was not recorded"))?;
    Ok((StatusCode::CREATED, Json(CreatedToken { record, token })))
}

/// Revoke a token for good: it stops working at once on this replica, within 10 s on the
/// others. Revoking a revoked token changes nothing; a caller may revoke its own token
/// (super_admin; audited `token.revoke`).
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = TokenRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenRecord>> {
    auth.require(Role::SuperAdmin)?;
    let id = id.parse().map_err(|_| ApiError::not_found("token"))?;
    let out =
        voxfleet_store::tokens::revoke_token(&st.pool, id, Some(auth.token_id), "api").await?;
    // Evicted whatever happened: a token revoked elsewhere may still be cached here.
    st.tokens.evict(id);
    match out {
        Revoked::Now(r) | Revoked::Already(r) => Ok(Json(r)),
        Revoked::NotFound => Err(ApiError::not_found("token")),
    }
}

/// Grant or withdraw a token's right to act for other users with `X-Voxfleet-User` (admin;
/// super_admin for a super_admin's token). Audited `token.delegation`.
#[utoipa::path(patch, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), request_body = TokenPatch,
    responses((status = 200, body = TokenRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TokenPatch>,
) -> ApiResult<Json<TokenRecord>> {
    auth.require(Role::Admin)?;
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("token"))?;
    let token = voxfleet_store::tokens::get_token(&st.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    voxfleet_store::users::check_manageable(&st.pool, token.user_id, auth.acting()).await?;
    let rec = voxfleet_store::tokens::set_delegation(&st.pool, id, req.can_delegate, auth.actor())
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    st.tokens.evict(id);
    Ok(Json(rec))
}
