//! Hostile requests: oversized and malformed bodies on the auth endpoints, and a request
//! smuggling corpus against a recording upstream. Slow clients are in attack_slow_clients.rs.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::http::{parse_responses, register_body, response_within};
use common::*;
use serde_json::json;

/// Sends `request`, then reads until the server closes or has been silent for `silence`.
fn exchange(addr: SocketAddr, request: &[u8], silence: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(silence)).unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Body limits and JSON

#[test]
fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let (gw, up) = standard();
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    let head = format!(
        "POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        16 * 1024 + 1
    );
    stream.write_all(head.as_bytes()).unwrap();
    // Not one body byte is sent: the answer must not wait for them.
    let (resp, took) = response_within(&mut stream, Duration::from_secs(3));
    let resp = resp.expect("no answer to an oversized Content-Length");
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (413, "Request body too large")
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The unread body must not be taken for the next request on the connection.
    let _ = stream.write_all(b"GET /public/after-413 HTTP/1.1\r\nHost: x\r\n\r\n");
    let (next, _) = response_within(&mut stream, Duration::from_secs(1));
    assert!(
        next.is_none(),
        "the connection went on after a 413: {next:?}"
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn a_chunked_body_past_the_limit_is_cut_off() {
    let (gw, _up) = standard();
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("1000\r\n{}\r\n", "a".repeat(0x1000));
    // 20 KiB of chunks and never the final one.
    for _ in 0..5 {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let (resp, took) = response_within(&mut stream, Duration::from_secs(3));
    let resp = resp.expect("no answer to an endless chunked body");
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (413, "Request body too large")
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn the_body_limit_follows_the_config() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section("limits", "hash_threads = 2\nmax_body_bytes = 1024")
        .route("/public", "public")
        .start();
    let padded = |len: usize| {
        let base = register_body("alice");
        let pad = len - base.len() - ",\"pad\":\"\"".len();
        format!(
            "{},\"pad\":\"{}\"}}",
            &base[..base.len() - 1],
            "p".repeat(pad)
        )
    };
    let big = padded(1025);
    assert_eq!(big.len(), 1025);
    let resp = send(
        gw.addr,
        "POST",
        "/register",
        &[("Content-Type", "application/json")],
        Some(&big),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (413, "Request body too large")
    );
    let fits = padded(1024);
    let resp = send(
        gw.addr,
        "POST",
        "/register",
        &[("Content-Type", "application/json")],
        Some(&fits),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
}

#[test]
fn bodies_that_are_not_one_clean_json_object_are_a_400() {
    let (gw, _up) = standard();
    let deep = format!(
        "{{\"username\": {}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let bodies: Vec<Vec<u8>> = vec![
        b"{\"username\": \"al\xffice\", \"email\": \"a@example.com\", \"password\": \"Password123\"}".to_vec(),
        b"\xfe\xff\x00{".to_vec(),
        deep.into_bytes(),
        br#"{"username": "mallory", "email": "m@example.com", "password": "Password123", "username": "alice"}"#.to_vec(),
        br#"{"username": "mallory", "email": "m@example.com", "password": "Password123", "x": {"k": 1, "k": 2}}"#.to_vec(),
        br#"{"username": "mallory", "email": "m@example.com", "password": "Password123"} {"username": "x"}"#.to_vec(),
    ];
    for body in &bodies {
        for path in ["/register", "/login"] {
            let mut req = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(body);
            let resp = common::raw(gw.addr, &req);
            assert_eq!(
                (resp.status, resp.msg().as_str()),
                (400, "Missing JSON in request"),
                "{path} {:?}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            );
        }
    }
    // Nothing was registered on the way.
    let login = post_json(
        gw.addr,
        "/login",
        &json!({"username": "mallory", "password": "Password123"}),
    );
    assert_eq!(
        (login.status, login.msg().as_str()),
        (401, "Invalid credentials")
    );
}

// ---------------------------------------------------------------------------------------
// Request smuggling

/// What a desync would slip past the gateway: a request for a required route, without a
/// token, claiming an identity.
const SMUGGLED: &str =
    "GET /protected/smuggled HTTP/1.1\r\nHost: x\r\nX-User-Id: 1\r\nContent-Length: 0\r\n\r\n";

/// The corpus: a name and the raw bytes, each built so that one reading of the framing
/// ends the first request early and leaves `SMUGGLED` as a second one.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let s = SMUGGLED;
    let cl_te_body = format!("0\r\n\r\n{s}");
    let te_cl_body = format!("{:x}\r\n{s}\r\n0\r\n\r\n", s.len());
    let post = |headers: &str, body: &str| {
        format!("POST /public/upload HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}").into_bytes()
    };
    let mut cases = vec![
        ("CL.TE".to_string(), post(&format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", cl_te_body.len()), &cl_te_body)),
        ("TE.CL".to_string(), post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", &te_cl_body)),
        ("two Content-Length".to_string(), post(&format!("Content-Length: 0\r\nContent-Length: {}\r\n", s.len()), s)),
        ("two Content-Length, reversed".to_string(), post(&format!("Content-Length: {}\r\nContent-Length: 0\r\n", s.len()), s)),
        ("Content-Length list".to_string(), post(&format!("Content-Length: 0, {}\r\n", s.len()), s)),
        ("Content-Length with sign".to_string(), post(&format!("Content-Length: +{}\r\n", s.len()), s)),
        ("HTTP/1.0 with a body".to_string(), format!("POST /public/upload HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello{s}").into_bytes()),
        ("HTTP/1.0 chunked".to_string(), format!("POST /public/upload HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{cl_te_body}").into_bytes()),
        ("bare LF chunk lines".to_string(), post("Transfer-Encoding: chunked\r\n", &format!("5\nhello\n0\n\n{s}"))),
        ("bare LF after chunk data".to_string(), post("Transfer-Encoding: chunked\r\n", &format!("5\r\nhello\n0\r\n\r\n{s}"))),
        ("chunk size with 0x".to_string(), post("Transfer-Encoding: chunked\r\n", &format!("0x5\r\nhello\r\n0\r\n\r\n{s}"))),
        ("chunk size overflow".to_string(), post("Transfer-Encoding: chunked\r\n", &format!("10000000000000005\r\nhello\r\n0\r\n\r\n{s}"))),
        ("Upgrade then a pipelined request".to_string(), format!("GET /public/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n{s}").into_bytes()),
        ("h2c Upgrade then a pipelined request".to_string(), format!("GET /public/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n{s}").into_bytes()),
        ("plain pipelining".to_string(), format!("GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n{s}").into_bytes()),
    ];
    for te in [
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding:  chunked",
        "Transfer-Encoding : chunked",
        "X-Pad: 1\r\n Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: identity, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
        "Transfer-Encoding: CHUNKED",
        "Transfer-Encoding:\tchunked",
        "Transfer-Encoding: chunked\x0b",
        "Transfer_Encoding: chunked",
    ] {
        cases.push((
            format!("CL + {te:?}"),
            post(
                &format!("Content-Length: {}\r\n{te}\r\n", cl_te_body.len()),
                &cl_te_body,
            ),
        ));
        cases.push((
            format!("{te:?} + CL 4"),
            post(&format!("{te}\r\nContent-Length: 4\r\n"), &te_cl_body),
        ));
        cases.push((
            format!("{te:?} alone"),
            post(&format!("{te}\r\n"), &cl_te_body),
        ));
    }
    cases
}

#[test]
fn smuggling_corpus_never_hides_a_request_from_the_gateway() {
    let (gw, up) = standard();
    let mut outcomes = Vec::new();
    for (name, bytes) in corpus() {
        let before = up.count();
        let answer = exchange(gw.addr, &bytes, Duration::from_millis(700));
        let responses = parse_responses(&answer);
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        let new: Vec<Recorded> = up.requests()[before..].to_vec();
        let targets: Vec<&str> = new.iter().map(|r| r.target.as_str()).collect();
        outcomes.push(format!("{name}: client {statuses:?}, upstream {targets:?}"));
        assert!(
            !targets.iter().any(|t| t.contains("smuggled")),
            "{name}: the upstream received a request the gateway never saw: {targets:?}"
        );
        // Every request the upstream got is one whose answer went back to the client.
        let relayed = responses
            .iter()
            .filter(|r| r.header("x-upstream").is_some())
            .count();
        assert_eq!(
            new.len(),
            relayed,
            "{name}: client {statuses:?}, upstream {targets:?}"
        );
        for seen in &new {
            assert!(
                seen.target.starts_with("/public/"),
                "{name}: {}",
                seen.target
            );
            assert!(
                seen.header_values("x-user-id").is_empty(),
                "{name}: {:?}",
                seen.headers
            );
            // No `_` spelling of a framing header that a CGI-style backend would obey.
            assert!(
                !seen.header_names().iter().any(|n| n.contains('_')
                    && ["content-length", "transfer-encoding"]
                        .contains(&n.replace('_', "-").as_str())),
                "{name}: forwarded {:?}",
                seen.headers
            );
            // RFC 9112 6.3: never both framings on the way out, whatever came in.
            let framings = (
                seen.header_values("content-length").len(),
                seen.header_values("transfer-encoding").len(),
            );
            assert!(
                matches!(framings, (0 | 1, 0) | (0, 1)),
                "{name}: forwarded with ambiguous framing {:?}",
                seen.headers
            );
        }
        match statuses.first() {
            Some(200 | 400) => {}
            other => panic!("{name}: first answer {other:?}"),
        }
        // A second answer can only be the gateway's own refusal of the pipelined request.
        for r in responses.iter().skip(1) {
            assert!(matches!(r.status, 400 | 401), "{name}: {statuses:?}");
        }
    }
    eprintln!("{}", outcomes.join("\n"));
}
