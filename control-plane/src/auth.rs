//! Bearer-token authentication. Tokens are looked up by their SHA-256 in PostgreSQL; a short
//! in-process cache keeps lookups off the hot submission path (a revoked token stops working
//! within the cache TTL).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;
use voxfleet_store::tokens::{Role, TokenInfo, find_token, hash_token};

use crate::AppState;
use crate::error::{ApiError, Code};

const CACHE_TTL: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<String, (Option<TokenInfo>, Instant)>>,
}

/// The caller, as established from its bearer token.
#[derive(Debug, Clone)]
pub struct Auth {
    pub token_id: Uuid,
    pub role: Role,
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
        self.is_admin() || owner == Some(self.token_id)
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthorized,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
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
            info.ok_or_else(|| ApiError::new(Code::Unauthorized, "unknown or revoked token"))?;
        Ok(Auth {
            token_id: info.id,
            role: info.role,
        })
    }
}
