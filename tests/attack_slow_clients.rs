//! Slow clients: bodies and headers dribbled or stalled must be cut off by timeouts, and
//! must not keep the (single) worker from serving everyone else.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::http::{parse_responses, register_body, response_within};
use common::*;

/// A gateway that gives a client 1 s between reads, on one worker thread.
fn impatient() -> (TestGateway, Upstream) {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nclient_timeout = \"1s\"",
        )
        .route("/protected", "required")
        .route("/public", "public")
        .start();
    (gw, up)
}

/// Writes `head`, then one byte of `body` every `gap`, until the server answers or closes
/// the connection, or `give_up` passes. Returns how long the server let it go on, and the
/// answer if there was one.
fn dribble(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
    gap: Duration,
    give_up: Duration,
) -> (Duration, Option<Resp>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(gap)).unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in body.iter().cycle() {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if start.elapsed() > give_up {
            break;
        }
    }
    (start.elapsed(), parse_responses(&answer).into_iter().next())
}

/// A normal request on its own connection, timed.
fn timed_public_get(addr: SocketAddr) -> (u16, Duration) {
    let start = Instant::now();
    let resp = send(addr, "GET", "/public/ping", &[], None);
    (resp.status, start.elapsed())
}

fn assert_cut_off(what: &str, (lasted, answer): (Duration, Option<Resp>), bound: Duration) {
    assert!(
        lasted < bound,
        "{what}: the connection was still open after {lasted:?}"
    );
    if let Some(resp) = answer {
        assert!(
            matches!(resp.status, 400 | 408),
            "{what}: {} {}",
            resp.status,
            resp.text()
        );
    }
}

