//! Tokens against the real PostgreSQL: bootstrap rotation (a revoked token never returns),
//! the migration that flags old bootstrap rows, revocation with its audit rows.
mod common;

use common::Db;
use uuid::Uuid;
use voxfleet_store::tokens::{
    Revoked, Role, TokenRecord, create_token, create_token_by, ensure_bootstrap, find_token,
    hash_token, list_tokens, revoke_token,
};

async fn audits(db: &Db, action: &str, target: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND target = $2")
        .bind(action)
        .bind(target.to_string())
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

const A: &str = "bootstrap-a-0123456789";
const B: &str = "bootstrap-b-0123456789";

#[tokio::test]
async fn a_new_bootstrap_token_revokes_the_old_one_and_a_revoked_one_never_returns() {
    let db = Db::fresh().await;
    let a = ensure_bootstrap(&db.pool, A).await.unwrap();
    assert_eq!(
        ensure_bootstrap(&db.pool, A).await.unwrap(),
        a,
        "idempotent"
    );
    assert_eq!(audits(&db, "token.create", a).await, 1);
    let b = ensure_bootstrap(&db.pool, B).await.unwrap();
    assert_ne!(a, b);
    assert!(
        find_token(&db.pool, A).await.unwrap().is_none(),
        "rotated out"
    );
    assert_eq!(
        find_token(&db.pool, B).await.unwrap().map(|t| t.role),
        Some(Role::SuperAdmin)
    );
    assert_eq!(audits(&db, "token.rotate", a).await, 1);

    // back to A: refused, nothing changes
    let e = ensure_bootstrap(&db.pool, A).await.unwrap_err().to_string();
    assert!(
        e.contains("revoked") && e.contains("set a new VOXFLEET_ADMIN_TOKEN"),
        "{e}"
    );
    assert!(find_token(&db.pool, A).await.unwrap().is_none());
    assert!(find_token(&db.pool, B).await.unwrap().is_some());

    // revoked by hand: refused too
    assert!(matches!(
        revoke_token(&db.pool, b, None, "cli").await.unwrap(),
        Revoked::Now(r) if r.revoked_at.is_some() && r.bootstrap
    ));
    assert!(ensure_bootstrap(&db.pool, B).await.is_err());

    // another token's secret is not a bootstrap token
    let (_, user) = create_token(&db.pool, "u", Role::User).await.unwrap();
    let e = ensure_bootstrap(&db.pool, &user)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a bootstrap token"), "{e}");
    assert_eq!(
        find_token(&db.pool, &user).await.unwrap().map(|t| t.role),
        Some(Role::User),
        "not promoted"
    );
    let active: Vec<TokenRecord> = list_tokens(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.bootstrap && t.revoked_at.is_none())
        .collect();
    assert!(active.is_empty(), "{active:?}");
}

#[tokio::test]
async fn bootstrap_rows_from_before_the_flag_are_flagged_by_the_migration() {
    let db = Db::at_version(5).await;
    let old = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO api_tokens (id, name, role, token_sha256) \
         VALUES ($1, 'bootstrap', 'super_admin', $2)",
    )
    .bind(old)
    .bind(hash_token(A))
    .execute(&db.pool)
    .await
    .unwrap();
    voxfleet_store::db::MIGRATOR.run(&db.pool).await.unwrap();
    assert_eq!(ensure_bootstrap(&db.pool, A).await.unwrap(), old);
    ensure_bootstrap(&db.pool, B).await.unwrap();
    assert!(find_token(&db.pool, A).await.unwrap().is_none());
}

#[tokio::test]
async fn revoking_is_audited_once_and_lists_show_no_secrets() {
    let db = Db::fresh().await;
    let actor = ensure_bootstrap(&db.pool, A).await.unwrap();
    let (t, plain) = create_token_by(&db.pool, "speakr", Role::User, Some(actor))
        .await
        .unwrap();
    assert!(find_token(&db.pool, &plain).await.unwrap().is_some());
    let listed = list_tokens(&db.pool).await.unwrap();
    assert_eq!(listed.len(), 2);
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains(&plain) && !shown.contains(&hash_token(&plain)));
    assert!(
        listed
            .iter()
            .any(|r| r.id == t.id && r.last_used_at.is_some())
    );

    assert!(matches!(
        revoke_token(&db.pool, t.id, Some(actor), "api")
            .await
            .unwrap(),
        Revoked::Now(_)
    ));
    assert!(matches!(
        revoke_token(&db.pool, t.id, Some(actor), "api").await.unwrap(),
        Revoked::Already(r) if r.revoked_at.is_some()
    ));
    assert!(matches!(
        revoke_token(&db.pool, Uuid::now_v7(), None, "api")
            .await
            .unwrap(),
        Revoked::NotFound
    ));
    assert!(find_token(&db.pool, &plain).await.unwrap().is_none());
    assert_eq!(audits(&db, "token.revoke", t.id).await, 1);
    let by: Option<Uuid> = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'token.create' AND target = $1",
    )
    .bind(t.id.to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(by, Some(actor));
}
