//! LLM token budgets: tokens per calendar month per user (`users.token_budget`; none:
//! unlimited) for the platform's own LLM work. The platform reserves before a call
//! ([`reserve`], refused past the budget, atomically with the user's row locked) and commits
//! the real count after ([`commit`]) or releases it ([`release`]); or it reports a call after
//! the fact ([`report`], never refused: the tokens were spent). A reservation left neither
//! committed nor released stops counting after [`RESERVATION_TTL_MINUTES`]. The month is the
//! budgets' month ([`crate::budgets::BudgetSettings`]).
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::StoreError;

/// How long an open reservation counts.
pub const RESERVATION_TTL_MINUTES: i64 = 60;
/// Longest operation name.
pub const MAX_OPERATION: usize = 64;

/// A user's LLM token budget this month.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenBudget {
    /// Tokens per month; None: unlimited.
    pub budget: Option<i64>,
    /// Committed or reported this month.
    pub used: i64,
    /// Held by open reservations.
    pub reserved: i64,
    /// (used + reserved) / budget × 100; None when unlimited.
    pub percent: Option<f64>,
    /// At or past the warning share.
    pub warning: bool,
}

/// One reservation or report.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LlmUsage {
    pub id: Uuid,
    pub operation: String,
    pub reserved: i64,
    /// The real count, once committed or reported.
    pub tokens: Option<i64>,
    /// `reserved`, `committed` or `released`.
    pub state: String,
    /// Who ran the call (`self_hosted` costs 0).
    pub connector: String,
    /// US dollars per million tokens, fixed when the row was written.
    pub unit_price_usd: f64,
    /// The committed tokens at that price (0 while reserved or once released).
    pub cost_usd: f64,
    pub at: DateTime<Utc>,
    pub committed_at: Option<DateTime<Utc>>,
}

/// Why an LLM usage change was refused.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{needed} tokens would exceed the monthly LLM token budget: {held} of {budget} are used or reserved"
    )]
    BudgetExceeded { budget: i64, held: i64, needed: i64 },
    #[error("no such reservation")]
    NotFound,
    #[error("the reservation is {0} already")]
    NotOpen(String),
    #[error("the connector `{0}` has no LLM price in /v1/settings/prices")]
    UnknownConnector(String),
}

impl From<sqlx::Error> for LlmError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

fn check(operation: &str, tokens: i64) -> Result<(), LlmError> {
    if operation.is_empty()
        || operation.len() > MAX_OPERATION
        || !operation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(LlmError::Invalid(format!(
            "`operation` must be 1-{MAX_OPERATION} letters, digits, `_`, `-` or `.` (e.g. `summary`)"
        )));
    }
    if !(0..=100_000_000).contains(&tokens) {
        return Err(LlmError::Invalid("`tokens` must be 0-100,000,000".into()));
    }
    Ok(())
}

/// US dollars per million tokens for `connector` now.
async fn unit_price(pool: &PgPool, connector: &str) -> Result<f64, LlmError> {
    crate::costs::check_connector(connector).map_err(LlmError::Invalid)?;
    crate::costs::get_prices(pool)
        .await?
        .llm_price(connector)
        .ok_or_else(|| LlmError::UnknownConnector(connector.to_string()))
}

/// What every statement here returns of a row; a macro for `concat!`.
macro_rules! returning {
    () => {
        " RETURNING id, operation, reserved, tokens, state, connector, unit_price_usd, \
          cost_usd, at, committed_at"
    };
}

/// Tokens used since `since`, and held by open reservations, for `owner`.
async fn used_and_reserved(
    con: &mut PgConnection,
    owner: Uuid,
    since: DateTime<Utc>,
) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT coalesce(sum(tokens) FILTER (WHERE state = 'committed' AND at >= $2), 0)::bigint, \
                coalesce(sum(reserved) FILTER (WHERE state = 'reserved' \
                    AND at > now() - make_interval(mins => $3)), 0)::bigint \
         FROM llm_usage WHERE owner = $1",
    )
    .bind(owner)
    .bind(since)
    .bind(RESERVATION_TTL_MINUTES as i32)
    .fetch_one(con)
    .await?)
}

/// `owner`'s token budget now.
pub async fn status(
    pool: &PgPool,
    owner: Uuid,
    now: DateTime<Utc>,
) -> Result<TokenBudget, StoreError> {
    let settings = crate::budgets::get_budget_settings(pool).await?;
    let mut con = pool.acquire().await?;
    let budget: Option<i64> = sqlx::query_scalar("SELECT token_budget FROM users WHERE id = $1")
        .bind(owner)
        .fetch_optional(&mut *con)
        .await?
        .flatten();
    let (used, reserved) = used_and_reserved(&mut con, owner, settings.month_start(now)).await?;
    let percent = budget.map(|b| (used + reserved) as f64 / b.max(1) as f64 * 100.0);
    Ok(TokenBudget {
        budget,
        used,
        reserved,
        percent,
        warning: percent.is_some_and(|p| p >= f64::from(settings.warn_percent)),
    })
}

