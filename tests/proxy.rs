//! The proxied path: identity headers, routing, upstream failures, security headers.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn upstream_gets_exactly_the_verified_identity() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");
    let spoofed = [
        ("Authorization", auth.as_str()),
        ("X-User-Id", "999"),
        ("x-user-id", "998"),
        ("X_User_Id", "997"),
        ("X-USER-NAME", "root"),
        ("X_User_Name", "root"),
    ];
    let resp = send(gw.addr, "GET", "/protected/data?x=1", &spoofed, None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["user_id"], "1");
    let seen = up.last();
    assert_eq!(seen.target, "/protected/data?x=1");
    assert_eq!(seen.header_values("x-user-id"), vec!["1"]);
    assert_eq!(seen.header_values("x-user-name"), vec!["alice"]);
    assert!(
        !seen.header_names().iter().any(|n| n.contains('_')),
        "{:?}",
        seen.headers
    );
}

#[test]
fn public_routes_forward_no_identity_at_all() {
    let (gw, up) = standard();
    let resp = send(
        gw.addr,
        "GET",
        "/public/info",
        &[("X-User-Id", "1"), ("x_user_name", "admin")],
        None,
    );
    assert_eq!(resp.status, 200);
    let seen = up.last();
    assert!(seen.header_values("x-user-id").is_empty());
    assert!(seen.header_values("x-user-name").is_empty());
    assert!(seen.header_values("x_user_name").is_empty());
}

#[test]
fn protected_example_contract_and_security_headers_on_proxied_responses() {
    let (gw, _up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let resp = with_token(gw.addr, "GET", "/protected", &access);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-upstream"), Some("recorder"));
    assert_eq!(
        resp.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
    assert!(resp.header("x-xss-protection").is_some());
}

#[test]
fn own_errors_are_json_with_security_headers() {
    let (gw, _up) = standard();
    let resp = send(gw.addr, "GET", "/nowhere", &[], None);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (404, "Resource not found")
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-frame-options"), Some("SAMEORIGIN"));
    let resp = send(gw.addr, "GET", "/protected", &[], None);
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn longest_prefix_wins_and_own_endpoints_beat_a_catch_all() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route("/", "required")
        .route("/public", "public")
        .route("/public/admin", "required")
        .start();
    assert_eq!(send(gw.addr, "GET", "/public/page", &[], None).status, 200);
    assert_eq!(
        send(gw.addr, "GET", "/public/admin/page", &[], None).status,
        401
    );
    assert_eq!(send(gw.addr, "GET", "/publicity", &[], None).status, 401);
    assert_eq!(send(gw.addr, "GET", "/anything", &[], None).status, 401);
    // /register is the gateway's even under a catch-all route.
    let resp = post_json(gw.addr, "/register", &serde_json::json!({}));
    assert_eq!(resp.status, 400);
    assert_eq!(
        up.requests()
            .iter()
            .map(|r| r.target.as_str())
            .collect::<Vec<_>>(),
        vec!["/public/page"]
    );
}

#[test]
fn unreachable_upstream_is_a_json_502() {
    let dead = common::gateway::free_addr();
    let gw = GatewayBuilder::new(dead).route("/public", "public").start();
    let resp = send(gw.addr, "GET", "/public", &[], None);
    assert_eq!(resp.status, 502);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.msg().starts_with("Bad gateway"), "{}", resp.msg());
}

#[test]
fn slow_upstream_is_a_json_504() {
    let up = Upstream::start_with(Behavior::Delay(Duration::from_secs(3)));
    let gw = GatewayBuilder::new(up.addr)
        .section("server", "threads = 1\nupstream_read_timeout = \"500ms\"")
        .route("/public", "public")
        .start();
    let resp = send(gw.addr, "GET", "/public", &[], None);
    assert_eq!(resp.status, 504);
    assert!(resp.msg().starts_with("Gateway timeout"), "{}", resp.msg());
}

#[test]
fn readyz_follows_the_upstream() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route("/public", "public")
        .start();
    let ready = send(gw.ops_addr, "GET", "/readyz", &[], None);
    assert_eq!(
        (ready.status, ready.json()["status"].as_str()),
        (200, Some("ready"))
    );
    drop(up);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let resp = send(gw.ops_addr, "GET", "/readyz", &[], None);
        if resp.status == 503 {
            assert!(resp.msg().contains("no healthy server"), "{}", resp.msg());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz still 200 with the upstream gone"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(send(gw.ops_addr, "GET", "/healthz", &[], None).status, 200);
}

#[test]
fn requests_are_spread_over_an_upstreams_servers_and_skip_a_dead_one() {
    let first = Upstream::start();
    let second = Upstream::start();
    let gw = GatewayBuilder::new(first.addr)
        .upstream("pair", vec![first.addr, second.addr])
        .route_with("prefix = \"/pair\"\nupstream = \"pair\"\nauth = \"public\"")
        .start();
    for _ in 0..10 {
        assert_eq!(send(gw.addr, "GET", "/pair", &[], None).status, 200);
    }
    assert_eq!((first.count(), second.count()), (5, 5));

    drop(first);
    // The health check runs every 200 ms; once it has seen the server gone, every
    // request goes to the live one.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut in_a_row = 0;
    while in_a_row < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "requests still reach the dead server"
        );
        let before = second.count();
        let status = send(gw.addr, "GET", "/pair", &[], None).status;
        in_a_row = if status == 200 && second.count() == before + 1 {
            in_a_row + 1
        } else {
            0
        };
    }
}

/// A gateway started before its only upstream server: the first check marks the server
/// down, and checks are an hour apart here. Once the server listens, the very next request
/// reaches it (every server marked down is tried anyway, and the answer decides).
#[test]
fn an_upstream_started_after_the_gateway_is_tried_at_once() {
    let addr = common::gateway::free_addr();
    let gw = GatewayBuilder::new(addr)
        .health_check_interval("1h")
        .route("/public", "public")
        .start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while send(gw.ops_addr, "GET", "/readyz", &[], None).status != 503 {
        assert!(std::time::Instant::now() < deadline, "never marked down");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let down = send(gw.addr, "GET", "/public/x", &[], None);
    assert_eq!(down.status, 502);
    assert_eq!(down.msg(), "Bad gateway: the upstream could not be reached");

    let up = Upstream::start_at(addr, Behavior::Echo);
    let resp = send(gw.addr, "GET", "/public/x", &[], None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(up.count(), 1);
    assert_eq!(up.last().target, "/public/x");
}
