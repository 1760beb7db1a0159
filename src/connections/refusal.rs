//! How a connection past `max_connections` is refused: when an HTTP/1 request arrives
//! within a moment it is answered `503` with `Retry-After` and `Connection: close`, in the
//! gateway's JSON error shape with its security headers; anything else (HTTP/2, silence, a
//! closed socket) is simply closed. Either way the connection is gone within
//! [`REQUEST_WAIT`] and holds no slot.

use std::time::Duration;

use pingora::protocols::tls::ALPN;
use pingora::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a refused connection may take to send the start of its request.
const REQUEST_WAIT: Duration = Duration::from_millis(200);

/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// Seconds a refused client is asked to wait before trying again.
const RETRY_AFTER_SECONDS: u32 = 1;

const BODY: &str = "{\"msg\":\"Too many connections\"}\n";

/// The whole answer, written in one go.
fn response() -> String {
    let mut head = format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\
         Retry-After: {RETRY_AFTER_SECONDS}\r\n\
         Connection: close\r\n",
        BODY.len()
    );
    for (name, value) in crate::gateway::respond::SECURITY_HEADERS {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(BODY);
    head
}

/// An HTTP/1 request line starts with a method: an upper-case token and a space.
fn starts_like_http1(bytes: &[u8]) -> bool {
    if bytes.starts_with(H2_PREFACE_START) {
        return false;
    }
    let method_len = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method_len > 0 && bytes.get(method_len) == Some(&b' ')
}

/// Refuses `stream`: a 503 to an HTTP/1 request that arrives in time, else a plain close.
pub(super) async fn refuse(mut stream: Stream) {
    if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        return;
    }
    let mut start = [0u8; 2048];
    let read = tokio::time::timeout(REQUEST_WAIT, stream.read(&mut start)).await;
    let Ok(Ok(n)) = read else {
        return;
    };
    if !starts_like_http1(&start[..n]) {
        return;
    }
    let answer = response();
    if let Err(e) = stream.write_all(answer.as_bytes()).await {
        tracing::debug!(error = %e, "cannot answer a refused connection");
        return;
    }
    let _ = tokio::time::timeout(REQUEST_WAIT, async {
        let _ = stream.flush().await;
        let _ = AsyncWriteExt::shutdown(&mut stream).await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http1_request_lines_get_an_answer() {
        assert!(starts_like_http1(b"GET / HTTP/1.1\r\n"));
        assert!(starts_like_http1(b"DELETE /x HTTP/1.1\r\n"));
        assert!(!starts_like_http1(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(!starts_like_http1(b"\x16\x03\x01"));
        assert!(!starts_like_http1(b"GET"));
        assert!(!starts_like_http1(b""));
    }

    #[test]
    fn the_answer_is_a_complete_json_503() {
        let text = response();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nRetry-After: 1\r\n"));
        assert!(head.contains("\r\nConnection: close\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.contains("\r\nX-Content-Type-Options: nosniff\r\n"));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["msg"], "Too many connections");
    }
}
