//! Users against the real PostgreSQL: the migration that turns each token into a user on a
//! database an older release made, and the rules that protect accounts (self changes, the
//! last super_admin, roles that reach, unique emails, budgets), each with its audit row, and
//! deletion: hidden at once, removed once no file is left, usage kept.
mod common;

use chrono::Utc;
use common::Db;
use uuid::Uuid;
use voxfleet_store::audit::Actor;
use voxfleet_store::tokens::{
    Role, create_token, create_user_token, ensure_bootstrap, find_token, hash_token,
    list_user_tokens,
};
use voxfleet_store::users::{
    Acting, Marked, NewUser, UserError, UserFilter, UserPatch, create_user, finish_delete,
    get_user, list_users, mark_deleting, reset_password, update_user, verify_password,
};

/// The start of this month, as budgets count it (UTC by default).
fn month() -> chrono::DateTime<Utc> {
    voxfleet_store::budgets::BudgetSettings::default().month_start(Utc::now())
}

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: Some(email.into()),
        name: email.split('@').next().unwrap().into(),
        role,
        password: Some("long enough pw".into()),
        public_sharing: false,
        default_language: None,
        default_prompt: None,
        external_id: None,
        transcription_budget_minutes: None,
        token_budget: None,
    }
}

fn acting(user: Uuid, role: Role) -> Acting {
    Acting {
        actor: Actor {
            user: Some(user),
            ..Actor::default()
        },
        role: Some(role),
    }
}

async fn audit_count(db: &Db, action: &str, target: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND target = $2")
        .bind(action)
        .bind(target.to_string())
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_token_of_an_older_database_becomes_a_user_that_keeps_everything() {
    let db = Db::at_version(8).await;
    let (alice, bob, boot) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (id, name, role, secret, bootstrap) in [
        (
            alice,
            "alice's app",
            "user",
            "alice-secret-0123456789",
            false,
        ),
        (bob, "ops", "admin", "bob-secret-0123456789", false),
        (
            boot,
            "bootstrap",
            "super_admin",
            "boot-secret-0123456789",
            true,
        ),
    ] {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_sha256, bootstrap) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(role)
        .bind(hash_token(secret))
        .bind(bootstrap)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let file = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO files (id, owner, filename, size_bytes, sha256, storage_key) \
         VALUES ($1, $2, 'a.wav', 1234, 'x', 'k')",
    )
    .bind(file)
    .bind(alice)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
            processing_seconds) VALUES ($1, $2, $3, 'transcribe', 'tiny.en', 90, 3)",
    )
    .bind(Uuid::now_v7())
    .bind(alice)
    .bind(file)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO audit_log (actor, action) VALUES ($1, 'settings.retry')")
        .bind(bob)
        .execute(&db.pool)
        .await
        .unwrap();

    voxfleet_store::db::MIGRATOR.run(&db.pool).await.unwrap();

    let a = get_user(&db.pool, alice)
        .await
        .unwrap()
        .expect("alice's user");
    assert_eq!(
        (a.name.as_str(), a.role, a.email),
        ("alice's app", Role::User, None)
    );
    let t = find_token(&db.pool, "alice-secret-0123456789")
        .await
        .unwrap()
        .expect("alice's token still works");
    assert_eq!((t.id, t.user_id, t.role), (alice, alice, Role::User));
    assert_eq!(
        find_token(&db.pool, "bob-secret-0123456789")
            .await
            .unwrap()
            .map(|t| t.role),
        Some(Role::Admin)
    );
    let owner: Option<Uuid> = sqlx::query_scalar("SELECT owner FROM files WHERE id = $1")
        .bind(file)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(owner, Some(alice), "no owner rewritten");
    let listed = list_users(
        &db.pool,
        &UserFilter {
            limit: 10,
            ..Default::default()
        },
        month(),
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 3);
    let row = listed.iter().find(|r| r.user.id == alice).unwrap();
    assert_eq!(
        (row.usage.recordings, row.usage.storage_bytes),
        (1, 1234),
        "{row:?}"
    );
    assert!((row.usage.minutes_this_month - 1.5).abs() < 1e-9);
    let audited: Option<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM audit_log WHERE action = 'settings.retry'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(audited, Some(bob), "old audit rows name the user");

    // The bootstrap secret keeps working and a new one joins the same user.
    assert_eq!(
        ensure_bootstrap(&db.pool, "boot-secret-0123456789")
            .await
            .unwrap(),
        boot
    );
    let rotated = ensure_bootstrap(&db.pool, "boot-secret-2-0123456789")
        .await
        .unwrap();
    let info = find_token(&db.pool, "boot-secret-2-0123456789")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.id, info.user_id), (rotated, boot));
}

