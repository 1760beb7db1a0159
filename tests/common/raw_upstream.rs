//! A byte-recording upstream: a real TCP server on an ephemeral port that keeps every byte
//! each connection sent and whether the sender closed it, answers each complete HTTP/1.1
//! request in it with a small JSON 200, and says which requests were complete. For tests
//! about what must never reach an upstream whole: the recording upstream (`upstream.rs`)
//! keeps only complete requests, so a partial one would go unseen. Its guard stops it on
//! drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One connection as the upstream saw it.
#[derive(Debug, Clone, Default)]
pub struct RawConnection {
    pub bytes: Vec<u8>,
    /// The gateway closed (or reset) the connection.
    pub closed: bool,
}

/// One complete HTTP/1.1 request found in a connection's bytes.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request line and header block, as received.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The request target of the request line.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    /// Every value of a header, matched case-insensitively.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// Header names, lower-cased.
    pub fn header_names(&self) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect()
    }
}

impl RawConnection {
    /// The complete requests at the start of the bytes, and how many bytes follow them
    /// (the start of a request that never arrived whole).
    pub fn requests(&self) -> (Vec<RawRequest>, usize) {
        let mut requests = Vec::new();
        let mut at = 0;
        while let Some((request, len)) = parse_request(&self.bytes[at..]) {
            requests.push(request);
            at += len;
        }
        (requests, self.bytes.len() - at)
    }
}

/// The running upstream.
pub struct RawUpstream {
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<RawConnection>>>,
    stop: Arc<AtomicBool>,
}

impl RawUpstream {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let c = c.clone();
                std::thread::spawn(move || serve_connection(stream, c));
            }
        });
        Self {
            addr,
            connections,
            stop,
        }
    }

    /// Every connection that sent at least one byte (the gateway's TCP health checks send
    /// none), in the order they were accepted.
    pub fn connections(&self) -> Vec<RawConnection> {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .filter(|c| !c.bytes.is_empty())
            .cloned()
            .collect()
    }

    /// Every complete request received, over all connections.
    pub fn complete_requests(&self) -> Vec<RawRequest> {
        self.connections()
            .iter()
            .flat_map(|c| c.requests().0)
            .collect()
    }

    /// Polls, for at most `limit`, until `done` holds for the connections; the last look.
    pub fn wait_until(
        &self,
        limit: Duration,
        done: impl Fn(&[RawConnection]) -> bool,
    ) -> Vec<RawConnection> {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.connections();
            if done(&seen) || Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(mut stream: TcpStream, connections: Arc<Mutex<Vec<RawConnection>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let index = {
        let mut all = connections.lock().unwrap();
        all.push(RawConnection::default());
        all.len() - 1
    };
    let mut answered = 0;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        let complete = {
            let mut all = connections.lock().unwrap();
            let conn = &mut all[index];
            if n == 0 {
                conn.closed = true;
                return;
            }
            conn.bytes.extend_from_slice(&buf[..n]);
            conn.requests().0
        };
        for request in &complete[answered..] {
            let reply =
                serde_json::json!({"upstream": true, "target": request.target()}).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                reply.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
        answered = complete.len();
    }
}

/// One complete request at the start of `bytes` and its length in bytes.
fn parse_request(bytes: &[u8]) -> Option<(RawRequest, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = req.parse(bytes).ok()? else {
        return None;
    };
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let rest = &bytes[head_len..];
    let (body, body_len) = if value("transfer-encoding").as_deref() == Some("chunked") {
        dechunk(rest)?
    } else {
        let len: usize = value("content-length").map_or(Some(0), |v| v.parse().ok())?;
        (rest.get(..len)?.to_vec(), len)
    };
    let head = String::from_utf8_lossy(&bytes[..head_len]).into_owned();
    Some((RawRequest { head, body }, head_len + body_len))
}

/// A whole chunked body at the start of `bytes` (no trailers): the data and the length.
fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            return (bytes.get(at..at + 2)? == b"\r\n").then_some((body, at + 2));
        }
        body.extend_from_slice(bytes.get(at..at + size)?);
        at += size;
        if bytes.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}
