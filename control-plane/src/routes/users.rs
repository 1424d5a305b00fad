//! Users (issue 17): the admin API of both admin panels' user management, and `/v1/me` for
//! everyone.
//!
//! - Admins (`admin`; `super_admin` for super_admin accounts): list with search and each
//!   user's usage, create, read, edit (name, email, role, public sharing, budgets, defaults,
//!   disabled), reset a password, recover their failed and stuck work, list and mint their
//!   tokens, delete them with everything of theirs.
//! - Everyone: `GET /v1/me`, and their own tokens (`/v1/me/tokens`).
//!
//! The account rules (self changes, the last super_admin, who reaches whom) live in
//! `voxfleet_store::users`, in the transaction of the change; every change is audited with
//! the acting token and user.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use voxfleet_jobs::{DeleteUserInput, JobInput};
use voxfleet_store::budgets::TranscriptionBudget;
use voxfleet_store::costs::UsageCost;
use voxfleet_store::llm_budget::TokenBudget;
use voxfleet_store::tokens::{Revoked, Role, TokenRecord};
use voxfleet_store::users::{NewUser, User, UserFilter, UserPatch, UserUsage, UserWithUsage};

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::tokens::{CreatedToken, TokenList, check_token_name};
use crate::services::recovery::{Recovered, recover_user};
use crate::services::submit::submit_many;
use crate::views::{JobView, view};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Part of the name or email, any case.
    pub q: Option<String>,
    pub role: Option<Role>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Newest first, each with its usage this month.
    pub users: Vec<UserWithUsage>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// A crash drill for tests: the deletion stops after this many files and waits to be
    /// killed (honoured only by a worker started with `--allow-crash`).
    pub stall_after: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub password: String,
    /// Must repeat `password`.
    pub confirm: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserToken {
    /// What the token is for (1-100 characters, no control characters).
    pub name: String,
    /// After this the token authenticates nothing (RFC 3339, in the future); none: never.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    pub usage: UserUsage,
    /// The token presented.
    pub token_id: Uuid,
    /// The request acts for this user through a delegating token.
    pub delegated: bool,
    /// The monthly transcription budget and what is used and held of it.
    pub transcription_budget: TranscriptionBudget,
    /// The monthly LLM token budget and what is used and reserved of it.
    pub token_budget: TokenBudget,
    /// This month's minutes, tokens and estimated cost, by connector.
    pub costs: UsageCost,
}

/// The start of the budgets' month now (usage is counted from there).
async fn month(st: &AppState) -> ApiResult<DateTime<Utc>> {
    Ok(voxfleet_store::budgets::get_budget_settings(&st.pool)
        .await?
        .month_start(Utc::now()))
}

fn user_id(id: &str) -> ApiResult<Uuid> {
    id.parse().map_err(|_| ApiError::not_found("user"))
}

/// Users newest first, searchable by name or email, with each one's recordings, storage and
/// minutes this month (admin).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<UserList>> {
    auth.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(Code::InvalidQuery, "limit must be 1-500"));
    }
    let query = q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if query.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "q is longer than 200 bytes",
        ));
    }
    let filter = UserFilter {
        query,
        role: q.role,
        before: q
            .cursor
            .as_deref()
            .map(crate::routes::jobs::parse_cursor)
            .transpose()?,
        limit,
    };
    let users = voxfleet_store::users::list_users(&st.pool, &filter, month(&st).await?).await?;
    let next_cursor = (users.len() as i64 == limit)
        .then(|| users.last())
        .flatten()
        .map(|u| format!("{}_{}", u.user.created_at.timestamp_micros(), u.user.id));
    Ok(Json(UserList { users, next_cursor }))
}

/// Create an account (admin; super_admin to create a super_admin). Audited
/// `admin.user.create`.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, description = "`email_taken`, `external_id_taken`", body = ErrorBody), (status = 422, description = "`invalid_input`, `weak_password`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(new): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    auth.require(Role::Admin)?;
    let user = voxfleet_store::users::create_user(&st.pool, new, auth.acting()).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user with their usage this month (admin).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserWithUsage), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<UserWithUsage>> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    let user = voxfleet_store::users::get_user(&st.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let usage = voxfleet_store::users::usage(&st.pool, id, month(&st).await?).await?;
    Ok(Json(UserWithUsage { user, usage }))
}

/// Change an account: absent fields stay, `null` clears (admin; super_admin for super_admin
/// accounts). Nobody changes their own role or disables themselves (409 `self_change`); the
/// last active super_admin is never demoted or disabled (409 `last_super_admin`). Audited
/// `admin.user.update` (and `admin.user.role_change`).
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    let user = voxfleet_store::users::update_user(&st.pool, id, patch, auth.acting()).await?;
    // A role or the disabled flag may have changed: the next request looks the tokens up.
    st.tokens.evict_user(id);
    Ok(Json(user))
}

