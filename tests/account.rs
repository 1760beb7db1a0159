//! Self-service accounts: `GET /me`, `POST /password` and `DELETE /me`, as a client sees
//! them, with their bad-input cases; and their paths moved or turned off.

mod common;

use common::*;
use serde_json::{json, Value};

fn field(resp: &Resp, name: &str) -> String {
    resp.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", resp.text()))
        .to_string()
}

fn login(gw: &TestGateway, username: &str, password: &str) -> Resp {
    post_json(
        gw.addr,
        "/login",
        &json!({"username": username, "password": password}),
    )
}

/// `method path` with a Bearer token and a JSON body.
fn call(gw: &TestGateway, method: &str, path: &str, token: &str, body: &str) -> Resp {
    send(
        gw.addr,
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        Some(body),
    )
}

fn status_msg(resp: &Resp) -> (u16, String) {
    (resp.status, resp.msg())
}

#[test]
fn me_shows_the_account_as_stored() {
    let (gw, up) = standard();
    let body = register(&gw, "alice");
    let (access, refresh) = (
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );
    let me = with_token(gw.addr, "GET", "/me", access);
    assert_eq!(me.status, 200, "{}", me.text());
    let user = &me.json()["user"];
    assert_eq!(user["id"], body["user"]["id"]);
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["roles"], json!([]));
    let created_at = user["created_at"]
        .as_i64()
        .expect("created_at is unix seconds");
    assert!(
        (common::tokens::now() - created_at).abs() < 60,
        "{created_at}"
    );
    assert_eq!(me.header("content-type"), Some("application/json"));

    let missing = send(gw.addr, "GET", "/me", &[], None);
    assert_eq!(
        status_msg(&missing),
        (401, "Unauthorized: Missing Authorization Header".into())
    );
    assert_eq!(
        status_msg(&with_token(gw.addr, "GET", "/me", refresh)),
        (
            401,
            "Invalid token: Only non-refresh tokens are allowed".into()
        )
    );
    let wrong_method = with_token(gw.addr, "PUT", "/me", access);
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, DELETE"));
    assert_eq!(up.count(), 0, "the gateway answers /me itself");
}

#[test]
fn a_password_change_ends_every_other_session_and_continues_this_one() {
    let (gw, up) = standard();
    let (access, refresh) = tokens_for(&gw, "alice");
    let other = login(&gw, "alice", "Password123");
    let (other_access, other_refresh) = (
        field(&other, "access_token"),
        field(&other, "refresh_token"),
    );

    let bad = [
        ("{}", 400, "Missing required fields: current_password, new_password"),
        (
            r#"{"current_password": "Password123"}"#,
            400,
            "Missing required fields: new_password",
        ),
        ("not json", 400, "Missing JSON in request"),
        (
            r#"{"current_password": "Password123", "new_password": "short1"}"#,
            400,
            "Password must be at least 8 characters and contain at least one letter and one number.",
        ),
        (
            r#"{"current_password": "", "new_password": "NewPassword456"}"#,
            400,
            "Password required",
        ),
        (
            r#"{"current_password": "Wrong123", "new_password": "NewPassword456"}"#,
            401,
            "Invalid credentials",
        ),
    ];
    for (body, status, msg) in bad {
        let resp = call(&gw, "POST", "/password", &access, body);
        assert_eq!(status_msg(&resp), (status, msg.into()), "{body}");
    }
    let good = r#"{"current_password": "Password123", "new_password": "NewPassword456"}"#;
    assert_eq!(
        status_msg(&call(&gw, "POST", "/password", &refresh, good)),
        (
            401,
            "Invalid token: Only non-refresh tokens are allowed".into()
        )
    );
    let get = with_token(gw.addr, "GET", "/password", &access);
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    // Nothing so far changed anything.
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &other_access).status,
        200
    );

    let changed = call(&gw, "POST", "/password", &access, good);
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!(changed.msg(), "Password changed");
    assert_eq!(changed.header("cache-control"), Some("no-store"));
    let (new_access, new_refresh) = (
        field(&changed, "access_token"),
        field(&changed, "refresh_token"),
    );

    for old in [&access, &other_access] {
        assert_eq!(
            status_msg(&with_token(gw.addr, "GET", "/protected", old)),
            (401, "Token has been revoked".into())
        );
    }
    for old in [&refresh, &other_refresh] {
        assert_eq!(
            with_token(gw.addr, "POST", "/refresh", old).msg(),
            "Token has been revoked"
        );
    }
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &new_access).status,
        200
    );
    let refreshed = with_token(gw.addr, "POST", "/refresh", &new_refresh);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    assert_eq!(
        status_msg(&login(&gw, "alice", "Password123")),
        (401, "Invalid credentials".into())
    );
    assert_eq!(login(&gw, "alice", "NewPassword456").status, 200);
    assert_eq!(
        up.count(),
        2,
        "only the valid /protected requests were forwarded"
    );
}

#[test]
fn wrong_current_passwords_count_towards_the_login_throttle() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "rate_limits",
            "register = \"10000/1m\"\nlogin = \"10000/1m\"\nrefresh = \"10000/1m\"\nlogin_failures = \"3/15m\"",
        )
        .start();
    let (access, _) = tokens_for(&gw, "alice");
    let wrong = r#"{"current_password": "Wrong1234", "new_password": "NewPassword456"}"#;
    for _ in 0..3 {
        assert_eq!(call(&gw, "POST", "/password", &access, wrong).status, 401);
    }
    let right = r#"{"current_password": "Password123", "new_password": "NewPassword456"}"#;
    let throttled = call(&gw, "POST", "/password", &access, right);
    assert_eq!(
        status_msg(&throttled),
        (429, "Rate limit exceeded. Try again later.".into())
    );
    assert!(throttled.header("retry-after").is_some());
    // The same count as /login's: the pair is throttled there too.
    assert_eq!(login(&gw, "alice", "Password123").status, 429);
    let deleting = call(
        &gw,
        "DELETE",
        "/me",
        &access,
        r#"{"password": "Password123"}"#,
    );
    assert_eq!(deleting.status, 429);
}

