//! Client connections as a whole: `[server] max_connections` refuses connections past the
//! limit (and counts them) while the open ones keep working; `[server] keepalive_timeout`
//! bounds an idle keep-alive connection apart from `client_timeout`, and a request that
//! follows an idle gap is read whole; `[server] read_buffer_size` is validated and a small
//! buffer (or none, the default) still reads a large header.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{parse_responses, response_within};
use common::metrics::{self, scrape};
use common::*;

const GET_PUBLIC: &[u8] = b"GET /public/a HTTP/1.1\r\nHost: gateway\r\n\r\n";

/// What a client saw on one connection.
#[derive(Debug, PartialEq)]
enum Outcome {
    Answered(u16, Option<String>),
    /// Closed (or reset) by the gateway without an answer.
    Closed,
    /// Nothing at all within the bound.
    Silent,
}

/// Reads one answer (or the close) within `limit`.
fn outcome(stream: &mut TcpStream, limit: Duration) -> Outcome {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = parse_responses(&out).into_iter().next() {
            let length = r.header("content-length").and_then(|v| v.parse().ok());
            if r.body.len() >= length.unwrap_or(0) {
                return Outcome::Answered(r.status, r.header("retry-after").map(str::to_owned));
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return Outcome::Closed,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Outcome::Silent
            }
            Err(_) => return Outcome::Closed,
        }
    }
}

fn metrics(gw: &TestGateway) -> String {
    scrape(gw.ops_addr)
}

/// Polls the metrics (at most 10 s) until `line` is among them.
fn wait_for_metric(gw: &TestGateway, line: &str) {
    metrics::wait_for_metric(gw.ops_addr, line, Duration::from_secs(10));
}

fn limited_gateway(up: &Upstream, max_connections: usize) -> TestGateway {
    GatewayBuilder::new(up.addr)
        .section(
            "server",
            &format!(
                "threads = 1\nupstream_read_timeout = \"5s\"\nmax_connections = {max_connections}"
            ),
        )
        .route("/public", "public")
        .start()
}

/// 80 connections opened at once against `max_connections = 50`: 50 are served and stay
/// open, the other 30 are answered 503 with `Retry-After` or closed, quickly, and counted;
/// a served connection keeps working; once one closes, a new connection is served.
#[test]
fn connections_past_max_connections_are_refused_counted_and_later_admitted() {
    let up = Upstream::start();
    let gw = limited_gateway(&up, 50);
    // The harness's readiness probe was a connection too: wait until it is gone.
    wait_for_metric(&gw, "authgate_open_connections 0");
    assert!(metrics(&gw).contains("authgate_max_connections 50\n"));

    let mut streams: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(gw.addr).expect("connect"))
        .collect();
    for s in &mut streams {
        // A refused connection may already be closed: a failed write is an outcome too.
        let _ = s.write_all(GET_PUBLIC);
    }
    let started = Instant::now();
    let outcomes: Vec<Outcome> = streams
        .iter_mut()
        .map(|s| outcome(s, Duration::from_secs(10)))
        .collect();
    let served: Vec<usize> = (0..80)
        .filter(|&i| outcomes[i] == Outcome::Answered(200, None))
        .collect();
    let refused_503 = outcomes
        .iter()
        .filter(|o| **o == Outcome::Answered(503, Some("1".into())))
        .count();
    let closed = outcomes.iter().filter(|o| **o == Outcome::Closed).count();
    assert_eq!(served.len(), 50, "{outcomes:?}");
    assert_eq!(refused_503 + closed, 30, "{outcomes:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "every connection had its answer or its close well within the bound"
    );
    assert_eq!(
        up.count(),
        50,
        "only the served connections reached the upstream"
    );
    let text = metrics(&gw);
    assert!(
        text.contains("authgate_connections_refused_total 30\n"),
        "{text}"
    );
    assert!(text.contains("authgate_open_connections 50\n"), "{text}");

    // Still full: one more connection is refused too.
    let mut extra = TcpStream::connect(gw.addr).unwrap();
    let _ = extra.write_all(GET_PUBLIC);
    let refused = outcome(&mut extra, Duration::from_secs(5));
    assert!(
        matches!(refused, Outcome::Closed | Outcome::Answered(503, _)),
        "{refused:?}"
    );
    wait_for_metric(&gw, "authgate_connections_refused_total 31");

    // An open connection keeps working.
    let kept = &mut streams[served[0]];
    kept.write_all(GET_PUBLIC).unwrap();
    assert_eq!(
        outcome(kept, Duration::from_secs(5)),
        Outcome::Answered(200, None)
    );

    // One served client leaves: its slot is given back and a newcomer is served.
    let leaving = served[1];
    drop(streams.remove(leaving));
    wait_for_metric(&gw, "authgate_open_connections 49");
    let mut newcomer = TcpStream::connect(gw.addr).unwrap();
    newcomer.write_all(GET_PUBLIC).unwrap();
    assert_eq!(
        outcome(&mut newcomer, Duration::from_secs(5)),
        Outcome::Answered(200, None)
    );
    assert!(metrics(&gw).contains("authgate_connections_refused_total 31\n"));
}