#[tokio::test]
async fn account_rules_hold_whoever_asks() {
    let db = Db::fresh().await;
    let root = create_user(
        &db.pool,
        new_user("root@example.org", Role::SuperAdmin),
        Acting::cli(),
    )
    .await
    .unwrap();
    let by_root = acting(root.id, Role::SuperAdmin);
    let admin = create_user(&db.pool, new_user("ann@example.org", Role::Admin), by_root)
        .await
        .unwrap();
    let by_admin = acting(admin.id, Role::Admin);
    assert_eq!(audit_count(&db, "admin.user.create", admin.id).await, 1);

    // Emails are unique whatever their case; bad input changes nothing.
    let e = create_user(&db.pool, new_user("ANN@example.org", Role::User), by_admin)
        .await
        .unwrap_err();
    assert!(matches!(e, UserError::EmailTaken), "{e:?}");
    for bad in [
        NewUser {
            password: Some("short".into()),
            ..new_user("x1@example.org", Role::User)
        },
        NewUser {
            transcription_budget_minutes: Some(5),
            ..new_user("x2@example.org", Role::User)
        },
        NewUser {
            token_budget: Some(123_456),
            ..new_user("x3@example.org", Role::User)
        },
        NewUser {
            default_language: Some("English".into()),
            ..new_user("x4@example.org", Role::User)
        },
        new_user("not-an-email", Role::User),
    ] {
        assert!(create_user(&db.pool, bad, by_admin).await.is_err());
    }
    assert_eq!(
        list_users(
            &db.pool,
            &UserFilter {
                limit: 50,
                ..Default::default()
            },
            month()
        )
        .await
        .unwrap()
        .len(),
        2
    );

    // An admin cannot make or touch super_admins.
    let e = create_user(
        &db.pool,
        new_user("s2@example.org", Role::SuperAdmin),
        by_admin,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UserError::Forbidden(_)), "{e:?}");
    let promote = UserPatch {
        role: Some(Role::SuperAdmin),
        ..Default::default()
    };
    let e = update_user(&db.pool, admin.id, promote.clone(), by_admin)
        .await
        .unwrap_err();
    assert!(
        matches!(e, UserError::SelfChange(_) | UserError::Forbidden(_)),
        "{e:?}"
    );
    let e = update_user(
        &db.pool,
        root.id,
        UserPatch {
            name: Some("x".into()),
            ..Default::default()
        },
        by_admin,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UserError::Forbidden(_)), "{e:?}");

    // Nobody changes their own role or disables themselves; the last super_admin stays.
    let demote = UserPatch {
        role: Some(Role::User),
        ..Default::default()
    };
    let disable = UserPatch {
        disabled: Some(true),
        ..Default::default()
    };
    for p in [demote.clone(), disable.clone()] {
        let e = update_user(&db.pool, root.id, p, by_root)
            .await
            .unwrap_err();
        assert!(matches!(e, UserError::SelfChange(_)), "{e:?}");
    }
    for p in [demote.clone(), disable.clone()] {
        let e = update_user(&db.pool, root.id, p, Acting::cli())
            .await
            .unwrap_err();
        assert!(matches!(e, UserError::LastSuperAdmin(_)), "{e:?}");
    }
    // With a second super_admin, the first can be demoted (by the other).
    let second = update_user(&db.pool, admin.id, promote, by_root)
        .await
        .unwrap();
    assert_eq!(second.role, Role::SuperAdmin);
    assert_eq!(
        audit_count(&db, "admin.user.role_change", admin.id).await,
        1
    );
    let by_second = acting(second.id, Role::SuperAdmin);
    let root = update_user(&db.pool, root.id, demote, by_second)
        .await
        .unwrap();
    assert_eq!(root.role, Role::User);

    // A disabled user's tokens authenticate nothing; re-enabled, they work again.
    let (tok, plain) = create_user_token(&db.pool, root.id, "laptop", None, by_second.actor)
        .await
        .unwrap();
    assert_eq!(tok.user_id, root.id);
    assert_eq!(list_user_tokens(&db.pool, root.id).await.unwrap().len(), 1);
    update_user(&db.pool, root.id, disable, by_second)
        .await
        .unwrap();
    assert!(
        find_token(&db.pool, &plain)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );

    // An expired token is not found at all.
    let (_, expired) = create_user_token(
        &db.pool,
        second.id,
        "old",
        Some(Utc::now() - chrono::Duration::seconds(1)),
        by_second.actor,
    )
    .await
    .unwrap();
    assert!(find_token(&db.pool, &expired).await.unwrap().is_none());

    // Password reset: the confirmation must match, the policy holds, the hash verifies.
    let e = reset_password(
        &db.pool,
        root.id,
        "new password 1",
        "new password 2",
        by_second,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, UserError::PasswordMismatch), "{e:?}");
    reset_password(
        &db.pool,
        root.id,
        "new password 1",
        "new password 1",
        by_second,
    )
    .await
    .unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(root.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(verify_password("new password 1", &hash));
    assert_eq!(
        audit_count(&db, "admin.user.password_reset", root.id).await,
        1
    );

    // A token made for a bare name is a service account of its own.
    let (info, _) = create_token(&db.pool, "speakr", Role::User).await.unwrap();
    let svc = get_user(&db.pool, info.user_id).await.unwrap().unwrap();
    assert_eq!(
        (svc.name.as_str(), svc.role, svc.email),
        ("speakr", Role::User, None)
    );
}

