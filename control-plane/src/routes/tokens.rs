//! API tokens (super_admin only: tokens are authentication): list without secrets
//! (`GET /v1/tokens`), create with the plaintext shown once (`POST /v1/tokens`), revoke for
//! good (`DELETE /v1/tokens/{id}`). Changes are audited with the acting token.
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Who or what the token is for (1-100 characters, no control characters).
    pub name: String,
    pub role: Role,
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
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            Code::InvalidInput,
            format!("`name` must be 1-{MAX_NAME} characters without control characters"),
        ));
    }
    let (info, token) =
        voxfleet_store::tokens::create_token_by(&st.pool, name, req.role, Some(auth.token_id))
            .await?;
    let record = TokenRecord {
        id: info.id,
        name: info.name,
        role: info.role,
        created_at: info.created_at,
        last_used_at: None,
        revoked_at: None,
        bootstrap: false,
    };
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
