//! HTTP/2 requests sent exactly as a test writes them, malformed ones included, by Python's
//! `h2` library (`tests/h2/send_cases.py`) with its own checks turned off: over h2c to a
//! plain listener with `[server] h2c = true`, or over TLS with ALPN `h2`.
//!
//! Needs the virtualenv `.ci/run` creates (`.ci/venv`, from `.ci/requirements.txt`), or
//! `AUTHGATE_TEST_PYTHON` naming a Python that has `h2`. Without one the tests fail and
//! say how to make it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use super::python::python;

use serde_json::{json, Value};

/// Where the requests go.
pub enum H2Target<'a> {
    /// Prior-knowledge h2c on a plain listener.
    Cleartext(SocketAddr),
    /// TLS with ALPN `h2`, trusting `ca` (PEM) for `server_name`.
    Tls {
        addr: SocketAddr,
        ca: &'a Path,
        server_name: &'a str,
    },
}

/// One DATA frame.
#[derive(Clone)]
pub struct Frame {
    pub data: String,
    pub end: bool,
    /// Before this frame goes out, the test is asked to look (see [`send_cases`]).
    pub wait: bool,
}

impl Frame {
    pub fn data(data: &str) -> Self {
        Self {
            data: data.into(),
            end: false,
            wait: false,
        }
    }

    pub fn last(data: &str) -> Self {
        Self {
            end: true,
            ..Self::data(data)
        }
    }

    /// The test looks at the upstream before this frame is sent.
    pub fn after_look(self) -> Self {
        Self { wait: true, ..self }
    }
}

/// One request on a connection of its own: header fields in order, byte for byte (a
/// `char` below 256 is that byte), then the DATA frames; with no frames the HEADERS frame
/// ends the stream.
#[derive(Clone)]
pub struct H2Case {
    pub name: String,
    pub headers: Vec<(String, String)>,
    pub frames: Vec<Frame>,
}

impl H2Case {
    /// `method path` with the usual pseudo-headers (`:authority: localhost`), and an
    /// `x-case: <name>` field by which the upstream's bytes are searched.
    pub fn new(name: &str, method: &str, path: &str) -> Self {
        Self {
            name: name.into(),
            headers: vec![
                (":method".into(), method.into()),
                (":scheme".into(), "http".into()),
                (":authority".into(), "localhost".into()),
                (":path".into(), path.into()),
                ("x-case".into(), name.into()),
            ],
            frames: Vec::new(),
        }
    }

    /// A case with exactly these header fields (pseudo-headers included).
    pub fn raw(name: &str, headers: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            frames: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn frame(mut self, frame: Frame) -> Self {
        self.frames.push(frame);
        self
    }

    /// The bytes of its marker field as the gateway writes it to an HTTP/1.1 upstream.
    pub fn marker(&self) -> Vec<u8> {
        format!("x-case: {}\r\n", self.name).into_bytes()
    }
}

/// What the client saw.
#[derive(Debug, Clone)]
pub struct H2Outcome {
    pub status: Option<u16>,
    pub headers: Value,
    pub body: String,
    /// The stream was reset: the error code's name.
    pub reset: Option<String>,
    /// The connection was ended by a GOAWAY: its error code's name.
    pub goaway: Option<String>,
    pub closed: bool,
    pub timeout: bool,
}

impl H2Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers[name].as_str()
    }

    /// Refused by the protocol: no response, and the stream reset or the connection ended
    /// with an error.
    pub fn refused_by_protocol(&self) -> bool {
        self.status.is_none()
            && (self.reset.is_some() || self.goaway.as_deref().is_some_and(|g| g != "NO_ERROR"))
    }

    /// A JSON 400 from the gateway.
    pub fn is_json_400(&self) -> bool {
        self.status == Some(400)
            && self.header("content-type") == Some("application/json")
            && self.json()["msg"].is_string()
    }
}

/// Sends `cases` one after the other; `look(case)` runs when a case waits before a frame
/// ([`Frame::after_look`]), the frame going out once it returns. One outcome per case.
pub fn send_cases(
    target: &H2Target,
    cases: &[H2Case],
    mut look: impl FnMut(&H2Case),
) -> Vec<H2Outcome> {
    let (addr, tls) = match target {
        H2Target::Cleartext(addr) => (*addr, Value::Null),
        H2Target::Tls {
            addr,
            ca,
            server_name,
        } => (
            *addr,
            json!({"ca": ca.display().to_string(), "server_name": server_name}),
        ),
    };
    let spec = json!({
        "host": addr.ip().to_string(),
        "port": addr.port(),
        "tls": tls,
        "cases": cases.iter().map(|c| json!({
            "name": c.name,
            "headers": c.headers,
            "frames": c.frames.iter().map(|f| json!({"data": f.data, "end": f.end, "wait": f.wait})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("cases.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/h2/send_cases.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(&spec_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut outcomes = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(name) = v["waiting"].as_str() {
            let case = cases.iter().find(|c| c.name == name).unwrap();
            look(case);
            stdin.write_all(b"\n").unwrap();
            stdin.flush().unwrap();
            continue;
        }
        outcomes.push(H2Outcome {
            status: v["status"].as_u64().map(|s| s as u16),
            headers: v["headers"].clone(),
            body: v["body"].as_str().unwrap_or_default().to_string(),
            reset: v["reset"].as_str().map(String::from),
            goaway: v["goaway"].as_str().map(String::from),
            closed: v["closed"].as_bool().unwrap_or(false),
            timeout: v["timeout"].as_bool().unwrap_or(false),
        });
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "send_cases.py failed: {status}");
    assert_eq!(outcomes.len(), cases.len(), "one outcome per case");
    outcomes
}
