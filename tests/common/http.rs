//! A small HTTP/1.1 client over a plain TcpStream: the tests must be able to send what a
//! well-behaved client library never would (raw paths, duplicate headers, smuggling).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `msg` of a JSON body.
    pub fn msg(&self) -> String {
        self.json()["msg"].as_str().unwrap_or_default().to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_line = std::str::from_utf8(&data[..end]).unwrap_or("0");
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        data = &data[end + 2..];
        if size == 0 || data.len() < size {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
}

/// Parses every response in `raw` (pipelined answers come back to back).
pub fn parse_responses(mut raw: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head_len)) = parsed.parse(raw) else {
            break;
        };
        let status = parsed.code.unwrap_or(0);
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let rest = &raw[head_len..];
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let (body, used) =
            if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
                let len = len.min(rest.len());
                (rest[..len].to_vec(), len)
            } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                (decode_chunked(rest), rest.len())
            } else {
                (rest.to_vec(), rest.len())
            };
        out.push(Resp {
            status,
            headers,
            body,
        });
        raw = &raw[head_len + used..];
    }
    out
}

/// Sends raw bytes, reads until the server closes (or 5 s of silence), returns the raw
/// answer. The write side stays open: a proxy takes a half-closed connection for a client
/// that has gone away.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    raw_exchange_within(addr, request, Duration::from_secs(5))
}

/// [`raw_exchange`], waiting up to `silence` for each read: for answers that are slow on
/// purpose (a database lock the gateway waits out).
pub fn raw_exchange_within(addr: SocketAddr, request: &[u8], silence: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect to gateway");
    stream.set_read_timeout(Some(silence)).unwrap();
    stream.write_all(request).expect("send request");
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Sends raw bytes and parses the first response; panics when there is none.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let answer = raw_exchange(addr, request);
    parse_responses(&answer)
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            panic!(
                "no HTTP response; got {:?}",
                String::from_utf8_lossy(&answer)
            )
        })
}

/// A well-formed request with `Connection: close`.
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    raw(addr, req.as_bytes())
}

/// `POST` a JSON body.
pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    send(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(&body.to_string()),
    )
}

/// A request with `Authorization: Bearer <token>`.
pub fn with_token(addr: SocketAddr, method: &str, path: &str, token: &str) -> Resp {
    send(
        addr,
        method,
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    )
}

/// Reads one response from `stream` within `limit`; `None` when the server closed or
/// said nothing in time.
pub fn response_within(stream: &mut TcpStream, limit: Duration) -> (Option<Resp>, Duration) {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = parse_responses(&out).into_iter().next() {
            if r.body.len()
                >= r.header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            {
                return (Some(r), start.elapsed());
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (parse_responses(&out).into_iter().next(), start.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if start.elapsed() > limit {
            return (None, start.elapsed());
        }
    }
}

/// A `/register` body for `name` with a valid email and password.
pub fn register_body(name: &str) -> String {
    serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": "Password123"})
        .to_string()
}
