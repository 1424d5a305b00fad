//! Public share links to a file's transcript: made, listed and revoked by the file's owner
//! when they have `public_sharing` and the instance allows it (`public_sharing_allowed` in
//! `/v1/settings/auth`); everyone else gets 403. `GET /v1/shared/{token}` answers the
//! transcript read-only to anyone with the link until it expires or is revoked.
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use voxfleet_store::shares::ShareLink;

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::files::TranscriptQuery;
use crate::services::files::load;
use crate::transcript::Format;

/// Longest a link lives.
pub const MAX_DAYS: u32 = 365;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    /// 1–365, default 7.
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedShare {
    #[serde(flatten)]
    pub link: ShareLink,
    /// The secret part of the link: shown here once.
    pub token: String,
    /// Where the transcript is read: `/v1/shared/{token}` (`?format=txt|srt|vtt`).
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareList {
    pub shares: Vec<ShareLink>,
}

/// 403 unless the instance allows public links and the caller's account may make them.
async fn may_share(st: &AppState, auth: &Auth) -> ApiResult<()> {
    let allowed = voxfleet_store::auth_settings::get_auth_settings(&st.pool)
        .await?
        .public_sharing_allowed;
    let user = voxfleet_store::users::get_user(&st.pool, auth.user_id).await?;
    if !allowed {
        return Err(ApiError::new(
            Code::Forbidden,
            "public sharing is turned off on this instance",
        ));
    }
    if !user.is_some_and(|u| u.public_sharing) {
        return Err(ApiError::new(
            Code::Forbidden,
            "your account may not make public links (an admin grants `public_sharing`)",
        ));
    }
    Ok(())
}

/// Make a public, read-only link to one of one's files' transcript (the secret is in this
/// answer only). Audited `share.create`.
#[utoipa::path(post, path = "/v1/files/{id}/shares", tag = "files", params(("id" = String, Path)), request_body = NewShare,
    responses((status = 201, body = CreatedShare), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_share(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewShare>,
) -> ApiResult<(StatusCode, Json<CreatedShare>)> {
    let f = load(&st, &auth, &id).await?;
    if f.file.owner != Some(auth.user_id) {
        return Err(ApiError::new(
            Code::Forbidden,
            "only a file's owner shares it",
        ));
    }
    may_share(&st, &auth).await?;
    let days = req.expires_in_days.unwrap_or(7);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::new(
            Code::InvalidInput,
            format!("`expires_in_days` must be 1-{MAX_DAYS}"),
        ));
    }
    let expires_at = Utc::now() + Duration::days(i64::from(days));
    let (link, token) =
        voxfleet_store::shares::create(&st.pool, f.file.id, auth.user_id, expires_at, auth.actor())
            .await?;
    let path = format!("/v1/shared/{token}");
    Ok((
        StatusCode::CREATED,
        Json(CreatedShare { link, token, path }),
    ))
}

/// A file's public links, revoked and expired ones included (its owner, or an admin).
#[utoipa::path(get, path = "/v1/files/{id}/shares", tag = "files", params(("id" = String, Path)),
    responses((status = 200, body = ShareList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_shares(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ShareList>> {
    let f = load(&st, &auth, &id).await?;
    Ok(Json(ShareList {
        shares: voxfleet_store::shares::list(&st.pool, f.file.id).await?,
    }))
}

/// Revoke a public link for good (its owner, or an admin). Audited `share.revoke`.
#[utoipa::path(delete, path = "/v1/shares/{id}", tag = "files", params(("id" = String, Path)),
    responses((status = 200, body = ShareLink), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_share(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ShareLink>> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("share"))?;
    let Some((_, owner)) = voxfleet_store::shares::get(&st.pool, id).await? else {
        return Err(ApiError::not_found("share"));
    };
    if !auth.may_access(Some(owner)) {
        return Err(ApiError::not_found("share"));
    }
    voxfleet_store::shares::revoke(&st.pool, id, auth.actor())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("share"))
}

/// A shared transcript, read-only, to anyone with the link (no token). 404 for an unknown,
/// expired or revoked link, and while sharing is off or its owner may no longer share.
#[utoipa::path(get, path = "/v1/shared/{token}", tag = "files",
    params(("token" = String, Path), TranscriptQuery),
    responses((status = 200, description = "the transcript in the requested format"), (status = 404, body = ErrorBody)))]
pub async fn shared_transcript(
    State(st): State<AppState>,
    Path(token): Path<String>,
    ApiQuery(q): ApiQuery<TranscriptQuery>,
) -> ApiResult<Response> {
    let gone = || ApiError::not_found("shared transcript");
    let allowed = voxfleet_store::auth_settings::get_auth_settings(&st.pool)
        .await?
        .public_sharing_allowed;
    if !allowed || token.len() > 200 {
        return Err(gone());
    }
    let file = voxfleet_store::shares::resolve(&st.pool, &token)
        .await?
        .ok_or_else(gone)?;
    let f = voxfleet_store::files::get_file(&st.pool, file)
        .await?
        .ok_or_else(gone)?;
    crate::services::files::transcript(&st, &f, q.format.unwrap_or(Format::Json)).await
}