#[test]
fn a_stalled_body_is_cut_off_and_others_are_served_meanwhile() {
    let (gw, up) = impatient();
    let addr = gw.addr;
    let stalls: Vec<_> = ["/register", "/public/upload"]
        .into_iter()
        .map(|path| {
            std::thread::spawn(move || {
                let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"user");
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(head.as_bytes()).unwrap();
                let (resp, took) = response_within(&mut stream, Duration::from_secs(6));
                (path, resp, took)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = timed_public_get(addr);
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(900),
        "a normal request waited {took:?}"
    );
    for stall in stalls {
        let (path, resp, took) = stall.join().unwrap();
        assert!(
            took < Duration::from_secs(4),
            "{path}: still open after {took:?}"
        );
        if let Some(resp) = resp {
            assert!(
                matches!(resp.status, 400 | 408 | 502),
                "{path}: {} {}",
                resp.status,
                resp.text()
            );
        }
    }
    // The half-sent upload was not passed on as if it were complete (a proxy that closes
    // the upstream body cleanly on a client error would hand over a truncated one).
    assert!(
        up.requests().iter().all(|r| r.target != "/public/upload"),
        "{:?}",
        up.requests()
    );
}

#[test]
fn slow_clients_do_not_pin_the_worker() {
    let (gw, _up) = impatient();
    let addr = gw.addr;
    let body = register_body("slowpoke");
    let slow: Vec<_> = (0..12)
        .map(|i| {
            let body = body.clone();
            std::thread::spawn(move || {
                let (head, rest) = match i % 3 {
                    0 => (
                        format!(
                            "POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                            body.len() + 100
                        ),
                        body.into_bytes(),
                    ),
                    1 => (
                        "POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                            .to_string(),
                        vec![b'u'; 1000],
                    ),
                    _ => (
                        "GET /public/x HTTP/1.1\r\n".to_string(),
                        b"X-Slow: aaaa\r\n".to_vec(),
                    ),
                };
                dribble(
                    addr,
                    &head,
                    &rest,
                    Duration::from_millis(200),
                    Duration::from_secs(3),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let (status, took) = timed_public_get(addr);
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_millis(900),
            "a normal request waited {took:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for s in slow {
        s.join().unwrap();
    }
}

/// A client that sends one byte just inside every read timeout must still be cut off:
/// `client_timeout` has to bound the whole body, not each read.
#[test]
fn a_dribbled_body_on_an_auth_endpoint_is_cut_off() {
    let (gw, _up) = impatient();
    let body = register_body("slowpoke");
    let head = format!("POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len() + 1000);
    let outcome = dribble(
        gw.addr,
        &head,
        body.as_bytes(),
        Duration::from_millis(300),
        Duration::from_secs(8),
    );
    assert_cut_off(
        "body dribbled to /register",
        outcome,
        Duration::from_secs(5),
    );
}

/// A byte every 300 ms never leaves the body silent for `client_timeout` (1 s), so the
/// idle-gap limit alone would let it run for ever; `min_body_rate` (default 1 KiB/s,
/// averaged once the body has taken `client_timeout`) cuts it with 408.
#[test]
fn a_dribbled_upload_to_a_proxied_route_is_cut_off() {
    let (gw, up) = impatient();
    let head = "POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    let (lasted, answer) = dribble(
        gw.addr,
        head,
        &[b'u'; 1000],
        Duration::from_millis(300),
        Duration::from_secs(8),
    );
    assert!(
        lasted < Duration::from_secs(5),
        "the dribbled upload was still open after {lasted:?}"
    );
    let resp = answer.expect("the gateway answers before closing");
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    // Cut off, the upload is not passed on truncated as if it were complete.
    assert!(up.requests().iter().all(|r| r.body.len() == 1000));
}

#[test]
fn stalled_headers_are_cut_off() {
    let (gw, _up) = impatient();
    let outcome = dribble(
        gw.addr,
        "GET /public/x HTTP/1.1\r\nHost: x\r\n",
        b"X",
        Duration::from_secs(8),
        Duration::from_secs(8),
    );
    assert_cut_off("headers stalled", outcome, Duration::from_secs(5));
    let metrics = send(gw.ops_addr, "GET", "/metrics", &[], None).text();
    assert!(
        metrics.contains("authgate_header_timeouts_total 1\n"),
        "{metrics}"
    );
}

/// One header line every 300 ms never trips a per-read timeout; `client_timeout` bounds
/// the whole header.
#[test]
fn dribbled_headers_are_cut_off() {
    let (gw, _up) = impatient();
    let outcome = dribble(
        gw.addr,
        "GET /public/x HTTP/1.1\r\n",
        b"X-Slow: aaaa\r\n",
        Duration::from_millis(300),
        Duration::from_secs(8),
    );
    assert_cut_off("headers dribbled", outcome, Duration::from_secs(5));
}

/// The header deadline ends with the header: an upstream slower than `client_timeout`
/// (but within `upstream_read_timeout`) still gets its answer through.
#[test]
fn a_slow_upstream_answer_is_not_cut_by_the_header_deadline() {
    let up = Upstream::start_with(Behavior::Delay(Duration::from_millis(2500)));
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nclient_timeout = \"1s\"",
        )
        .route("/public", "public")
        .start();
    let resp = send(gw.addr, "GET", "/public/slow", &[], None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(up.last().target, "/public/slow");
}

/// A keep-alive connection serves a request sent within `keepalive_timeout` of the last
/// answer, and is closed once it has been idle longer than that, however long
/// `client_timeout` is.
#[test]
fn an_idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nclient_timeout = \"10s\"\nkeepalive_timeout = \"1s\"",
        )
        .route("/public", "public")
        .start();
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    let request = b"GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n";
    for pause in [Duration::ZERO, Duration::from_millis(500)] {
        std::thread::sleep(pause);
        stream.write_all(request).unwrap();
        let (resp, _) = response_within(&mut stream, Duration::from_secs(3));
        assert_eq!(
            resp.expect("an answer on the kept-alive connection").status,
            200
        );
    }
    assert_eq!(up.count(), 2);
    std::thread::sleep(Duration::from_millis(1800));
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the idle connection is still open: {other:?}"),
    }
}