/// Sends one request on `stream` and expects a 200 within 3 s.
fn served_on(stream: &mut TcpStream) {
    stream.write_all(GET_PUBLIC).unwrap();
    let (resp, _) = response_within(stream, Duration::from_secs(3));
    assert_eq!(resp.expect("an answer").status, 200);
}

/// Waits (at most `limit`) for the gateway to close `stream`; how long that took.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => start.elapsed(),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => start.elapsed(),
        other => panic!("the idle connection is still open: {other:?}"),
    }
}

/// `keepalive_timeout` longer than `client_timeout`: a connection idle for longer than
/// `client_timeout` between requests is still served, and closes once idle for
/// `keepalive_timeout`.
#[test]
fn keepalive_timeout_not_client_timeout_bounds_the_idle_gap() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nclient_timeout = \"1s\"\nkeepalive_timeout = \"3s\"",
        )
        .route("/public", "public")
        .start();
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    served_on(&mut stream);
    // Idle for longer than client_timeout, within keepalive_timeout.
    std::thread::sleep(Duration::from_millis(1800));
    served_on(&mut stream);
    assert_eq!(up.count(), 2);
    let idle = closed_within(&mut stream, Duration::from_secs(8));
    assert!(
        idle >= Duration::from_secs(2),
        "closed after {idle:?}, before keepalive_timeout (3 s)"
    );
}

/// A request on a connection that has been idle within `keepalive_timeout` still has only
/// `client_timeout` for its header once idle time is spent: a header stalled forever is
/// cut off, not left open.
#[test]
fn a_stalled_header_on_a_reused_connection_is_still_cut_off() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nclient_timeout = \"1s\"\nkeepalive_timeout = \"2s\"",
        )
        .route("/public", "public")
        .start();
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    served_on(&mut stream);
    stream
        .write_all(b"GET /public/b HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    closed_within(&mut stream, Duration::from_secs(8));
    assert_eq!(
        up.count(),
        1,
        "the stalled request never reached the upstream"
    );
}

/// A 4 KiB read buffer (`read_buffer_size = 4096`) still reads a 10 KB request header
/// whole: the upstream receives every header.
#[test]
fn a_small_read_buffer_still_reads_a_large_header() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nread_buffer_size = 4096",
        )
        .route("/public", "public")
        .start();
    let value = "v".repeat(1000);
    let headers: Vec<(String, String)> = (0..10)
        .map(|i| (format!("X-Big-{i}"), value.clone()))
        .collect();
    let borrowed: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = send(gw.addr, "GET", "/public/big", &borrowed, None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.last();
    for (name, v) in &headers {
        assert_eq!(seen.header_values(name), vec![v.as_str()], "{name}");
    }
}

/// The gateway on its default read buffer (none: reads go straight to the socket).
fn default_buffer_gateway(up: &Upstream) -> TestGateway {
    GatewayBuilder::new(up.addr)
        .section("server", "threads = 1\nupstream_read_timeout = \"5s\"")
        .route("/public", "public")
        .start()
}

