//! Bearer-token authentication. Tokens are looked up by their SHA-256 in PostgreSQL; a short
//! in-process cache keeps lookups off the hot submission path. A token revoked (or a user
//! disabled) through this replica's API is evicted at once; one changed elsewhere (another
//! replica, the command line) stops working within the cache TTL (10 s).
//!
//! A request acts as the token's user, who owns what it makes and whose role it has. A token
//! an admin allowed to delegate may act for another user instead with
//! `X-Voxfleet-User: <user id>` or `X-Voxfleet-User: ext:<external id>`: ownership, roles and
//! the audit log then apply to that user (the audit row also names the token). Anyone else
//! sending the header gets 403 `delegation_not_allowed`; an unknown user 422 `unknown_user`;
//! a user above the token's own role 403.
//!
//! The scheme is matched case-insensitively (`Bearer`, `bearer`, RFC 7235), with any number
//! of spaces before the token. [`MetricsAuth`] guards `/metrics`: an admin token, or the
//! dedicated metrics token (`--metrics-token`), compared in constant time.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderName;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use voxfleet_store::audit::Actor;
use voxfleet_store::tokens::{Role, TokenInfo, find_token, hash_token};
use voxfleet_store::users::{Acting, User};

use crate::AppState;
use crate::error::{ApiError, Code};

const CACHE_TTL: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<String, (Option<TokenInfo>, Instant)>>,
}

impl TokenCache {
    /// Forgets token `id` (revoked): its next request is looked up again.
    pub fn evict(&self, id: Uuid) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (info, _)| info.as_ref().is_none_or(|i| i.id != id));
    }

    /// Forgets every token of user `id` (disabled, role changed).
    pub fn evict_user(&self, id: Uuid) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (info, _)| info.as_ref().is_none_or(|i| i.user_id != id));
    }
}

/// The header a delegating token names the user it acts for with.
pub static ACT_AS: HeaderName = HeaderName::from_static("x-voxfleet-user");

/// The caller, as established from its bearer token (and `X-Voxfleet-User`).
#[derive(Debug, Clone)]
pub struct Auth {
    /// The token presented.
    pub token_id: Uuid,
    /// The user the request acts as: the owner of what it makes.
    pub user_id: Uuid,
    /// That user's role.
    pub role: Role,
    /// Acting for a user other than the token's own.
    pub delegated: bool,
    /// The token may act for other users.
    pub can_delegate: bool,
    /// The peer's address (the audit log's source IP).
    pub ip: Option<std::net::IpAddr>,
    /// The sign-in session of an access token from `POST /v1/auth/login` (none for API
    /// tokens).
    pub session_id: Option<Uuid>,
}

impl Auth {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Forbidden,
                format!("this needs the {role} role; the token has {}", self.role),
            ))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }

    /// Whether the caller may see or act on something owned by `owner`.
    pub fn may_access(&self, owner: Option<Uuid>) -> bool {
        self.is_admin() || owner == Some(self.user_id)
    }

    /// The token and the user, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor {
            token: Some(self.token_id),
            user: Some(self.user_id),
            ip: self.ip,
        }
    }

    /// The caller as the account rules see it.
    pub fn acting(&self) -> Acting {
        Acting {
            actor: self.actor(),
            role: Some(self.role),
        }
    }
}

/// The token of an `Authorization` value: `Bearer`, in any case, one or more spaces, the
/// token (RFC 7235 `credentials`). None for another scheme or no token.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_matches(|c| c == ' ' || c == '\t');
    (!token.is_empty()).then_some(token)
}

/// The bearer token of a request, or 401 in the API's error format.
fn presented(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                Code::Unauthorized,
                "missing `Authorization: Bearer <token>`",
            )
        })?;
    bearer_token(header).ok_or_else(|| {
        ApiError::new(
            Code::Unauthorized,
            "the Authorization header must be `Bearer <token>`",
        )
    })
}

/// What a session still waiting for its user's second factor may reach.
const ENROLMENT_PATHS: [&str; 4] = [
    "/v1/me",
    "/v1/me/mfa/enroll",
    "/v1/me/mfa/verify",
    "/v1/auth/logout",
];

