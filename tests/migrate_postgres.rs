//! `authgate migrate --from sqlite:///… --to postgres://…`: a single gateway's SQLite
//! database moves to PostgreSQL and a gateway on it carries on where the old one stopped:
//! the same accounts, ids and roles, the same revoked sessions, the same spent refresh
//! tokens.
//! Needs `AUTHGATE_TEST_POSTGRES`.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::db::require_postgres;
use common::*;
use serde_json::json;

fn field(resp: &Resp, name: &str) -> String {
    resp.json()[name].as_str().unwrap_or_default().to_string()
}

fn migrate(from: &str, to: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["migrate", "--from", from, "--to", to])
        // No config file is needed, nor read.
        .arg("--config")
        .arg("/nonexistent/authgate.toml")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg_attr(
    not(authgate_test_postgres),
    ignore = "needs PostgreSQL: set AUTHGATE_TEST_POSTGRES (`bash .ci/postgres start DIR` prints one)"
)]
fn an_sqlite_database_moves_to_postgres_with_ids_revocations_and_spent_tokens() {
    let Some(server) = require_postgres("migrate_postgres") else {
        return;
    };
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = dir.path().join("old.db");
    let old = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .database(Arc::new(TestDatabase::Sqlite(sqlite_path.clone())))
        .start();
    let (alice, alice_refresh) = tokens_for(&old, "alice");
    let (bob, _) = tokens_for(&old, "Bob");
    let (carol, _) = tokens_for(&old, "carol");
    // A logged-out session, a logout everywhere, a spent refresh token, a deactivation.
    assert_eq!(with_token(old.addr, "POST", "/logout", &bob).status, 200);
    assert_eq!(
        with_token(old.addr, "POST", "/logout/all", &carol).status,
        200
    );
    let rotated = with_token(old.addr, "POST", "/refresh", &alice_refresh);
    assert_eq!(rotated.status, 200);
    old.db()
        .execute("UPDATE users SET active = false WHERE username = 'carol'");
    // Roles, granted the way an operator does.
    common::cli::authgate_ok(&old, &["users", "grant", "alice", "ops"], None);
    common::cli::authgate_ok(&old, &["users", "grant", "alice", "admin"], None);
    old.stop();

    let target = TestDatabase::create_postgres(&server);
    let from = format!("sqlite:///{}", sqlite_path.display());
    let (ok, out, err) = migrate(&from, &target.url());
    assert!(ok, "migrate failed: {err}");
    assert!(
        out.contains(
            "3 users, 1 revocations, 1 user cutoffs, 1 spent refresh tokens, 0 signing keys"
        ),
        "{out}"
    );
    assert!(!out.contains(":authgate@"), "password printed: {out}");
    // A second run would mix two databases: refused, nothing written.
    let (ok, _, err) = migrate(&from, &target.url());
    assert!(!ok && err.contains("already holds 3 accounts"), "{err}");

    let target = Arc::new(target);
    let gw = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .database(target.clone())
        .start();
    // Same secret, same ids: alice's token still works and names the same user.
    assert_eq!(with_token(gw.addr, "GET", "/protected", &alice).status, 200);
    assert_eq!(up.last().header_values("x-user-id"), vec!["1"]);
    for revoked in [&bob, &carol] {
        assert_eq!(
            with_token(gw.addr, "GET", "/protected", revoked).msg(),
            "Token has been revoked"
        );
    }
    // The spent refresh token stays spent: presenting it again is reuse.
    let reuse = with_token(gw.addr, "POST", "/refresh", &alice_refresh);
    assert_eq!(reuse.status, 401, "{}", reuse.text());
    let login = post_json(
        gw.addr,
        "/login",
        &json!({"username": "carol", "password": "Password123"}),
    );
    assert_eq!(login.msg(), "Account is deactivated");
    // Case-insensitive uniqueness came along, and new accounts continue after the old ids.
    let taken = post_json(
        gw.addr,
        "/register",
        &json!({"username": "bob", "email": "b2@example.com", "password": "Password123"}),
    );
    assert_eq!(taken.status, 409);
    let dave = register(&gw, "dave");
    assert_eq!(dave["user"]["id"], 4);
    let login = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &field(&login, "access_token")).status,
        200
    );
    assert_eq!(
        up.last().header_values("x-user-roles"),
        vec!["admin,ops"],
        "the roles came along"
    );

    let (ok, _, err) = migrate(&target.url(), &target.url());
    assert!(
        !ok && err.contains("--from must name an SQLite database"),
        "{err}"
    );
}

#[test]
fn signing_keys_move_along_sealed_and_their_tokens_stay_valid() {
    use common::signing::*;
    let Some(server) = require_postgres("migrate_postgres") else {
        return;
    };
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = dir.path().join("old.db");
    let old = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "")
        .route("/protected", "required")
        .database(Arc::new(TestDatabase::Sqlite(sqlite_path.clone())))
        .start();
    let (alice, _) = tokens_for(&old, "alice");
    let kid = header_of(&alice)["kid"].as_str().unwrap().to_string();
    old.stop();

    let target = TestDatabase::create_postgres(&server);
    let (ok, out, err) = migrate(
        &format!("sqlite:///{}", sqlite_path.display()),
        &target.url(),
    );
    assert!(ok, "migrate failed: {err}");
    assert!(out.contains(", 1 signing keys"), "{out}");

    let gw = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "")
        .route("/protected", "required")
        .database(Arc::new(target))
        .start();
    assert_eq!(published_kids(&gw), vec![kid.clone()]);
    assert_eq!(with_token(gw.addr, "GET", "/protected", &alice).status, 200);
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(
        header_of(resp.json()["access_token"].as_str().unwrap())["kid"],
        kid.as_str()
    );
}