/// Reserves `tokens` for `operation`, refused with [`LlmError::BudgetExceeded`] when it would
/// take `owner` past their budget (the user's row is locked, so parallel reservations cannot
/// overshoot).
pub async fn reserve(pool: &PgPool, owner: Uuid, call: &LlmCall<'_>) -> Result<LlmUsage, LlmError> {
    let LlmCall {
        operation, tokens, ..
    } = *call;
    check(operation, tokens)?;
    let price = unit_price(pool, call.connector).await?;
    let since = crate::budgets::get_budget_settings(pool)
        .await?
        .month_start(Utc::now());
    let mut tx = pool.begin().await?;
    let budget: Option<i64> =
        sqlx::query_scalar("SELECT token_budget FROM users WHERE id = $1 FOR UPDATE")
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
    if let Some(b) = budget {
        let (used, reserved) = used_and_reserved(&mut tx, owner, since).await?;
        if used + reserved + tokens > b {
            return Err(LlmError::BudgetExceeded {
                budget: b,
                held: used + reserved,
                needed: tokens,
            });
        }
    }
    let row = insert(&mut tx, owner, call, price, None).await?;
    tx.commit().await?;
    Ok(row)
}

/// An LLM call to reserve or report.
#[derive(Debug, Clone, Copy)]
pub struct LlmCall<'a> {
    pub operation: &'a str,
    pub tokens: i64,
    /// Priced in `/v1/settings/prices` (`self_hosted` costs 0).
    pub connector: &'a str,
}

/// Inserts a reservation of `call.tokens` (`tokens` None) or a committed report of `tokens`.
async fn insert(
    con: &mut PgConnection,
    owner: Uuid,
    call: &LlmCall<'_>,
    price: f64,
    tokens: Option<i64>,
) -> Result<LlmUsage, StoreError> {
    let reserved = if tokens.is_some() { 0 } else { call.tokens };
    Ok(sqlx::query_as(concat!(
        "INSERT INTO llm_usage (id, owner, operation, reserved, tokens, state, committed_at, \
                                connector, unit_price_usd, cost_usd) \
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 IS NULL THEN 'reserved' ELSE 'committed' END, \
                 CASE WHEN $5 IS NULL THEN NULL ELSE now() END, \
                 $6, $7, coalesce($5, 0) * $7 / 1e6)",
        returning!()
    ))
    .bind(Uuid::now_v7())
    .bind(owner)
    .bind(call.operation)
    .bind(reserved)
    .bind(tokens)
    .bind(call.connector)
    .bind(price)
    .fetch_one(con)
    .await?)
}

/// Records a call after the fact: its tokens count at once, whatever the budget says.
pub async fn report(pool: &PgPool, owner: Uuid, call: &LlmCall<'_>) -> Result<LlmUsage, LlmError> {
    check(call.operation, call.tokens)?;
    let price = unit_price(pool, call.connector).await?;
    let mut con = pool.acquire().await?;
    Ok(insert(&mut con, owner, call, price, Some(call.tokens)).await?)
}

/// Commits `owner`'s open reservation `id` with the real count (which may be above or below
/// the reservation).
pub async fn commit(
    pool: &PgPool,
    owner: Uuid,
    id: Uuid,
    tokens: i64,
) -> Result<LlmUsage, LlmError> {
    check("commit", tokens)?;
    close(pool, owner, id, Some(tokens)).await
}

/// Releases `owner`'s open reservation `id` (the call did not happen).
pub async fn release(pool: &PgPool, owner: Uuid, id: Uuid) -> Result<LlmUsage, LlmError> {
    close(pool, owner, id, None).await
}

async fn close(
    pool: &PgPool,
    owner: Uuid,
    id: Uuid,
    tokens: Option<i64>,
) -> Result<LlmUsage, LlmError> {
    let row: Option<LlmUsage> = sqlx::query_as(concat!(
        "UPDATE llm_usage SET tokens = $3, \
                state = CASE WHEN $3 IS NULL THEN 'released' ELSE 'committed' END, \
                committed_at = now(), cost_usd = coalesce($3, 0) * unit_price_usd / 1e6 \
         WHERE id = $1 AND owner = $2 AND state = 'reserved'",
        returning!()
    ))
    .bind(id)
    .bind(owner)
    .bind(tokens)
    .fetch_optional(pool)
    .await?;
    if let Some(r) = row {
        return Ok(r);
    }
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM llm_usage WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .fetch_optional(pool)
            .await?;
    Err(state.map_or(LlmError::NotFound, LlmError::NotOpen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_short_names_and_counts_are_bounded() {
        assert!(check("summary", 1200).is_ok());
        assert!(check("title.v2", 0).is_ok());
        for (op, n) in [("", 1), ("has space", 1), ("x", -1), ("x", 100_000_001)] {
            assert!(check(op, n).is_err(), "{op:?} {n}");
        }
    }
}
