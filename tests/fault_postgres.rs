//! Losing the database: a gateway on PostgreSQL keeps serving valid, unrevoked tokens from
//! its revocation cache while the cache is within `max_staleness`, answers 503 JSON to
//! whatever needs the database, fails closed on required routes once the cache is stale,
//! and picks up where it left off when the database is back, with nothing lost. The
//! database is "lost" by cutting a TCP relay between the gateways and the server (the
//! shared test server itself cannot be stopped). Needs `AUTHGATE_TEST_POSTGRES`.

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::db::require_postgres;
use common::tcp_relay::TcpRelay;
use common::*;
use serde_json::json;

const STALENESS: Duration = Duration::from_secs(3);
/// The part of the window that is certainly within it: the last successful sync may have
/// been up to a (delayed) sync interval before the cut.
const SAFE_WINDOW: Duration = Duration::from_secs(2);

/// `host:port` of a `postgres://user:pass@host:port/db` URL.
fn server_addr(url: &str) -> (String, SocketAddr) {
    let after_at = &url[url.rfind('@').expect("URL with credentials") + 1..];
    let host_port = after_at.split('/').next().unwrap().to_string();
    let addr = host_port.to_socket_addrs().unwrap().next().unwrap();
    (host_port, addr)
}

fn field(resp: &Resp, name: &str) -> String {
    resp.json()[name].as_str().unwrap_or_default().to_string()
}

/// Polls until `token` gets `status` on `gw`, for at most `within`.
fn wait_for(gw: &TestGateway, token: &str, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let resp = with_token(gw.addr, "GET", "/protected", token);
        if resp.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "still {} after {within:?}: {}",
            resp.status,
            resp.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_unavailable(resp: &Resp, what: &str) {
    assert_eq!(resp.status, 503, "{what}: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    assert!(!resp.msg().is_empty(), "{what}: no msg");
}

#[test]
#[cfg_attr(
    not(authgate_test_postgres),
    ignore = "needs PostgreSQL: set AUTHGATE_TEST_POSTGRES (`bash .ci/postgres start DIR` prints one)"
)]
fn a_lost_database_keeps_valid_tokens_flowing_refuses_writes_and_loses_nothing() {
    let Some(server) = require_postgres("fault_postgres") else {
        return;
    };
    let db = Arc::new(TestDatabase::create_postgres(&server));
    let (host_port, pg) = server_addr(&server);
    let relay = TcpRelay::start(pg);
    let relayed = db.url().replace(&host_port, &relay.addr.to_string());
    let up = Upstream::start();
    let builder = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .section(
            "database",
            &format!(
                "sync_interval = \"200ms\"\nmax_staleness = \"{}s\"\nconnect_timeout = \"500ms\"\nquery_timeout = \"1s\"",
                STALENESS.as_secs()
            ),
        )
        .database(db.clone())
        .database_url(&relayed);
    let gws = [builder.clone().start(), builder.start()];

    let (alice, _) = tokens_for(&gws[0], "alice");
    let (bob, _) = tokens_for(&gws[1], "bob");
    assert_eq!(with_token(gws[1].addr, "POST", "/logout", &bob).status, 200);
    for gw in &gws {
        wait_for(gw, &bob, 401, Duration::from_secs(2));
        assert_eq!(with_token(gw.addr, "GET", "/protected", &alice).status, 200);
    }

    // Proxied load on both nodes for the whole test, every answer kept with its time.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let load = {
        let (stop, seen, token) = (stop.clone(), seen.clone(), alice.clone());
        let addrs: Vec<SocketAddr> = gws.iter().map(|g| g.addr).collect();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let status = with_token(addrs[i % 2], "GET", "/protected", &token).status;
                seen.lock().unwrap().push((sent, status));
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    let cut = Instant::now();
    relay.cut();
    // Within the staleness window: reads from the cache go on, writes are refused.
    for gw in &gws {
        assert_eq!(with_token(gw.addr, "GET", "/protected", &alice).status, 200);
        assert_eq!(
            with_token(gw.addr, "GET", "/protected", &bob).msg(),
            "Token has been revoked"
        );
        let resp = post_json(
            gw.addr,
            "/register",
            &json!({"username": "carol", "email": "carol@example.com", "password": "Password123"}),
        );
        assert_unavailable(&resp, "register while the database is away");
        let resp = post_json(
            gw.addr,
            "/login",
            &json!({"username": "alice", "password": "Password123"}),
        );
        assert_unavailable(&resp, "login while the database is away");
        assert_unavailable(
            &with_token(gw.addr, "POST", "/logout", &alice),
            "logout while the database is away",
        );
        assert_eq!(send(gw.ops_addr, "GET", "/readyz", &[], None).status, 503);
    }
    let window_checked = cut.elapsed();
    assert!(
        window_checked < SAFE_WINDOW,
        "the in-window checks took {window_checked:?}: too slow to prove anything"
    );

    // Past the window: required routes fail closed.
    for gw in &gws {
        wait_for(gw, &alice, 503, STALENESS * 3);
    }
    let closed = cut.elapsed();

    relay.restore();
    let restored = Instant::now();
    for gw in &gws {
        wait_for(gw, &alice, 200, Duration::from_secs(10));
    }
    let recovered = restored.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    let seen = seen.lock().unwrap();
    let in_window: Vec<u16> = seen
        .iter()
        .filter(|(t, _)| *t >= cut && *t < cut + SAFE_WINDOW)
        .map(|(_, s)| *s)
        .collect();
    assert!(!in_window.is_empty());
    assert!(
        in_window.iter().all(|s| *s == 200),
        "a valid token was refused within the staleness window: {in_window:?}"
    );
    assert!(
        seen.iter().all(|(_, s)| matches!(s, 200 | 503)),
        "answers other than 200/503 under load"
    );
    let failed_closed = seen.iter().filter(|(_, s)| *s == 503).count();
    eprintln!(
        "fault: {} proxied requests; {} served from the cache within the window; {failed_closed} refused once stale (after {closed:?}); recovered {recovered:?} after the database came back",
        seen.len(),
        in_window.len()
    );

    // Nothing was lost, and nothing refused was half-done.
    for gw in &gws {
        assert_eq!(
            with_token(gw.addr, "GET", "/protected", &bob).msg(),
            "Token has been revoked"
        );
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM users"), 2);
    assert_eq!(db.query_i64("SELECT count(*) FROM revocations"), 1);
    let resp = post_json(
        gws[1].addr,
        "/register",
        &json!({"username": "carol", "email": "carol@example.com", "password": "Password123"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let login = post_json(
        gws[1].addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(login.status, 200);
    // Writes work and reach the other node again.
    let fresh = field(&login, "access_token");
    assert_eq!(
        with_token(gws[0].addr, "POST", "/logout", &alice).status,
        200
    );
    wait_for(&gws[1], &alice, 401, Duration::from_secs(1));
    assert_eq!(
        with_token(gws[1].addr, "GET", "/protected", &fresh).status,
        200
    );
    assert_eq!(
        send(gws[0].ops_addr, "GET", "/readyz", &[], None).status,
        200
    );
}