/// The caller, and whether its session is waiting for a second factor to be enrolled.
async fn authenticate(token: &str, state: &AppState) -> Result<(Auth, bool), ApiError> {
    let key = hash_token(token);
    let cached = {
        let map = state.tokens.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(info, _)| info.clone())
    };
    let info = match cached {
        Some(i) => i,
        None => {
            let i = find_token(&state.pool, token).await?;
            let mut map = state.tokens.map.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(key, (i.clone(), Instant::now()));
            i
        }
    };
    let info =
        info.ok_or_else(|| ApiError::new(Code::Unauthorized, "unknown, expired or revoked token"))?;
    if info.disabled {
        return Err(ApiError::new(
            Code::UserDisabled,
            "this token's user is disabled",
        ));
    }
    let auth = Auth {
        token_id: info.id,
        user_id: info.user_id,
        role: info.role,
        delegated: false,
        can_delegate: info.can_delegate,
        ip: None,
        session_id: info.session_id,
    };
    Ok((auth, info.mfa_pending))
}

/// The user `X-Voxfleet-User` names, checked against the token (see the module's comment).
async fn delegate(auth: Auth, value: &str, state: &AppState) -> Result<Auth, ApiError> {
    if !auth.can_delegate {
        return Err(ApiError::new(
            Code::DelegationNotAllowed,
            "this token may not act for other users (an admin grants it: PATCH /v1/tokens/{id})",
        ));
    }
    let unknown = || ApiError::new(Code::UnknownUser, "X-Voxfleet-User names no user");
    let user: User = match value.strip_prefix("ext:") {
        Some(ext) => voxfleet_store::users::find_external(&state.pool, ext).await?,
        None => match Uuid::parse_str(value.trim()) {
            Ok(id) => voxfleet_store::users::get_user(&state.pool, id).await?,
            Err(_) => {
                return Err(ApiError::new(
                    Code::UnknownUser,
                    "X-Voxfleet-User must be a user id or `ext:<external id>`",
                ));
            }
        },
    }
    .ok_or_else(unknown)?;
    if user.disabled {
        return Err(ApiError::new(Code::UserDisabled, "that user is disabled"));
    }
    if user.role > auth.role {
        return Err(ApiError::new(
            Code::Forbidden,
            format!("a token of a {} cannot act for a {}", auth.role, user.role),
        ));
    }
    Ok(Auth {
        token_id: auth.token_id,
        user_id: user.id,
        role: user.role,
        delegated: user.id != auth.user_id,
        can_delegate: auth.can_delegate,
        ip: auth.ip,
        session_id: auth.session_id,
    })
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (mut auth, mfa_pending) = authenticate(presented(parts)?, state).await?;
        auth.ip = peer_ip(parts);
        if mfa_pending && !ENROLMENT_PATHS.contains(&parts.uri.path()) {
            return Err(ApiError::new(
                Code::MfaEnrollmentRequired,
                "your role signs in with a second factor: enrol first (POST /v1/me/mfa/enroll, then /v1/me/mfa/verify)",
            ));
        }
        match parts.headers.get(&ACT_AS) {
            None => Ok(auth),
            Some(v) => {
                let v = v.to_str().map_err(|_| {
                    ApiError::new(Code::UnknownUser, "X-Voxfleet-User must be ASCII")
                })?;
                delegate(auth, v, state).await
            }
        }
    }
}

/// The peer's address, for routes without a bearer token (sign-in); None when unknown.
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(peer_ip(parts)))
    }
}

fn peer_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The dedicated `/metrics` token; only its SHA-256 is kept.
#[derive(Clone, Copy)]
pub struct MetricsToken([u8; 32]);

impl MetricsToken {
    pub fn new(plain: &str) -> Self {
        Self(Sha256::digest(plain.as_bytes()).into())
    }

    /// Constant time in the presented token's content (both sides are digests first).
    fn matches(&self, plain: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(plain.as_bytes()).into();
        self.0
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A caller allowed to scrape `/metrics`: the metrics token, or an admin (or super_admin)
/// API token. 401 without a valid token, 403 for a `user` token.
pub struct MetricsAuth;

impl FromRequestParts<AppState> for MetricsAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = presented(parts)?;
        if state.metrics_token.is_some_and(|m| m.matches(token)) {
            return Ok(Self);
        }
        authenticate(token, state).await?.0.require(Role::Admin)?;
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for (h, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("bEaReR   abc  ", Some("abc")),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("Bearer", None),
            ("Bearer    ", None),
            ("Bearerx abc", None),
            ("", None),
        ] {
            assert_eq!(bearer_token(h), want, "{h:?}");
        }
    }

    #[test]
    fn the_metrics_token_matches_only_itself() {
        let m = MetricsToken::new("scrape-0123456789");
        assert!(m.matches("scrape-0123456789"));
        assert!(!m.matches("scrape-0123456789x"));
        assert!(!m.matches(""));
    }
}
