//! `authgate backup PATH`: a copy taken while the gateway runs, restorable by pointing a
//! gateway at it: accounts log in, an ended session stays ended.

mod common;

use common::*;
use serde_json::json;

fn run_backup(gw: &TestGateway, destination: &std::path::Path) -> common::cli::CliOutput {
    common::cli::authgate(gw, &["backup", &destination.display().to_string()], None)
}

#[test]
#[cfg_attr(
    authgate_test_on_postgres,
    ignore = "backup copies an SQLite file; PostgreSQL is backed up with pg_dump"
)]
fn a_backup_taken_while_running_restores_accounts_and_revocations() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .start();
    let (ended, _) = tokens_for(&gw, "alice");
    assert_eq!(with_token(gw.addr, "POST", "/logout", &ended).status, 200);
    register(&gw, "bob");

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let out = run_backup(&gw, &copy);
    let stdout = &out.stdout;
    assert!(out.ok, "{stdout}{}", out.stderr);
    assert!(stdout.contains("(2 accounts"), "{stdout}");
    // The gateway kept running through the copy.
    assert_eq!(register(&gw, "carol")["user"]["username"], "carol");

    // A second backup to the same path is refused and leaves the first one whole.
    let again = run_backup(&gw, &copy);
    assert!(!again.ok);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);

    let restored = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .database_url(&copy.display().to_string())
        .start();
    let login = post_json(
        restored.addr,
        "/login",
        &json!({"username": "bob", "password": "Password123"}),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let refused = with_token(restored.addr, "GET", "/protected", &ended);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.msg(), "Token has been revoked");
    // Taken before carol registered: she is not in the copy.
    let carol = post_json(
        restored.addr,
        "/login",
        &json!({"username": "carol", "password": "Password123"}),
    );
    assert_eq!(carol.status, 401);
}
