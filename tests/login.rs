//! POST /login over real HTTP: the contract's table, the deactivated account, and equal
//! treatment of unknown users.

mod common;

use common::*;
use serde_json::json;

#[test]
fn login_returns_user_and_a_new_session() {
    let (gw, _up) = standard();
    register(&gw, "alice");
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["msg"], "Login successful");
    assert_eq!(body["user"]["username"], "alice");
    assert!(body["user"]["id"].is_i64());
    let access = body["access_token"].as_str().unwrap();
    let protected = with_token(gw.addr, "GET", "/protected", access);
    assert_eq!(protected.status, 200);
}

#[test]
fn username_is_matched_case_insensitively() {
    let (gw, _up) = standard();
    register(&gw, "alice");
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "ALICE", "password": "Password123"}),
    );
    assert_eq!(resp.status, 200);
}

#[test]
fn missing_and_empty_fields() {
    let (gw, _up) = standard();
    let resp = post_json(gw.addr, "/login", &json!({"username": "alice"}));
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (400, "Missing required fields: password")
    );
    let resp = post_json(gw.addr, "/login", &json!({}));
    assert_eq!(resp.msg(), "Missing required fields: username, password");
    let resp = post_json(gw.addr, "/login", &json!({"username": "", "password": "x"}));
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (400, "Username and password required")
    );
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": ""}),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (400, "Username and password required")
    );
    let resp = send(
        gw.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/json")],
        Some("nope"),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (400, "Missing JSON in request")
    );
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let (gw, _up) = standard();
    register(&gw, "alice");
    let wrong = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Wrong12345"}),
    );
    let unknown = post_json(
        gw.addr,
        "/login",
        &json!({"username": "nobody", "password": "Wrong12345"}),
    );
    assert_eq!(
        (wrong.status, wrong.msg().as_str()),
        (401, "Invalid credentials")
    );
    assert_eq!((unknown.status, unknown.msg()), (wrong.status, wrong.msg()));
    assert_eq!(unknown.body, wrong.body);
}

#[test]
fn unknown_user_costs_a_password_verification() {
    // The fix over the original: an unknown username is verified against a dummy hash, so
    // it shows up in the hashing histogram exactly like a wrong password does.
    let (gw, _up) = standard();
    let before = scrape_hash_count(&gw);
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "nobody", "password": "Wrong12345"}),
    );
    assert_eq!(resp.status, 401);
    assert_eq!(scrape_hash_count(&gw), before + 1);
}

fn scrape_hash_count(gw: &TestGateway) -> u64 {
    let metrics = send(gw.ops_addr, "GET", "/metrics", &[], None).text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("authgate_password_hash_seconds_count "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn deactivated_account_is_refused_with_the_right_password_only() {
    let (gw, _up) = standard();
    let (_, refresh) = tokens_for(&gw, "carol");
    gw.db()
        .execute("UPDATE users SET active = false WHERE username = 'carol'");
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "carol", "password": "Password123"}),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Account is deactivated")
    );
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "carol", "password": "Wrong12345"}),
    );
    assert_eq!(resp.msg(), "Invalid credentials");
    let resp = with_token(gw.addr, "POST", "/refresh", &refresh);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Account is deactivated")
    );
}

#[test]
fn login_rate_limit_answers_429_with_headers() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .section("rate_limits", "login = \"3/5m\"\nregister = \"10/5m\"")
        .start();
    for _ in 0..3 {
        let resp = post_json(
            gw.addr,
            "/login",
            &json!({"username": "x", "password": "y"}),
        );
        assert_eq!(resp.status, 401);
    }
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "x", "password": "y"}),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (429, "Rate limit exceeded. Try again later.")
    );
    let retry_after: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(resp.header("ratelimit-policy"), Some("3;w=300"));
    assert!(resp.header("ratelimit").unwrap().contains("remaining=0"));
}