/// Delete an account and everything of theirs (admin; super_admin for super_admin
/// accounts): at once the account is gone from the API and its tokens are revoked (audited
/// `admin.user.delete`); the `delete_user` job this answers with then removes their files
/// (transcripts, speakers, voiceprints, index documents, storage objects), tokens and the
/// account; usage rows stay, detached from the person. Nobody deletes themselves (409
/// `self_change`) nor the last active super_admin (409 `last_super_admin`). Sent again for
/// an account whose deletion did not finish, it queues the job again.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path), DeleteQuery),
    responses((status = 202, body = JobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    voxfleet_store::users::mark_deleting(&st.pool, id, auth.acting()).await?;
    st.tokens.evict_user(id);
    let input = JobInput::DeleteUser(DeleteUserInput {
        user_id: id,
        stall_after: q.stall_after,
    });
    let job = voxfleet_store::submit::new_job(&input, Some(auth.user_id));
    let inserted = submit_many(&st, vec![job]).await?;
    let job = inserted
        .into_iter()
        .next()
        .map(|i| i.job().clone())
        .ok_or_else(|| ApiError::new(Code::Internal, "the deletion was not queued"))?;
    let settings = st.settings.current().await;
    Ok((StatusCode::ACCEPTED, Json(view(job, &settings))))
}

/// Set a user's password (admin; super_admin for super_admin accounts): at least 8
/// characters, `confirm` repeating it. Audited `admin.user.password_reset`.
#[utoipa::path(post, path = "/v1/users/{id}/password", tag = "users", params(("id" = String, Path)), request_body = PasswordReset,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "`weak_password`, `password_mismatch`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reset_password(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PasswordReset>,
) -> ApiResult<StatusCode> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    voxfleet_store::users::reset_password(&st.pool, id, &req.password, &req.confirm, auth.acting())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Recover a user's files: their failed (or cancelled) newest transcriptions and
/// diarizations run again, stuck ones are cancelled and submitted anew; the answer counts
/// both (admin; super_admin for super_admin accounts). Audited `admin.user.recover`.
#[utoipa::path(post, path = "/v1/users/{id}/recover", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = Recovered), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn recover_files(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Recovered>> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    voxfleet_store::users::check_manageable(&st.pool, id, auth.acting()).await?;
    Ok(Json(recover_user(&st, &auth, id).await?))
}

/// A user's tokens, revoked ones included; never a secret (admin; super_admin for
/// super_admin accounts).
#[utoipa::path(get, path = "/v1/users/{id}/tokens", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = TokenList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_user_tokens(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenList>> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    voxfleet_store::users::check_manageable(&st.pool, id, auth.acting()).await?;
    let tokens = voxfleet_store::tokens::list_user_tokens(&st.pool, id).await?;
    Ok(Json(TokenList { tokens }))
}

/// Mint a token for a user; its secret is in this answer only (admin; super_admin for
/// super_admin accounts). Audited `token.create`.
#[utoipa::path(post, path = "/v1/users/{id}/tokens", tag = "users", params(("id" = String, Path)), request_body = NewUserToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewUserToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    voxfleet_store::users::check_manageable(&st.pool, id, auth.acting()).await?;
    mint(&st, &auth, id, req).await
}

async fn mint(
    st: &AppState,
    auth: &Auth,
    user: Uuid,
    req: NewUserToken,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = check_token_name(&req.name)?;
    if let Some(at) = req.expires_at
        && (at <= Utc::now() || !crate::extract::time_in_range(&at))
    {
        return Err(ApiError::new(
            Code::InvalidInput,
            "`expires_at` must be a time in the future",
        ));
    }
    let (record, token) = voxfleet_store::tokens::create_user_token(
        &st.pool,
        user,
        name,
        req.expires_at,
        auth.actor(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { record, token })))
}

/// The caller: the user the request acts as, their usage this month, and the token.
#[utoipa::path(get, path = "/v1/me", tag = "users",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<Me>> {
    let user = voxfleet_store::users::get_user(&st.pool, auth.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let now = Utc::now();
    let (from, to) = voxfleet_store::budgets::get_budget_settings(&st.pool)
        .await?
        .month_around(now);
    let usage = voxfleet_store::users::usage(&st.pool, auth.user_id, from).await?;
    let transcription_budget =
        voxfleet_store::budgets::transcription_status(&st.pool, auth.user_id, now).await?;
    let token_budget = voxfleet_store::llm_budget::status(&st.pool, auth.user_id, now).await?;
    let costs = voxfleet_store::costs::usage_cost(&st.pool, Some(auth.user_id), from, to).await?;
    Ok(Json(Me {
        user,
        usage,
        token_id: auth.token_id,
        delegated: auth.delegated,
        transcription_budget,
        token_budget,
        costs,
    }))
}

/// The caller's own tokens, revoked ones included; never a secret.
#[utoipa::path(get, path = "/v1/me/tokens", tag = "users",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn my_tokens(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<TokenList>> {
    let tokens = voxfleet_store::tokens::list_user_tokens(&st.pool, auth.user_id).await?;
    Ok(Json(TokenList { tokens }))
}

/// Mint a token for oneself (any role); its secret is in this answer only. Audited
/// `token.create`.
#[utoipa::path(post, path = "/v1/me/tokens", tag = "users", request_body = NewUserToken,
    responses((status = 201, body = CreatedToken), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_my_token(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<NewUserToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    mint(&st, &auth, auth.user_id, req).await
}

/// Revoke one of one's own tokens for good (another user's token is 404). Audited
/// `token.revoke`.
#[utoipa::path(delete, path = "/v1/me/tokens/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = TokenRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_my_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenRecord>> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("token"))?;
    let mine = voxfleet_store::tokens::get_token(&st.pool, id)
        .await?
        .is_some_and(|t| t.user_id == auth.user_id);
    if !mine {
        return Err(ApiError::not_found("token"));
    }
    let out = voxfleet_store::tokens::revoke_token(&st.pool, id, Some(auth.token_id), "me").await?;
    st.tokens.evict(id);
    match out {
        Revoked::Now(r) | Revoked::Already(r) => Ok(Json(r)),
        Revoked::NotFound => Err(ApiError::not_found("token")),
    }
}
