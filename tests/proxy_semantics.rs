//! HTTP semantics of the proxied path, one test each: bodyless responses (HEAD, 204, 304),
//! close-delimited responses, `Expect: 100-continue`, an upstream that answers before the
//! request body is finished, HTTP/1.0 clients, a client that disconnects, hop-by-hop
//! headers in both directions, keep-alive on both sides, a pooled upstream connection
//! found closed, and HTTP/2 clients in front of an HTTP/1.1 upstream.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::scripted::{head_value, read_exactly, read_head, Scripted};
use common::*;

fn gateway(upstream: SocketAddr) -> TestGateway {
    GatewayBuilder::new(upstream)
        .route("/protected", "required")
        .route("/public", "public")
        .start()
}

/// Reads from `stream` until `done` says the bytes so far are enough (or 5 s pass).
fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&out) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(haystack).contains(needle)
}

/// Answers every request on a connection with `answer(head)`, keeping the connection.
fn answering(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Scripted {
    Scripted::start(move |_, mut reader| {
        while let Some(head) = read_head(&mut reader) {
            let len = head_value(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            if read_exactly(&mut reader, len).is_none() {
                return;
            }
            let reply = answer(&head);
            if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_head_response_has_its_length_but_no_body_and_the_connection_stays_usable() {
    let up = answering(|head| {
        if head.starts_with("HEAD") {
            "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n".into()
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into()
        }
    });
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"HEAD /public/file HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_until(&mut stream, |b| contains(b, "\r\n\r\n"));
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 50"),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "HEAD carried a body: {head:?}");
    stream
        .write_all(b"GET /public/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let next = read_until(&mut stream, |_| false);
    let next = http::parse_responses(&next).remove(0);
    assert_eq!((next.status, next.text().as_str()), (200, "ok"));
}

#[test]
fn bodyless_204_and_304_answers_keep_the_connection_usable() {
    let up = answering(|head| {
        if head.contains("/public/none") {
            "HTTP/1.1 204 No Content\r\n\r\n".into()
        } else if head.contains("/public/same") {
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".into()
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast".into()
        }
    });
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    let requests = [
        "DELETE /public/none HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /public/same HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\n\r\n",
    ];
    let mut bodyless = Vec::new();
    for req in requests {
        stream.write_all(req.as_bytes()).unwrap();
        let answer = read_until(&mut stream, |b| contains(b, "\r\n\r\n"));
        let text = String::from_utf8_lossy(&answer).to_string();
        assert!(text.ends_with("\r\n\r\n"), "a body followed: {text:?}");
        bodyless.push(http::parse_responses(&answer).remove(0));
    }
    assert_eq!((bodyless[0].status, bodyless[1].status), (204, 304));
    assert_eq!(bodyless[1].header("etag"), Some("\"v1\""));
    stream
        .write_all(b"GET /public/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let last = http::parse_responses(&read_until(&mut stream, |_| false)).remove(0);
    assert_eq!((last.status, last.text().as_str()), (200, "last"));
}

/// An upstream response framed by closing the connection reaches an HTTP/1.1 client
/// chunked (its connection survives) and an HTTP/1.0 client close-delimited.
#[test]
fn a_close_delimited_response_arrives_whole() {
    let up = Scripted::start(|_, mut reader| {
        if read_head(&mut reader).is_some() {
            let out = reader.get_mut();
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\npart one, ");
            std::thread::sleep(Duration::from_millis(50));
            let _ = out.write_all(b"part two");
        }
    });
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until(&mut stream, |b| contains(b, "0\r\n\r\n"));
    let resp = http::parse_responses(&answer).remove(0);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.text(), "part one, part two");
    // The HTTP/1.1 client's connection was kept for another request.
    stream
        .write_all(b"GET /public/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let again = read_until(&mut stream, |_| false);
    assert_eq!(
        http::parse_responses(&again).remove(0).text(),
        "part one, part two"
    );

    let old = raw(gw.addr, b"GET /public/c HTTP/1.0\r\n\r\n");
    assert_eq!(old.status, 200);
    assert_eq!(old.header("transfer-encoding"), None);
    assert_eq!(old.text(), "part one, part two");
}

/// The client waits for `100 Continue` before sending its body; the gateway sends it once
/// auth passed, and the upstream gets the body without the `Expect`. Refused requests get
/// their 401 without an invitation.
#[test]
fn expect_100_continue_is_answered_after_auth() {
    let up = Upstream::start();
    let gw = gateway(up.addr);
    let (access, _) = tokens_for(&gw, "alice");
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    let head = format!("POST /protected/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let interim = read_until(&mut stream, |b| contains(b, "\r\n\r\n"));
    assert!(
        String::from_utf8_lossy(&interim).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(b"hello").unwrap();
    let answer = read_until(&mut stream, |_| false);
    assert_eq!(http::parse_responses(&answer).remove(0).status, 200);
    let seen = up.last();
    assert_eq!(seen.body, b"hello");
    assert!(
        seen.header_values("expect").is_empty(),
        "{:?}",
        seen.headers
    );

    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"POST /protected/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let answer = read_until(&mut stream, |b| contains(b, "}"));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(!text.contains(" 100 "), "{text}");
}

/// The upstream refuses a large upload after its header: the client gets that answer
/// while still sending, and the connection is closed rather than reused mid-body.
#[test]
fn an_upstream_that_answers_before_the_body_ends_is_relayed() {
    let up = Scripted::start(|_, mut reader| {
        if read_head(&mut reader).is_some() {
            let body = r#"{"msg":"too big"}"#;
            let reply = format!("HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let _ = reader.get_mut().write_all(reply.as_bytes());
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    stream.write_all(&[b'x'; 1000]).unwrap();
    let answer = read_until(&mut stream, |b| contains(b, "too big"));
    let resp = http::parse_responses(&answer).remove(0);
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["msg"], "too big");
    assert_eq!(resp.header("connection"), Some("close"));
}

#[test]
fn an_http10_client_is_served_and_its_connection_closed() {
    let up = Upstream::start();
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"GET /public/old HTTP/1.0\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = read_until(&mut stream, |_| false);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "connection left open"
    );
    let resp = http::parse_responses(&answer).remove(0);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["target"], "/public/old");
    assert_eq!(up.last().target, "/public/old");
}

/// The client goes away while the upstream is still thinking: the gateway closes its
/// upstream connection instead of waiting for an answer nobody will read.
#[test]
fn a_client_that_disconnects_cancels_the_upstream_exchange() {
    let upstream_saw_close = Arc::new(AtomicBool::new(false));
    let saw = upstream_saw_close.clone();
    let up = Scripted::start(move |_, mut reader| {
        if read_head(&mut reader).is_none() {
            return;
        }
        let mut byte = [0u8; 1];
        // Never answers; waits (10 s at most) for the gateway to close.
        if matches!(reader.get_mut().read(&mut byte), Ok(0)) {
            saw.store(true, Ordering::SeqCst);
        }
    });
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"GET /public/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.connections() == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stream);
    while !upstream_saw_close.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the upstream connection stayed open after the client left"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hop_by_hop_and_connection_nominated_headers_are_stripped_both_ways() {
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    let up = answering(move |head| {
        *record.lock().unwrap() = head.to_string();
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\n\r\nok".into()
    });
    let gw = gateway(up.addr);
    let resp = send(
        gw.addr,
        "GET",
        "/public/hop",
        &[
            ("Connection", "X-Client-Hop"),
            ("X-Client-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("X-Client-Kept", "1"),
        ],
        None,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-kept"), Some("yes"));
    for gone in ["x-internal", "keep-alive", "proxy-authenticate"] {
        assert_eq!(resp.header(gone), None, "{gone} reached the client");
    }
    let head = seen.lock().unwrap().to_ascii_lowercase();
    assert!(head.contains("x-client-kept: 1"), "{head}");
    for gone in [
        "x-client-hop",
        "keep-alive",
        "te:",
        "proxy-authorization",
        "connection:",
    ] {
        assert!(!head.contains(gone), "{gone} reached the upstream: {head}");
    }
}

/// Three requests on one client connection travel on one upstream connection.
#[test]
fn keep_alive_is_honoured_on_both_sides() {
    let up = answering(|_| "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into());
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    for n in 0..3 {
        let close = if n == 2 { "Connection: close\r\n" } else { "" };
        let req = format!("GET /public/{n} HTTP/1.1\r\nHost: x\r\n{close}\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let answer = read_until(&mut stream, |b| contains(b, "\r\n\r\nok"));
        let resp = http::parse_responses(&answer).remove(0);
        assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
    }
    assert_eq!(up.connections(), 1);
}

/// The upstream closes its first connection on the second request without answering
/// (as a server closing an idle connection does): the gateway retries that body-less
/// request once on a fresh connection, and the client never sees the failure.
#[test]
fn a_pooled_upstream_connection_found_closed_is_retried_on_a_fresh_one() {
    let up = Scripted::start(|n, mut reader| {
        let mut served = 0;
        while read_head(&mut reader).is_some() {
            if n == 0 && served == 1 {
                return; // drop the connection, unanswered
            }
            served += 1;
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{n}");
            if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    });
    let gw = gateway(up.addr);
    let first = send(gw.addr, "GET", "/public/1", &[], None);
    assert_eq!((first.status, first.text().as_str()), (200, "0"));
    let second = send(gw.addr, "GET", "/public/2", &[], None);
    assert_eq!((second.status, second.text().as_str()), (200, "1"));
    assert_eq!(up.connections(), 2);
}

/// The same, with a body larger than the retry buffer (64 KiB) already sent: it cannot be
/// replayed, so the client gets a 502 JSON instead of a request silently cut short.
#[test]
fn a_closed_pooled_connection_with_a_lost_body_is_a_502() {
    let up = Scripted::start(|n, mut reader| {
        let mut served = 0;
        while let Some(head) = read_head(&mut reader) {
            if n == 0 && served == 1 {
                return;
            }
            served += 1;
            let len = head_value(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            if read_exactly(&mut reader, len).is_none() {
                return;
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let gw = gateway(up.addr);
    assert_eq!(send(gw.addr, "GET", "/public/1", &[], None).status, 200);
    let body = "b".repeat(200_000);
    let resp = send(gw.addr, "POST", "/public/upload", &[], Some(&body));
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.msg().starts_with("Bad gateway"), "{}", resp.msg());
}

/// curl speaks HTTP/2 (prior knowledge) to the gateway; the HTTP/1.1 upstream gets an
/// origin-form target and a `Host` from `:authority`.
#[test]
fn an_http2_request_reaches_an_http11_upstream_converted() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nh2c = true",
        )
        .route("/public", "public")
        .start();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "-",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .arg(format!("http://{}/public/h2?x=1", gw.addr))
        .args(["-H", "X-Probe: h2", "--data-binary", "h2 body", "-m", "10"])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n2 200"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = up.last();
    assert_eq!(seen.target, "/public/h2?x=1");
    assert_eq!(
        seen.header_values("host"),
        vec![gw.addr.to_string().as_str()]
    );
    assert_eq!(seen.header_values("x-probe"), vec!["h2"]);
    assert_eq!(seen.body, b"h2 body");
}

/// Without `[server] h2c` the plain listener speaks HTTP/1 only: an HTTP/2 prior-knowledge
/// client gets no HTTP/2 answer and nothing reaches the upstream.
#[test]
fn h2c_is_off_unless_configured() {
    let up = Upstream::start();
    let gw = gateway(up.addr);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}", "-m", "5"])
        .arg(format!("http://{}/public/h2", gw.addr))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.starts_with("2 200"), "{text}");
    assert_eq!(up.count(), 0);
}

/// An upstream that switches protocols on a request that asked for no upgrade gets the
/// client a 502, not a connection in an unknown state.
#[test]
fn an_unrequested_101_is_a_502() {
    let up = answering(|_| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
            .into()
    });
    let gw = gateway(up.addr);
    let resp = send(gw.addr, "GET", "/public/plain", &[], None);
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
}

/// The upstream sends its first tunnel bytes in the same write as its `101`: they reach
/// the client, and bytes then flow both ways over the tunnel.
#[test]
fn bytes_sent_with_the_101_reach_the_client_and_the_tunnel_carries_both_ways() {
    let up = Scripted::start(|_, mut reader| {
        if read_head(&mut reader).is_none() {
            return;
        }
        let _ = reader.get_mut().write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\ngreeting;",
        );
        if let Some(ping) = read_exactly(&mut reader, 4) {
            let mut reply = b"pong:".to_vec();
            reply.extend_from_slice(&ping);
            let _ = reader.get_mut().write_all(&reply);
        }
    });
    let gw = gateway(up.addr);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"GET /public/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .unwrap();
    let first = read_until(&mut stream, |b| contains(b, "greeting;"));
    let text = String::from_utf8_lossy(&first).to_string();
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.ends_with("\r\n\r\ngreeting;"), "{text}");
    stream.write_all(b"ping").unwrap();
    let reply = read_until(&mut stream, |b| contains(b, "pong:ping"));
    assert_eq!(String::from_utf8_lossy(&reply), "pong:ping");
}
