//! /logout and /refresh, and the token errors every required route shares.

mod common;

use common::*;

#[test]
fn refresh_issues_a_working_access_token() {
    let (gw, up) = standard();
    let (_, refresh) = tokens_for(&gw, "alice");
    let resp = with_token(gw.addr, "POST", "/refresh", &refresh);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.msg(), "Token refreshed");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let access = resp.json()["access_token"].as_str().unwrap().to_string();
    let resp = with_token(gw.addr, "GET", "/protected", &access);
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().header_values("x-user-id"), vec!["1"]);
}

#[test]
fn wrong_token_type_on_each_side() {
    let (gw, up) = standard();
    let (access, refresh) = tokens_for(&gw, "alice");
    let resp = with_token(gw.addr, "POST", "/refresh", &access);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Invalid token: Only refresh tokens are allowed")
    );
    let resp = with_token(gw.addr, "GET", "/protected", &refresh);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Invalid token: Only non-refresh tokens are allowed")
    );
    let resp = with_token(gw.addr, "POST", "/logout", &refresh);
    assert_eq!(
        resp.msg(),
        "Invalid token: Only non-refresh tokens are allowed"
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn refresh_for_a_deleted_user_is_404() {
    let (gw, _up) = standard();
    let (_, refresh) = tokens_for(&gw, "ghost");
    gw.db()
        .execute("DELETE FROM users WHERE username = 'ghost'");
    let resp = with_token(gw.addr, "POST", "/refresh", &refresh);
    assert_eq!((resp.status, resp.msg().as_str()), (404, "User not found"));
}

#[test]
fn logout_ends_the_whole_session() {
    let (gw, up) = standard();
    let (access, refresh) = tokens_for(&gw, "alice");
    let refreshed = with_token(gw.addr, "POST", "/refresh", &refresh).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = with_token(gw.addr, "POST", "/logout", &access);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (200, "Successfully logged out")
    );
    for token in [&access, &refreshed] {
        let resp = with_token(gw.addr, "GET", "/protected", token);
        assert_eq!(
            (resp.status, resp.msg().as_str()),
            (401, "Token has been revoked")
        );
    }
    let resp = with_token(gw.addr, "POST", "/refresh", &refresh);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Token has been revoked")
    );
    assert_eq!(up.count(), 0, "no revoked request reached the upstream");
}

#[test]
fn logout_leaves_other_sessions_alone() {
    let (gw, _up) = standard();
    let (first, _) = tokens_for(&gw, "alice");
    let login = post_json(
        gw.addr,
        "/login",
        &serde_json::json!({"username": "alice", "password": "Password123"}),
    );
    let second = login.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(with_token(gw.addr, "POST", "/logout", &first).status, 200);
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &second).status,
        200
    );
}

#[test]
fn revocation_survives_a_restart() {
    let up = Upstream::start();
    let builder = GatewayBuilder::new(up.addr).route("/protected", "required");
    let gw = builder.clone().start();
    let (access, refresh) = tokens_for(&gw, "alice");
    assert_eq!(with_token(gw.addr, "POST", "/logout", &access).status, 200);
    let again = builder.database_of(&gw).start();
    gw.stop();
    let resp = with_token(again.addr, "GET", "/protected", &access);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Token has been revoked")
    );
    assert_eq!(
        with_token(again.addr, "POST", "/refresh", &refresh).msg(),
        "Token has been revoked"
    );
    assert_eq!(again.db().query_i64("SELECT count(*) FROM revocations"), 1);
}

