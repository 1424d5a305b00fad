//! Reading users: one, by external id, the admin list with each one's usage, and usage.
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::model::{Role, User, UserUsage, UserWithUsage};
use crate::db::StoreError;

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: Option<String>,
    name: String,
    role: String,
    has_password: bool,
    public_sharing: bool,
    default_language: Option<String>,
    default_prompt: Option<String>,
    external_id: Option<String>,
    disabled: bool,
    transcription_budget_minutes: Option<i32>,
    token_budget: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    mfa_enabled: bool,
    locked_until: Option<DateTime<Utc>>,
}

/// The columns of a [`UserRow`] of `users u`, for `concat!`.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.name, u.role, u.password_hash IS NOT NULL AS has_password, \
         u.public_sharing, u.default_language, u.default_prompt, u.external_id, u.disabled, \
         u.transcription_budget_minutes, u.token_budget, u.created_at, u.updated_at, \
         u.last_login_at, u.mfa_enabled, \
         CASE WHEN u.locked_until > now() THEN u.locked_until END AS locked_until"
    };
}

fn user(r: UserRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.id,
        email: r.email,
        name: r.name,
        role: r.role.parse().map_err(StoreError::Invalid)?,
        has_password: r.has_password,
        public_sharing: r.public_sharing,
        default_language: r.default_language,
        default_prompt: r.default_prompt,
        external_id: r.external_id,
        disabled: r.disabled,
        transcription_budget_minutes: r.transcription_budget_minutes,
        token_budget: r.token_budget,
        created_at: r.created_at,
        updated_at: r.updated_at,
        last_login_at: r.last_login_at,
        mfa_enabled: r.mfa_enabled,
        locked_until: r.locked_until,
    })
}

pub(super) async fn fetch(
    con: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<User>, StoreError> {
    let sql = if lock {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.id = $1 AND u.deleting_at IS NULL FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.id = $1 AND u.deleting_at IS NULL"
        )
    };
    let row: Option<UserRow> = sqlx::query_as(sql).bind(id).fetch_optional(con).await?;
    row.map(user).transpose()
}

/// User `id` whether or not it is being deleted, and whether it is.
pub(super) async fn fetch_any(
    con: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(User, bool)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        deleting: bool,
    }
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        ", u.deleting_at IS NOT NULL AS deleting FROM users u WHERE u.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(con)
    .await?;
    row.map(|r| Ok((user(r.user)?, r.deleting))).transpose()
}

/// One user.
pub async fn get_user(pool: &PgPool, id: Uuid) -> Result<Option<User>, StoreError> {
    let mut con = pool.acquire().await?;
    fetch(&mut con, id, false).await
}

/// The user whose `external_id` this is.
pub async fn find_external(pool: &PgPool, external_id: &str) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.external_id = $1 AND u.deleting_at IS NULL"
    ))
    .bind(external_id)
    .fetch_optional(pool)
    .await?;
    row.map(user).transpose()
}

/// What [`list_users`] returns.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Part of the name or email, any case.
    pub query: Option<String>,
    pub role: Option<Role>,
    /// Keyset cursor (created_at, id): users created before it.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// `%`, `_` and `\` taken literally in a LIKE pattern.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[derive(sqlx::FromRow)]
struct ListRow {
    #[sqlx(flatten)]
    user: UserRow,
    recordings: i64,
    storage_bytes: i64,
    seconds: f64,
    llm_tokens: i64,
    cost_usd: f64,
}

/// Users newest first, each with their usage since `since` (the budget month's start:
/// `voxfleet_store::budgets::BudgetSettings::month_start`).
pub async fn list_users(
    pool: &PgPool,
    filter: &UserFilter,
    since: DateTime<Utc>,
) -> Result<Vec<UserWithUsage>, StoreError> {
    let rows: Vec<ListRow> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        ", coalesce(f.n, 0) AS recordings, coalesce(f.bytes, 0)::bigint AS storage_bytes, \
           coalesce(m.secs, 0)::float8 AS seconds, coalesce(t.n, 0)::bigint AS llm_tokens, \
           (coalesce(m.cost, 0) + coalesce(t.cost, 0))::float8 AS cost_usd \
         FROM users u \
         LEFT JOIN LATERAL (SELECT count(*) AS n, sum(size_bytes) AS bytes FROM files \
                            WHERE owner = u.id AND deleting_at IS NULL) f ON true \
         LEFT JOIN LATERAL (SELECT sum(audio_seconds) AS secs, sum(cost_usd) AS cost \
                            FROM usage_records \
                            WHERE owner = u.id AND kind = 'transcribe' AND at >= $1) m ON true \
         LEFT JOIN LATERAL (SELECT sum(tokens) AS n, sum(cost_usd) AS cost FROM llm_usage \
                            WHERE owner = u.id AND state = 'committed' AND at >= $1) t ON true \
         WHERE u.deleting_at IS NULL \
           AND ($2::text IS NULL OR u.name ILIKE $2 OR u.email ILIKE $2) \
           AND ($3::text IS NULL OR u.role = $3) \
           AND ($4::timestamptz IS NULL OR (u.created_at, u.id) < ($4, $5)) \
         ORDER BY u.created_at DESC, u.id DESC LIMIT $6"
    ))
    .bind(since)
    .bind(filter.query.as_deref().map(like_literal))
    .bind(filter.role.map(Role::as_str))
    .bind(filter.before.map(|b| b.0))
    .bind(filter.before.map(|b| b.1))
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(UserWithUsage {
                user: user(r.user)?,
                usage: UserUsage {
                    recordings: r.recordings,
                    storage_bytes: r.storage_bytes,
                    minutes_this_month: r.seconds / 60.0,
                    llm_tokens_this_month: r.llm_tokens,
                    cost_usd_this_month: r.cost_usd,
                },
            })
        })
        .collect()
}

/// A user's default transcription language and prompt (none for an unknown user).
pub async fn transcription_defaults(
    pool: &PgPool,
    id: Uuid,
) -> Result<(Option<String>, Option<String>), StoreError> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT default_language, default_prompt FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.unwrap_or_default())
}

/// One user's usage since `since` (the budget month's start).
pub async fn usage(pool: &PgPool, id: Uuid, since: DateTime<Utc>) -> Result<UserUsage, StoreError> {
    let (recordings, storage_bytes, secs, llm_tokens, cost_usd): (i64, i64, f64, i64, f64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM files WHERE owner = $1 AND deleting_at IS NULL), \
                (SELECT coalesce(sum(size_bytes), 0)::bigint FROM files \
                  WHERE owner = $1 AND deleting_at IS NULL), \
                m.secs, t.n, m.cost + t.cost \
             FROM (SELECT coalesce(sum(audio_seconds), 0)::float8 AS secs, \
                          coalesce(sum(cost_usd), 0)::float8 AS cost FROM usage_records \
                    WHERE owner = $1 AND kind = 'transcribe' AND at >= $2) m, \
                  (SELECT coalesce(sum(tokens), 0)::bigint AS n, \
                          coalesce(sum(cost_usd), 0)::float8 AS cost FROM llm_usage \
                    WHERE owner = $1 AND state = 'committed' AND at >= $2) t",
        )
        .bind(id)
        .bind(since)
        .fetch_one(pool)
        .await?;
    Ok(UserUsage {
        recordings,
        storage_bytes,
        minutes_this_month: secs / 60.0,
        llm_tokens_this_month: llm_tokens,
        cost_usd_this_month: cost_usd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_literal("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