#[test]
fn deleting_the_account_refuses_its_tokens_at_once_and_frees_the_name() {
    let (gw, up) = standard();
    let body = register(&gw, "alice");
    let old_id = body["user"]["id"].as_i64().unwrap();
    let (access, refresh) = (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    );
    let other_access = field(&login(&gw, "alice", "Password123"), "access_token");
    let (bob_access, _) = tokens_for(&gw, "bob");

    for (body, status, msg) in [
        ("{}", 400, "Missing required fields: password"),
        ("[1]", 400, "Missing JSON in request"),
        (r#"{"password": ""}"#, 400, "Password required"),
        (r#"{"password": "Wrong1234"}"#, 401, "Invalid credentials"),
    ] {
        let resp = call(&gw, "DELETE", "/me", &access, body);
        assert_eq!(status_msg(&resp), (status, msg.into()), "{body}");
    }
    assert_eq!(
        call(
            &gw,
            "DELETE",
            "/me",
            &refresh,
            r#"{"password": "Password123"}"#
        )
        .msg(),
        "Invalid token: Only non-refresh tokens are allowed"
    );
    assert_eq!(with_token(gw.addr, "GET", "/me", &access).status, 200);

    let deleted = call(
        &gw,
        "DELETE",
        "/me",
        &access,
        r#"{"password": "Password123"}"#,
    );
    assert_eq!(
        status_msg(&deleted),
        (200, "Account deleted".into()),
        "{}",
        deleted.text()
    );
    for token in [&access, &other_access] {
        for path in ["/protected", "/me"] {
            assert_eq!(
                status_msg(&with_token(gw.addr, "GET", path, token)),
                (401, "Token has been revoked".into()),
                "{path}"
            );
        }
    }
    assert_eq!(
        with_token(gw.addr, "POST", "/refresh", &refresh).msg(),
        "Token has been revoked"
    );
    assert_eq!(
        status_msg(&login(&gw, "alice", "Password123")),
        (401, "Invalid credentials".into())
    );
    assert_eq!(
        gw.db()
            .query_i64("SELECT count(*) FROM users WHERE username_key = 'alice'"),
        0
    );
    assert_eq!(
        gw.db().query_i64(&format!(
            "SELECT count(*) FROM revocations WHERE kind = 'user' AND user_id = {old_id}"
        )),
        1,
        "the cutoff outlives the account"
    );

    // The same username and email can be registered again at once, as a new account
    // that none of the old tokens reach.
    let again = register(&gw, "alice");
    let new_id = again["user"]["id"].as_i64().unwrap();
    assert_ne!(new_id, old_id);
    let new_access = again["access_token"].as_str().unwrap();
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", new_access).status,
        200
    );
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &access).status,
        401
    );
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &bob_access).status,
        200
    );
    assert_eq!(up.count(), 2);
}

#[test]
fn account_paths_can_be_moved_and_turned_off() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section("account", "me_path = \"/account/me\"\npassword_path = \"\"")
        .route("/", "public")
        .start();
    let (access, _) = tokens_for(&gw, "alice");
    let me = with_token(gw.addr, "GET", "/account/me", &access);
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["user"]["username"], "alice");
    for path in ["/me", "/password"] {
        let resp = with_token(gw.addr, "POST", path, &access);
        assert_eq!(
            resp.status,
            200,
            "{path} belongs to the upstream: {}",
            resp.text()
        );
        assert_eq!(up.last().target, path);
    }
    assert_eq!(up.count(), 2);
}

#[test]
fn roles_show_in_me_and_in_tokens_only_when_held() {
    let (gw, _up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let payload = |token: &str| -> Value {
        use base64::Engine;
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert!(
        payload(&access).get("roles").is_none(),
        "no roles, no claim"
    );
    let out = common::cli::authgate_ok(&gw, &["users", "grant", "alice", "ops"], None);
    assert!(out.contains("role granted"), "{out}");
    let me = with_token(gw.addr, "GET", "/me", &access);
    assert_eq!(me.json()["user"]["roles"], json!(["ops"]));
    let fresh = field(&login(&gw, "alice", "Password123"), "access_token");
    assert_eq!(payload(&fresh)["roles"], json!(["ops"]));
}

#[test]
fn the_account_endpoints_are_rate_limited_per_client_ip() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "rate_limits",
            "register = \"10000/1m\"\nlogin = \"10000/1m\"\naccount = \"2/5m\"",
        )
        .start();
    let (access, _) = tokens_for(&gw, "alice");
    assert_eq!(with_token(gw.addr, "GET", "/me", &access).status, 200);
    assert_eq!(with_token(gw.addr, "GET", "/me", &access).status, 200);
    let limited = call(
        &gw,
        "POST",
        "/password",
        &access,
        r#"{"current_password": "Password123", "new_password": "NewPassword456"}"#,
    );
    assert_eq!(
        status_msg(&limited),
        (429, "Rate limit exceeded. Try again later.".into())
    );
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        login(&gw, "alice", "Password123").status,
        200,
        "nothing changed"
    );
}
