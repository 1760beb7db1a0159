//! A recording upstream: a real HTTP/1.1 server on an ephemeral port that keeps every
//! request it receives (request line, headers, body) and answers with a small JSON echo.
//! Its guard stops it on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of a header, matched case-insensitively.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Header names, lower-cased.
    pub fn header_names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect()
    }
}

/// How the upstream answers.
#[derive(Debug, Clone, Copy)]
pub enum Behavior {
    Echo,
    /// Waits this long before answering.
    Delay(Duration),
}

/// The running upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start() -> Self {
        Self::start_with(Behavior::Echo)
    }

    pub fn start_with(behavior: Behavior) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), behavior)
    }

    /// Listens on `addr` (an address a gateway was already configured with).
    pub fn start_at(addr: SocketAddr, behavior: Behavior) -> Self {
        let listener = TcpListener::bind(addr).expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (records.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let r = r.clone();
                std::thread::spawn(move || serve_connection(stream, r, behavior));
            }
        });
        Self {
            addr,
            records,
            stop,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    /// The most recent request; panics when there was none.
    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }

    pub fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn read_body(reader: &mut BufReader<TcpStream>, headers: &[(String, String)]) -> Option<Vec<u8>> {
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.trim().to_string())
    };
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                let mut end = String::new();
                reader.read_line(&mut end).ok()?;
                return Some(body);
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let len: usize = find("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn serve_connection(stream: TcpStream, records: Arc<Mutex<Vec<Recorded>>>, behavior: Behavior) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let blank = line == b"\r\n" || line == b"\n";
            head.extend_from_slice(&line);
            if blank {
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            return;
        }
        let method = req.method.unwrap_or_default().to_string();
        let target = req.path.unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let Some(body) = read_body(&mut reader, &headers) else {
            return;
        };
        let user_id = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-user-id"))
            .map(|(_, v)| v.clone());
        records.lock().unwrap().push(Recorded {
            method,
            target: target.clone(),
            headers,
            body,
        });
        if let Behavior::Delay(d) = behavior {
            std::thread::sleep(d);
        }
        let reply =
            serde_json::json!({"upstream": true, "target": target, "user_id": user_id}).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Upstream: recorder\r\n\r\n{reply}",
            reply.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
