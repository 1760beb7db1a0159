//! Several gateways on one PostgreSQL database: what one node commits, every node honours
//! at once (LISTEN/NOTIFY, not polling: the periodic sync is set far beyond the bound), and
//! uniqueness holds across nodes under concurrent registrations. Needs
//! `AUTHGATE_TEST_POSTGRES` (see `.ci/postgres`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::db::require_postgres;
use common::http::parse_responses;
use common::*;
use serde_json::json;

/// The fleet tests measure time: they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The target is 100 ms; the assertion leaves room for a loaded CI machine.
const BOUND: Duration = Duration::from_secs(1);

fn fleet(server: &str, nodes: usize, limits: &str) -> (Vec<TestGateway>, Upstream) {
    let up = Upstream::start();
    let db = Arc::new(TestDatabase::create_postgres(server));
    let builder = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        // Far beyond the bound: only a pushed notification can make it in time.
        .section(
            "database",
            "sync_interval = \"30s\"\nmax_staleness = \"120s\"",
        )
        .section("limits", limits)
        .database(db);
    let gws = (0..nodes).map(|_| builder.clone().start()).collect();
    (gws, up)
}

fn field(resp: &Resp, name: &str) -> String {
    resp.json()[name].as_str().unwrap_or_default().to_string()
}

/// Polls every node until each refuses `token` as revoked; returns how long that took.
fn until_rejected_everywhere(gws: &[TestGateway], token: &str, since: Instant) -> Duration {
    let mut pending: Vec<&TestGateway> = gws.iter().collect();
    while !pending.is_empty() {
        pending.retain(|gw| {
            let resp = with_token(gw.addr, "GET", "/protected", token);
            assert!(
                matches!(resp.status, 200 | 401),
                "unexpected {}: {}",
                resp.status,
                resp.text()
            );
            if resp.status == 401 {
                assert_eq!(resp.msg(), "Token has been revoked");
            }
            resp.status != 401
        });
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "a node still accepts the token after 10 s"
        );
    }
    since.elapsed()
}

fn summary(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let max = *samples.last().unwrap();
    eprintln!(
        "propagation ({label}, {} rounds, 3 nodes): min {:.1} ms, median {:.1} ms, max {:.1} ms",
        samples.len(),
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(max)
    );
    max
}

#[test]
#[cfg_attr(
    not(authgate_test_postgres),
    ignore = "needs PostgreSQL: set AUTHGATE_TEST_POSTGRES (`bash .ci/postgres start DIR` prints one)"
)]
fn a_logout_on_one_node_is_honoured_by_every_node_at_once() {
    let Some(server) = require_postgres("fleet_postgres") else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (gws, up) = fleet(&server, 3, "hash_threads = 2");
    // Register through the first, log in through the second, log out through the third.
    register(&gws[0], "alice");
    let mut logouts = Vec::new();
    for _ in 0..10 {
        let login = post_json(
            gws[1].addr,
            "/login",
            &json!({"username": "alice", "password": "Password123"}),
        );
        assert_eq!(login.status, 200, "{}", login.text());
        let access = field(&login, "access_token");
        for gw in &gws {
            assert_eq!(
                with_token(gw.addr, "GET", "/protected", &access).status,
                200
            );
        }
        let resp = with_token(gws[2].addr, "POST", "/logout", &access);
        assert_eq!(resp.status, 200, "{}", resp.text());
        logouts.push(until_rejected_everywhere(&gws, &access, Instant::now()));
    }
    let worst = summary("logout", logouts);
    assert!(worst < BOUND, "a logout took {worst:?} to reach every node");

    // Logout everywhere, from yet another node.
    let mut everywhere = Vec::new();
    for _ in 0..5 {
        let login = post_json(
            gws[0].addr,
            "/login",
            &json!({"username": "alice", "password": "Password123"}),
        );
        let access = field(&login, "access_token");
        assert_eq!(
            with_token(gws[2].addr, "GET", "/protected", &access).status,
            200
        );
        let resp = with_token(gws[1].addr, "POST", "/logout/all", &access);
        assert_eq!(resp.status, 200, "{}", resp.text());
        everywhere.push(until_rejected_everywhere(&gws, &access, Instant::now()));
        // A cutoff covers tokens issued in the same second: start the next round after it.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let worst = summary("logout everywhere", everywhere);
    assert!(worst < BOUND, "logout everywhere took {worst:?}");

    // Deactivation by the admin command, a process of its own.
    let login = post_json(
        gws[2].addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    let access = field(&login, "access_token");
    assert_eq!(
        with_token(gws[0].addr, "GET", "/protected", &access).status,
        200
    );
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(&gws[0].config_path)
        .args(["users", "deactivate", "alice"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let worst = summary(
        "deactivation",
        vec![until_rejected_everywhere(&gws, &access, Instant::now())],
    );
    assert!(worst < BOUND, "a deactivation took {worst:?}");
    let resp = post_json(
        gws[1].addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Account is deactivated")
    );
    assert!(up.count() > 0);
}

/// Like `common::send`, with patience for a machine busy hashing 200 passwords.
fn post_patiently(addr: SocketAddr, path: &str, body: &str) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    parse_responses(&out)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&out)))
}

#[test]
#[cfg_attr(
    not(authgate_test_postgres),
    ignore = "needs PostgreSQL: set AUTHGATE_TEST_POSTGRES (`bash .ci/postgres start DIR` prints one)"
)]
fn two_hundred_simultaneous_registrations_of_one_name_across_the_fleet_make_one_account() {
    let Some(server) = require_postgres("fleet_postgres") else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Every request is hashed (none sees the name taken before it starts), so the queue
    // must hold them all, for as long as they take: a 503 here would be the hash queue,
    // not the database.
    let (gws, _up) = fleet(
        &server,
        3,
        "hash_threads = 2\nhash_queue = 256\nhash_wait = \"10m\"",
    );
    let addrs: Vec<SocketAddr> = gws.iter().map(|g| g.addr).collect();
    let n = 200;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, addr) = (barrier.clone(), addrs[i % addrs.len()]);
            std::thread::spawn(move || {
                let body = json!({"username": "Contested", "email": format!("c{i}@example.com"), "password": "Password123"});
                barrier.wait();
                let resp = post_patiently(addr, "/register", &body.to_string());
                (resp.status, resp.msg())
            })
        })
        .collect();
    let results: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let created = results.iter().filter(|r| r.0 == 201).count();
    let conflicts = results
        .iter()
        .filter(|r| r.0 == 409 && r.1 == "Username already exists")
        .count();
    let others: Vec<_> = results
        .iter()
        .filter(|r| r.0 != 201 && r.0 != 409)
        .collect();
    assert!(others.is_empty(), "neither 201 nor 409: {others:?}");
    assert_eq!((created, conflicts), (1, n - 1));
    assert_eq!(
        gws[0]
            .db()
            .query_i64("SELECT count(*) FROM users WHERE username_key = 'contested'"),
        1
    );
    // The same holds for a name differing only in case.
    let resp = post_json(
        gws[2].addr,
        "/register",
        &json!({"username": "CONTESTED", "email": "other@example.com", "password": "Password123"}),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (409, "Username already exists")
    );
}