/// A keep-alive connection waits for its next request holding no buffer; a request that
/// then arrives in pieces, with pauses, is still read whole and served, with its body.
#[test]
fn a_request_in_pieces_after_an_idle_gap_is_served_whole() {
    let up = Upstream::start();
    let gw = default_buffer_gateway(&up);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    served_on(&mut stream);
    std::thread::sleep(Duration::from_millis(300));
    for piece in [
        &b"P"[..],
        b"OST /public/pieces HTTP/1.1\r\nHost: gate",
        b"way\r\nX-Piece: yes\r\nContent-Length: 5\r\n\r\nhel",
        b"lo",
    ] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let (resp, _) = response_within(&mut stream, Duration::from_secs(3));
    assert_eq!(resp.expect("an answer").status, 200);
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/public/pieces");
    assert_eq!(seen.header_values("x-piece"), vec!["yes"]);
    assert_eq!(seen.body, b"hello");
    served_on(&mut stream);
    assert_eq!(up.count(), 3);
}

/// The next request's first read on a reused connection takes at most 4 KiB: a 10 KB header
/// arriving at once is still read whole, every header reaches the upstream.
#[test]
fn a_large_header_on_a_reused_connection_is_read_whole() {
    let up = Upstream::start();
    let gw = default_buffer_gateway(&up);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    served_on(&mut stream);
    let value = "v".repeat(1000);
    let mut request = b"GET /public/big HTTP/1.1\r\nHost: gateway\r\n".to_vec();
    for i in 0..10 {
        request.extend_from_slice(format!("X-Big-{i}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).unwrap();
    let (resp, _) = response_within(&mut stream, Duration::from_secs(3));
    assert_eq!(resp.expect("an answer").status, 200);
    let seen = up.last();
    assert_eq!(seen.target, "/public/big");
    for i in 0..10 {
        assert_eq!(
            seen.header_values(&format!("X-Big-{i}")),
            vec![value.as_str()]
        );
    }
}

/// A keep-alive client that closes its connection while it idles is let go (no answer,
/// nothing upstream), and the gateway keeps serving others.
#[test]
fn a_connection_closed_while_idle_is_let_go() {
    let up = Upstream::start();
    let gw = default_buffer_gateway(&up);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    served_on(&mut stream);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    closed_within(&mut stream, Duration::from_secs(3));
    assert_eq!(up.count(), 1);
    wait_for_metric(&gw, "authgate_open_connections 0");
    let mut other = TcpStream::connect(gw.addr).unwrap();
    served_on(&mut other);
}

/// Each new key is validated with an error that names it.
#[test]
fn connection_keys_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    for (line, key) in [
        ("max_connections = 0", "server.max_connections"),
        ("keepalive_timeout = \"500ms\"", "server.keepalive_timeout"),
        ("keepalive_timeout = \"0s\"", "server.keepalive_timeout"),
        ("read_buffer_size = 512", "server.read_buffer_size"),
        ("read_buffer_size = 4194304", "server.read_buffer_size"),
    ] {
        let path = dir.path().join("authgate.toml");
        let text = format!(
            "[server]\n{line}\n[[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8000\"]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"api\"\n"
        );
        std::fs::write(&path, text).unwrap();
        let err = authgate::config::load(&path).expect_err(line).to_string();
        assert!(err.contains(key), "{line}: {err}");
    }
}

/// With h2c on, pingora waits for enough bytes to tell an HTTP/2 preface from HTTP/1 with
/// no deadline of its own: a new connection that sends nothing, or only a few bytes, is
/// closed once `client_timeout` has passed, while HTTP/1 and HTTP/2 clients are served.
#[test]
fn with_h2c_a_silent_or_short_new_connection_is_closed_after_client_timeout() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nclient_timeout = \"1s\"\nkeepalive_timeout = \"30s\"\nh2c = true",
        )
        .route("/public", "public")
        .start();
    let mut silent = TcpStream::connect(gw.addr).unwrap();
    let mut short = TcpStream::connect(gw.addr).unwrap();
    short.write_all(b"PRI * HT").unwrap();
    for (name, stream) in [("silent", &mut silent), ("short", &mut short)] {
        let after = closed_within(stream, Duration::from_secs(8));
        assert!(
            after < Duration::from_secs(4),
            "{name} connection closed after {after:?}, client_timeout is 1 s"
        );
    }
    assert_eq!(up.count(), 0);
    let mut http1 = TcpStream::connect(gw.addr).unwrap();
    served_on(&mut http1);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}", "-m", "5"])
        .arg(format!("http://{}/public/h2", gw.addr))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    assert_eq!(up.count(), 2);
}
