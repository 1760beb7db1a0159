//! Bodies streamed through the gateway: uploads that keep moving run as long as they
//! need, uploads that stall are cut, chunked bodies pass both ways, and a streaming
//! response reaches the client chunk by chunk.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::scripted::{read_head, Scripted};
use common::*;

fn gateway(upstream: std::net::SocketAddr, server: &str) -> TestGateway {
    GatewayBuilder::new(upstream)
        .section(
            "server",
            &format!("threads = 1\nupstream_read_timeout = \"5s\"\n{server}"),
        )
        .route("/public", "public")
        .start()
}

/// 2,000 bytes in 20 pieces 100 ms apart: 2 s in all under `client_timeout = 1s`, at
/// 1,000 bytes/s, above `min_body_rate = 500`.
#[test]
fn an_upload_that_keeps_moving_longer_than_client_timeout_arrives_whole() {
    let up = Upstream::start();
    let gw = gateway(up.addr, "client_timeout = \"1s\"\nmin_body_rate = 500");
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    let head = "POST /public/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    for n in 0..20u8 {
        std::thread::sleep(Duration::from_millis(100));
        stream.write_all(&[b'a' + n; 100]).unwrap();
    }
    let (resp, _) = http::response_within(&mut stream, Duration::from_secs(5));
    assert!(started.elapsed() > Duration::from_secs(2));
    let resp = resp.expect("an answer");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.last();
    let expected: Vec<u8> = (0..20u8).flat_map(|n| [b'a' + n; 100]).collect();
    assert_eq!(seen.body, expected);
}

/// Half a body, then silence longer than `client_timeout`: 408 JSON, and the upstream
/// never receives a complete request.
#[test]
fn an_upload_that_stalls_is_cut_with_408_and_never_completes_upstream() {
    let up = Upstream::start();
    let gw = gateway(up.addr, "client_timeout = \"1s\"");
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    let head = "POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&[b'x'; 500]).unwrap();
    let (resp, waited) = http::response_within(&mut stream, Duration::from_secs(5));
    let resp = resp.expect("an answer");
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(waited < Duration::from_secs(3), "cut after {waited:?}");
    assert_eq!(up.count(), 0, "{:?}", up.requests());
}

/// A chunked upload sent in pieces reaches the upstream whole, framed as chunked.
#[test]
fn a_chunked_upload_is_streamed_to_the_upstream() {
    let up = Upstream::start();
    let gw = gateway(up.addr, "");
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    let head = "POST /public/chunks HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    for piece in ["5\r\nhello\r\n", "6\r\n world\r\n", "0\r\n\r\n"] {
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(piece.as_bytes()).unwrap();
    }
    let (resp, _) = http::response_within(&mut stream, Duration::from_secs(5));
    assert_eq!(resp.expect("an answer").status, 200);
    let seen = up.last();
    assert_eq!(seen.body, b"hello world");
    assert_eq!(seen.header_values("transfer-encoding"), vec!["chunked"]);
}

/// The upstream sends its first chunk and waits (up to 5 s) to hear that the client has
/// it before sending the rest: a gateway that buffered the response would deliver it
/// only after the upstream finished.
#[test]
fn a_streaming_response_reaches_the_client_chunk_by_chunk() {
    let (client_has_first, wait_for_client) = mpsc::channel::<()>();
    let wait_for_client = Arc::new(Mutex::new(wait_for_client));
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let up = Scripted::start(move |_, mut reader| {
        if read_head(&mut reader).is_none() {
            return;
        }
        let mut out = reader.get_ref().try_clone().unwrap();
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        out.write_all(head.as_bytes()).unwrap();
        out.write_all(b"c\r\ndata: first\n\r\n").unwrap();
        let _ = wait_for_client
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(5));
        out.write_all(b"d\r\ndata: second\n\r\n0\r\n\r\n").unwrap();
        done.store(true, Ordering::SeqCst);
    });
    let gw = gateway(up.addr, "");
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .write_all(b"GET /public/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: first") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the first chunk");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        !finished.load(Ordering::SeqCst),
        "the first chunk arrived only after the upstream finished"
    );
    client_has_first.send(()).unwrap();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let resp = http::parse_responses(&seen).remove(0);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "data: first\ndata: second\n");
}

/// The upstream takes 2 s to answer; `upstream_read_timeout` is 1 s, but `/stream` raises
/// it to 5 s for itself: a quiet stream on that route gets through, the same silence
/// elsewhere is a 504.
#[test]
fn a_route_can_raise_the_upstream_read_timeout() {
    let up = Upstream::start_with(Behavior::Delay(Duration::from_secs(2)));
    let gw = GatewayBuilder::new(up.addr)
        .section("server", "threads = 1\nupstream_read_timeout = \"1s\"")
        .route_with(
            "prefix = \"/stream\"\nupstream = \"backend\"\nauth = \"public\"\nupstream_read_timeout = \"5s\"",
        )
        .route("/public", "public")
        .start();
    let quiet = send(gw.addr, "GET", "/stream/events", &[], None);
    assert_eq!(quiet.status, 200, "{}", quiet.text());
    let elsewhere = send(gw.addr, "GET", "/public/slow", &[], None);
    assert_eq!(elsewhere.status, 504, "{}", elsewhere.text());
    assert_eq!(elsewhere.header("content-type"), Some("application/json"));
}
