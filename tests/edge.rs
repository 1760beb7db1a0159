//! Operating at the edge: rate limits and client IPs, brute-force throttling, load
//! shedding, CORS and metrics, over real HTTP.

mod common;

use std::collections::HashMap;

use common::gateway::free_addr;
use common::*;
use serde_json::json;

fn register_body(name: &str) -> serde_json::Value {
    json!({"username": name, "email": format!("{name}@example.com"), "password": "Password123"})
}

fn post_from(gw: &TestGateway, path: &str, body: &serde_json::Value, xff: &str) -> Resp {
    send(
        gw.addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("X-Forwarded-For", xff),
        ],
        Some(&body.to_string()),
    )
}

#[test]
fn spoofed_forwarded_for_does_not_escape_the_register_limit() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section("rate_limits", "register = \"2/5m\"")
        .start();
    assert_eq!(
        post_from(&gw, "/register", &register_body("a1"), "1.1.1.1").status,
        201
    );
    assert_eq!(
        post_from(&gw, "/register", &register_body("a2"), "2.2.2.2").status,
        201
    );
    let resp = post_from(&gw, "/register", &register_body("a3"), "3.3.3.3");
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (429, "Rate limit exceeded. Try again later.")
    );
    assert!(resp.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(resp.header("ratelimit-policy"), Some("2;w=300"));
}

#[test]
fn trusted_proxy_forwarded_for_keys_the_limit_per_client() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\ntrusted_proxies = [\"127.0.0.1/32\"]",
        )
        .section("rate_limits", "register = \"1/5m\"")
        .start();
    assert_eq!(
        post_from(&gw, "/register", &register_body("b1"), "203.0.113.1").status,
        201
    );
    assert_eq!(
        post_from(&gw, "/register", &register_body("b2"), "203.0.113.2").status,
        201
    );
    assert_eq!(
        post_from(&gw, "/register", &register_body("b3"), "203.0.113.1").status,
        429
    );
}

#[test]
fn repeated_failures_lock_one_username_from_one_address_only() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\ntrusted_proxies = [\"127.0.0.1/32\"]",
        )
        .section("rate_limits", "login_failures = \"3/15m\"")
        .start();
    register(&gw, "victim");
    let wrong = json!({"username": "victim", "password": "Guess12345"});
    let right = json!({"username": "victim", "password": "Password123"});
    for _ in 0..3 {
        assert_eq!(
            post_from(&gw, "/login", &wrong, "198.51.100.66").status,
            401
        );
    }
    // Even the right password is refused from the attacking address now...
    let resp = post_from(&gw, "/login", &right, "198.51.100.66");
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (429, "Rate limit exceeded. Try again later.")
    );
    assert!(resp.header("retry-after").unwrap().parse::<u64>().unwrap() > 800);
    // ...but the owner, elsewhere, is not locked out, and a success resets their count.
    assert_eq!(post_from(&gw, "/login", &wrong, "192.0.2.10").status, 401);
    assert_eq!(post_from(&gw, "/login", &right, "192.0.2.10").status, 200);
}

#[test]
fn public_route_limit_is_per_ip_and_required_route_limit_is_per_user() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route_with("prefix = \"/public\"\nupstream = \"backend\"\nauth = \"public\"\nrate_limit = \"2/1m\"")
        .route_with("prefix = \"/api\"\nupstream = \"backend\"\nauth = \"required\"\nrate_limit = \"2/1m\"")
        .start();
    assert_eq!(send(gw.addr, "GET", "/public", &[], None).status, 200);
    assert_eq!(send(gw.addr, "GET", "/public", &[], None).status, 200);
    assert_eq!(send(gw.addr, "GET", "/public", &[], None).status, 429);
    let (alice, _) = tokens_for(&gw, "alice");
    let (bob, _) = tokens_for(&gw, "bob");
    assert_eq!(with_token(gw.addr, "GET", "/api", &alice).status, 200);
    assert_eq!(with_token(gw.addr, "GET", "/api", &alice).status, 200);
    assert_eq!(with_token(gw.addr, "GET", "/api", &alice).status, 429);
    assert_eq!(
        with_token(gw.addr, "GET", "/api", &bob).status,
        200,
        "bob has his own allowance"
    );
    assert_eq!(up.count(), 5);
}