#[tokio::test]
async fn the_list_filters_by_name_or_email_and_pages() {
    let db = Db::fresh().await;
    for (i, email) in ["ann@a.org", "bob@b.org", "annette@c.org", "carl_x@d.org"]
        .into_iter()
        .enumerate()
    {
        let mut u = new_user(email, Role::User);
        u.name = format!("person {i}");
        create_user(&db.pool, u, Acting::cli()).await.unwrap();
    }
    let list = |q: Option<&str>, before, limit| {
        let pool = db.pool.clone();
        let q = q.map(str::to_string);
        async move {
            list_users(
                &pool,
                &UserFilter {
                    query: q,
                    role: None,
                    before,
                    limit,
                },
                month(),
            )
            .await
            .unwrap()
        }
    };
    let emails = |rows: &[voxfleet_store::users::UserWithUsage]| {
        rows.iter()
            .map(|r| r.user.email.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        emails(&list(Some("ANN"), None, 10).await),
        ["annette@c.org", "ann@a.org"]
    );
    assert_eq!(
        emails(&list(Some("_"), None, 10).await),
        ["carl_x@d.org"],
        "literal _"
    );
    assert_eq!(list(Some("person"), None, 10).await.len(), 4);
    let first = list(None, None, 2).await;
    let last = first.last().unwrap();
    let rest = list(None, Some((last.user.created_at, last.user.id)), 10).await;
    assert_eq!(emails(&first), ["carl_x@d.org", "annette@c.org"]);
    assert_eq!(emails(&rest), ["bob@b.org", "ann@a.org"]);
}

#[tokio::test]
async fn a_deleted_user_is_hidden_at_once_and_removed_only_without_files() {
    let db = Db::fresh().await;
    let root = create_user(
        &db.pool,
        new_user("root@example.org", Role::SuperAdmin),
        Acting::cli(),
    )
    .await
    .unwrap();
    let by_root = acting(root.id, Role::SuperAdmin);
    let e = mark_deleting(&db.pool, root.id, by_root).await.unwrap_err();
    assert!(matches!(e, UserError::SelfChange(_)), "{e:?}");
    let e = mark_deleting(&db.pool, root.id, Acting::cli())
        .await
        .unwrap_err();
    assert!(matches!(e, UserError::LastSuperAdmin(_)), "{e:?}");
    let admin = create_user(&db.pool, new_user("ann@example.org", Role::Admin), by_root)
        .await
        .unwrap();
    let e = mark_deleting(&db.pool, root.id, acting(admin.id, Role::Admin))
        .await
        .unwrap_err();
    assert!(matches!(e, UserError::Forbidden(_)), "{e:?}");

    let eve = create_user(&db.pool, new_user("eve@example.org", Role::User), by_root)
        .await
        .unwrap();
    let (_, plain) = create_user_token(&db.pool, eve.id, "phone", None, by_root.actor)
        .await
        .unwrap();
    let file = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO files (id, owner, filename, size_bytes, sha256, storage_key) \
         VALUES ($1, $2, 'e.wav', 10, 'x', 'k')",
    )
    .bind(file)
    .bind(eve.id)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO usage_records (job_id, owner, file_id, kind, model, audio_seconds, \
            processing_seconds) VALUES ($1, $2, $3, 'transcribe', 'tiny.en', 30, 1)",
    )
    .bind(Uuid::now_v7())
    .bind(eve.id)
    .bind(file)
    .execute(&db.pool)
    .await
    .unwrap();

    assert_eq!(
        mark_deleting(&db.pool, eve.id, by_root).await.unwrap(),
        Marked::Now
    );
    assert_eq!(
        mark_deleting(&db.pool, eve.id, by_root).await.unwrap(),
        Marked::Already
    );
    assert!(get_user(&db.pool, eve.id).await.unwrap().is_none());
    assert!(find_token(&db.pool, &plain).await.unwrap().is_none());
    let tombstoned: bool =
        sqlx::query_scalar("SELECT deleting_at IS NOT NULL FROM files WHERE id = $1")
            .bind(file)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(tombstoned, "the file is hidden with the account");
    assert!(
        finish_delete(&db.pool, eve.id).await.is_err(),
        "a file remains"
    );
    assert!(
        voxfleet_store::retention::finish_delete(&db.pool, file)
            .await
            .unwrap()
    );
    let done = finish_delete(&db.pool, eve.id).await.unwrap().unwrap();
    assert_eq!((done.tokens_deleted, done.usage_rows_detached), (1, 1));
    assert!(
        finish_delete(&db.pool, eve.id).await.unwrap().is_none(),
        "gone"
    );
    let owner: Option<Uuid> = sqlx::query_scalar("SELECT owner FROM usage_records")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(owner, None, "usage kept, detached");
}