#[test]
fn a_second_gateway_on_the_same_database_learns_the_revocation() {
    let up = Upstream::start();
    // The default sync interval: the second process must reject within two intervals.
    let builder = GatewayBuilder::new(up.addr)
        .section("database", "sync_interval = \"1s\"")
        .route("/protected", "required");
    let first = builder.clone().start();
    let second = builder.database_of(&first).start();
    let (access, _) = tokens_for(&first, "alice");
    assert_eq!(
        with_token(second.addr, "GET", "/protected", &access).status,
        200
    );
    assert_eq!(
        with_token(first.addr, "POST", "/logout", &access).status,
        200
    );
    let logged_out = std::time::Instant::now();
    loop {
        let resp = with_token(second.addr, "GET", "/protected", &access);
        if resp.status == 401 {
            assert_eq!(resp.msg(), "Token has been revoked");
            break;
        }
        assert!(
            logged_out.elapsed() < std::time::Duration::from_millis(2500),
            "second gateway still accepts the token"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
#[cfg_attr(
    authgate_test_on_postgres,
    ignore = "a secret is generated beside an SQLite file only; PostgreSQL requires one configured"
)]
fn a_generated_secret_is_private_and_survives_a_restart() {
    let up = Upstream::start();
    let builder = GatewayBuilder::new(up.addr)
        .section("tokens", "secret = \"\"")
        .route("/protected", "required");
    let gw = builder.clone().start();
    let (access, _) = tokens_for(&gw, "alice");
    let secret_file = gw.db_path().with_extension("secret");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secret_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "secret file mode {mode:o}");
    let again = builder.database_of(&gw).start();
    gw.stop();
    assert_eq!(
        with_token(again.addr, "GET", "/protected", &access).status,
        200
    );
    // Not the test harness's secret: a token signed with that one is refused here.
    let forged = common::tokens::forge(&common::tokens::access_claims());
    assert_eq!(
        with_token(again.addr, "GET", "/protected", &forged).msg(),
        "Invalid token: Signature verification failed"
    );
}

#[test]
fn token_errors_of_the_contract() {
    let (gw, up) = standard();
    let resp = send(gw.addr, "GET", "/protected", &[], None);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Unauthorized: Missing Authorization Header")
    );
    let resp = send(
        gw.addr,
        "GET",
        "/protected",
        &[("Authorization", "Basic YWxpY2U6cHc=")],
        None,
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Unauthorized: Missing 'Bearer' type in 'Authorization' header. Expected 'Authorization: Bearer <JWT>'")
    );
    let resp = with_token(gw.addr, "GET", "/protected", "abc.def");
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Invalid token: Not enough segments")
    );
    let mut claims = common::tokens::access_claims();
    let bad_sig = common::tokens::sign(
        &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        b"another-secret-that-is-long-enough!!",
    );
    let resp = with_token(gw.addr, "GET", "/protected", &bad_sig);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Invalid token: Signature verification failed")
    );
    claims["exp"] = serde_json::json!(common::tokens::now() - 60);
    let resp = with_token(
        gw.addr,
        "GET",
        "/protected",
        &common::tokens::forge(&claims),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Token has expired")
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn logout_and_refresh_accept_post_only() {
    let (gw, _up) = standard();
    for path in ["/logout", "/refresh", "/login"] {
        let resp = send(gw.addr, "GET", path, &[], None);
        assert_eq!(
            (resp.status, resp.header("allow")),
            (405, Some("POST")),
            "{path}"
        );
    }
}

#[test]
fn a_token_seen_before_is_still_checked_for_revocation_and_expiry() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section("tokens", &format!("secret = \"{SECRET}\"\nleeway = \"0s\""))
        .route("/protected", "required")
        .start();
    let (access, _) = tokens_for(&gw, "alice");
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &access).status,
        200
    );
    assert_eq!(with_token(gw.addr, "POST", "/logout", &access).status, 200);
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &access).msg(),
        "Token has been revoked"
    );

    let mut claims = common::tokens::access_claims();
    claims["exp"] = serde_json::json!(common::tokens::now() + 1);
    let short = common::tokens::forge(&claims);
    assert_eq!(with_token(gw.addr, "GET", "/protected", &short).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let resp = with_token(gw.addr, "GET", "/protected", &short);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Token has expired")
    );
    assert_eq!(up.count(), 2);
}