/// Shed at once when the queue is full (`hash_queue = 0`), or once a login has waited
/// `hash_wait` for the one hashing thread.
#[test]
fn login_storm_is_shed_with_503_while_proxied_traffic_flows() {
    for limits in [
        "hash_threads = 1\nhash_queue = 0",
        "hash_threads = 1\nhash_queue = 64\nhash_wait = \"10ms\"",
    ] {
        login_storm_is_shed(limits);
    }
}

fn login_storm_is_shed(limits: &str) {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section("limits", limits)
        .route("/public", "public")
        .start();
    register(&gw, "storm");
    let addr = gw.addr;
    let storm: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let resp = post_json(
                    addr,
                    "/login",
                    &json!({"username": "storm", "password": "Password123"}),
                );
                (resp, started.elapsed())
            })
        })
        .collect();
    let proxied = send(gw.addr, "GET", "/public/during-storm", &[], None);
    assert_eq!(proxied.status, 200);
    let results: Vec<_> = storm.into_iter().map(|h| h.join().unwrap()).collect();
    let shed: Vec<_> = results.iter().filter(|(r, _)| r.status == 503).collect();
    assert!(
        !shed.is_empty(),
        "{limits}: no login was shed: {:?}",
        results.iter().map(|(r, _)| r.status).collect::<Vec<_>>()
    );
    assert!(results.iter().any(|(r, _)| r.status == 200));
    for (resp, elapsed) in shed {
        assert_eq!(resp.msg(), "Server busy, try again later");
        assert_eq!(resp.header("retry-after"), Some("1"));
        assert!(elapsed.as_secs() < 2, "shedding took {elapsed:?}");
    }
}

