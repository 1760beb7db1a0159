//! Responses the gateway writes itself: always JSON (`{"msg": ...}` for errors), always
//! with the security headers, `Cache-Control: no-store` when a token is in the body. An
//! error answering a gRPC call goes out in gRPC's form instead (see [`grpc_error`]).

use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::protocols::http::{HttpTask, ServerSession};
use pingora::Result;
use serde_json::{json, Value};

use super::grpc_error;

/// The contract's security headers, plus `Referrer-Policy`, as spelled on the wire.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("Content-Security-Policy", "default-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-XSS-Protection", "0"),
    ("Referrer-Policy", "no-referrer"),
];

/// The names of [`SECURITY_HEADERS`], parsed once, for the per-response presence check.
static SECURITY_HEADER_NAMES: LazyLock<[HeaderName; 5]> = LazyLock::new(|| {
    SECURITY_HEADERS.map(|(spelling, _)| {
        HeaderName::from_bytes(spelling.as_bytes()).expect("valid header name")
    })
});

/// Adds the security headers a response does not already set. One pass over the
/// response's names finds those it sets; the rest are appended.
pub fn add_security_headers(resp: &mut ResponseHeader) -> Result<()> {
    let names = &*SECURITY_HEADER_NAMES;
    let mut set = [false; SECURITY_HEADERS.len()];
    for name in resp.headers.keys() {
        if let Some(i) = names.iter().position(|n| n == name) {
            set[i] = true;
        }
    }
    for ((spelling, value), set) in SECURITY_HEADERS.iter().zip(set) {
        if !set {
            // Static spelling and value: no copy or validation per response.
            resp.append_header(*spelling, HeaderValue::from_static(value))?;
        }
    }
    Ok(())
}

/// A JSON response being built.
pub struct JsonResponse {
    pub status: StatusCode,
    pub body: Value,
    pub headers: Vec<(String, String)>,
    pub no_store: bool,
    /// No body at all (204 answers).
    pub empty_body: bool,
}

impl JsonResponse {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
            no_store: false,
            empty_body: false,
        }
    }

    /// `{"msg": msg}` with `status`.
    pub fn error(status: StatusCode, msg: impl std::fmt::Display) -> Self {
        Self::new(status, json!({"msg": msg.to_string()}))
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The header block and body, ready to write.
    pub fn into_parts(self, head_request: bool) -> Result<(ResponseHeader, Bytes)> {
        let body = if self.empty_body {
            Bytes::new()
        } else {
            // Compact, keys sorted, newline-terminated: what Flask's jsonify sent.
            let mut body = serde_json::to_vec(&self.body).unwrap_or_else(|_| b"{}".to_vec());
            body.push(b'\n');
            Bytes::from(body)
        };
        let mut resp = ResponseHeader::build(self.status, Some(8 + self.headers.len()))?;
        if !self.empty_body {
            resp.insert_header("Content-Type", "application/json")?;
        }
        resp.insert_header("Content-Length", body.len().to_string())?;
        if self.no_store {
            resp.insert_header("Cache-Control", "no-store")?;
            resp.insert_header("Pragma", "no-cache")?;
        }
        for (name, value) in self.headers {
            resp.insert_header(name, value)?;
        }
        add_security_headers(&mut resp)?;
        Ok((resp, if head_request { Bytes::new() } else { body }))
    }

    /// Writes the response to the client; returns the status for logging (for an error
    /// answered in gRPC's form, the HTTP status the error stands for).
    pub async fn send(self, session: &mut ServerSession) -> Result<u16> {
        if self.is_error() && grpc_error::is_grpc_request(session.req_header()) {
            return self.write_grpc(session).await;
        }
        let head = session.req_header().method == http::Method::HEAD;
        self.write(session, head).await
    }

    fn is_error(&self) -> bool {
        self.status.is_client_error() || self.status.is_server_error()
    }

    /// The error's message: the `msg` of its JSON body.
    fn message(&self) -> &str {
        self.body.get("msg").and_then(Value::as_str).unwrap_or("")
    }

    /// The header block of the error as a gRPC client reads it, with this response's own
    /// headers (CORS, HSTS, `Retry-After`...) and the security headers.
    pub fn into_grpc_header(self) -> Result<ResponseHeader> {
        let mut resp = grpc_error::trailers_only(self.status, self.message())?;
        for (name, value) in self.headers {
            resp.insert_header(name, value)?;
        }
        add_security_headers(&mut resp)?;
        Ok(resp)
    }

    /// A trailers-only response: one header block that ends the stream.
    async fn write_grpc(self, session: &mut ServerSession) -> Result<u16> {
        let status = self.status.as_u16();
        let resp = self.into_grpc_header()?;
        session
            .response_duplex_vec(vec![HttpTask::Header(Box::new(resp), true)])
            .await?;
        Ok(status)
    }

    /// Writes the response to a client whose request header could not be read.
    pub async fn send_to_unreadable_request(self, session: &mut ServerSession) -> Result<u16> {
        self.write(session, false).await
    }

    async fn write(self, session: &mut ServerSession, head: bool) -> Result<u16> {
        let status = self.status.as_u16();
        let (resp, body) = self.into_parts(head)?;
        session.write_response_header(Box::new(resp)).await?;
        session.write_response_body(body, true).await?;
        session.finish_body().await?;
        Ok(status)
    }
}