#[test]
fn cors_preflight_and_actual_requests() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "cors",
            "allowed_origins = [\"https://app.example.com\"]\nmax_age = \"1h\"",
        )
        .route("/protected", "required")
        .start();
    let preflight = |origin: &str, headers: &str| {
        send(
            gw.addr,
            "OPTIONS",
            "/protected/data",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", headers),
            ],
            None,
        )
    };
    let ok = preflight("https://app.example.com", "authorization, content-type");
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ok.header("access-control-max-age"), Some("3600"));
    assert!(ok
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
    assert_eq!(
        preflight("https://evil.example", "authorization").status,
        403
    );
    assert_eq!(
        preflight("https://app.example.com", "x-user-id").status,
        403
    );
    assert_eq!(up.count(), 0, "preflights never reach the upstream");

    let (access, _) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");
    let resp = send(
        gw.addr,
        "GET",
        "/protected",
        &[
            ("Authorization", &auth),
            ("Origin", "https://app.example.com"),
        ],
        None,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let resp = send(
        gw.addr,
        "GET",
        "/protected",
        &[("Origin", "https://app.example.com")],
        None,
    );
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let resp = send(
        gw.addr,
        "GET",
        "/protected",
        &[("Authorization", &auth), ("Origin", "https://evil.example")],
        None,
    );
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

#[test]
fn no_cors_headers_when_no_origin_is_configured() {
    let (gw, _up) = standard();
    let resp = send(
        gw.addr,
        "GET",
        "/public",
        &[("Origin", "https://app.example.com")],
        None,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

/// Parses the Prometheus text format into `name{labels}` -> value.
fn scrape(gw: &TestGateway) -> HashMap<String, f64> {
    let resp = send(gw.ops_addr, "GET", "/metrics", &[], None);
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    resp.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// Prometheus practice ("avoid missing metrics"): a fresh gateway exports every series
/// whose labels are known in advance, at 0, before anything happened.
#[test]
fn a_fresh_gateway_exports_every_known_series_at_zero() {
    let (gw, _up) = standard();
    let m = scrape(&gw);
    let expected = [
        "authgate_auth_failures_total{reason=\"missing\"}",
        "authgate_auth_failures_total{reason=\"malformed\"}",
        "authgate_auth_failures_total{reason=\"signature\"}",
        "authgate_auth_failures_total{reason=\"expired\"}",
        "authgate_auth_failures_total{reason=\"revoked\"}",
        "authgate_auth_failures_total{reason=\"wrong_type\"}",
        "authgate_auth_failures_total{reason=\"forbidden\"}",
        "authgate_logins_total{result=\"success\"}",
        "authgate_logins_total{result=\"invalid_credentials\"}",
        "authgate_logins_total{result=\"throttled\"}",
        "authgate_registrations_total{result=\"success\"}",
        "authgate_registrations_total{result=\"conflict\"}",
        "authgate_rate_limited_total{scope=\"public\"}",
        "authgate_rate_limited_total{scope=\"login\"}",
        "authgate_requests_total{route=\"/protected\",status_class=\"5xx\"}",
        "authgate_hash_rejected_total{reason=\"queue_full\"}",
        "authgate_hash_rejected_total{reason=\"wait\"}",
    ];
    for key in expected {
        assert_eq!(m.get(key), Some(&0.0), "{key} missing or not 0");
    }
    let upstream_errors: Vec<_> = m
        .iter()
        .filter(|(k, _)| k.starts_with("authgate_upstream_errors_total{"))
        .collect();
    assert_eq!(upstream_errors.len(), 1, "{upstream_errors:?}");
    assert_eq!(*upstream_errors[0].1, 0.0);
    let version = format!(
        "authgate_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&version), Some(&1.0), "{version}");
}

/// The state gauges an operator alerts on: how old the revocation state is against its
/// limit, and how many servers of each upstream pass their health check.
#[test]
fn state_gauges_describe_revocation_age_and_upstream_health() {
    let (gw, _up) = standard();
    let m = scrape(&gw);
    let age = m["authgate_revocation_sync_age_seconds"];
    assert!((0.0..5.0).contains(&age), "age {age}");
    assert!(m["authgate_revocation_max_staleness_seconds"] > 0.0);
    assert_eq!(m["authgate_upstream_servers{upstream=\"backend\"}"], 1.0);
    assert!(m["authgate_hash_queue_capacity"] >= 1.0);

    let dead = free_addr();
    let down = GatewayBuilder::new(dead)
        .route("/protected", "required")
        .start();
    let healthy_key = "authgate_upstream_healthy_servers{upstream=\"backend\"}";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let m = scrape(&down);
        if m.get(healthy_key) == Some(&0.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{m:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(scrape(&gw)[healthy_key], 1.0);
}

#[test]
fn metrics_count_what_happened_with_bounded_labels() {
    let (gw, _up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    with_token(gw.addr, "GET", "/protected/x", &access);
    send(gw.addr, "GET", "/protected/x", &[], None);
    with_token(gw.addr, "GET", "/protected/x", "not.a.jwt");
    post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "WrongPass1"}),
    );
    with_token(gw.addr, "POST", "/logout", &access);
    with_token(gw.addr, "GET", "/protected/x", &access);
    let m = scrape(&gw);
    assert_eq!(
        m["authgate_requests_total{route=\"/protected\",status_class=\"2xx\"}"],
        1.0
    );
    assert_eq!(
        m["authgate_requests_total{route=\"/protected\",status_class=\"4xx\"}"],
        3.0
    );
    assert_eq!(m["authgate_registrations_total{result=\"success\"}"], 1.0);
    assert_eq!(
        m["authgate_logins_total{result=\"invalid_credentials\"}"],
        1.0
    );
    assert_eq!(m["authgate_auth_failures_total{reason=\"missing\"}"], 1.0);
    assert_eq!(m["authgate_auth_failures_total{reason=\"malformed\"}"], 1.0);
    assert_eq!(m["authgate_auth_failures_total{reason=\"revoked\"}"], 1.0);
    assert_eq!(m["authgate_tokens_revoked_total"], 1.0);
    assert_eq!(m["authgate_revocation_cache_entries"], 1.0);
    assert!(m["authgate_request_duration_seconds_count{route=\"/protected\"}"] >= 4.0);
    assert!(m["authgate_password_hash_seconds_count"] >= 2.0);
    assert!(m.contains_key("authgate_hash_queue_depth"));
    for key in m.keys() {
        assert!(
            !key.contains("alice") && !key.contains("127.0.0.1") && !key.contains("/protected/x"),
            "unbounded label: {key}"
        );
    }
}
