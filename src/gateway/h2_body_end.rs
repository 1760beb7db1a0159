//! An HTTP/2 request is complete upstream only once the client's stream has ended.
//!
//! An HTTP/2 request's `content-length` must match its DATA frames (RFC 9113 8.1.1). The
//! h2 crate resets a stream whose frames disagree, but only when the disagreeing frame (or
//! the end of the stream) arrives, and by then the declared bytes may have been relayed:
//! an HTTP/1.1 upstream given that `content-length` holds a complete request as soon as
//! they are written. A client declaring 5 bytes and sending `hello` then `world` would have
//! `hello` taken as a whole request, and a client declaring 0 would have its header alone
//! taken for one. So the piece that would complete the upstream request is written only
//! once the client's stream has ended cleanly; when the stream fails instead, the upstream
//! holds an incomplete request on a connection that is dropped, never finished or pooled.
//! A chunked upstream body needs nothing of this: its last chunk is written at the end.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorType, Result};

/// The last piece of an HTTP/2 request body relayed with its `content-length`, held until
/// the stream has ended.
pub struct H2BodyEnd {
    /// Declared bytes not yet relayed; `None` when nothing needs holding (an HTTP/1
    /// client, whose framing pingora's parser enforces, or a chunked upstream body).
    remaining: Option<u64>,
    held: Option<Bytes>,
}

impl H2BodyEnd {
    /// For `session`'s request, relayed upstream as `upstream`.
    pub fn new(session: &ServerSession, upstream: &RequestHeader) -> Self {
        let remaining = session
            .is_http2()
            .then(|| upstream.headers.get(CONTENT_LENGTH))
            .flatten()
            .and_then(|v| v.to_str().ok()?.trim().parse().ok());
        Self {
            remaining,
            held: None,
        }
    }

    /// What of `data` to relay now. `stream_ended`: the client's stream ended with it.
    pub fn relay(&mut self, data: Bytes, stream_ended: bool) -> Option<Bytes> {
        let Some(remaining) = self.remaining.as_mut() else {
            return Some(data);
        };
        *remaining = remaining.saturating_sub(data.len() as u64);
        let data = match self.held.take() {
            Some(held) => {
                let mut joined = BytesMut::from(&held[..]);
                joined.extend_from_slice(&data);
                joined.freeze()
            }
            None => data,
        };
        if *remaining > 0 || stream_ended {
            return Some(data);
        }
        self.held = Some(data);
        None
    }

    /// The piece held back, now that the stream has ended.
    pub fn release(&mut self) -> Option<Bytes> {
        self.held.take()
    }

    /// How many bytes are held back (a replay of the body read so far leaves them out).
    pub fn held_len(&self) -> usize {
        self.held.as_ref().map_or(0, Bytes::len)
    }
}

/// For an HTTP/2 request whose body counts as done before it is relayed (`content-length:
/// 0` makes pingora say so before the stream has ended): waits, at most `idle`, for the
/// end of the stream, so that a stream that carries data after all is refused before the
/// upstream has its header, which is a whole request on its own.
pub async fn wait_for_end(session: &mut ServerSession, idle: Duration) -> Result<()> {
    if !session.is_http2() {
        return Ok(());
    }
    loop {
        let read = match tokio::time::timeout(idle, session.read_request_body()).await {
            Ok(read) => read.map_err(|e| e.into_down())?,
            Err(_) => {
                let e = Error::explain(ErrorType::ReadTimedout, "request stream did not end");
                return Err(e.into_down());
            }
        };
        match read {
            None => return Ok(()),
            Some(data) if data.is_empty() => {}
            Some(_) => {
                let e = Error::explain(ErrorType::InvalidHTTPHeader, "body beyond content-length");
                return Err(e.into_down());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_length(len: u64) -> H2BodyEnd {
        H2BodyEnd {
            remaining: Some(len),
            held: None,
        }
    }

    #[test]
    fn the_piece_completing_the_length_waits_for_the_end_of_the_stream() {
        let mut end = with_length(10);
        assert_eq!(
            end.relay(Bytes::from("hello"), false).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(end.relay(Bytes::from("world"), false), None);
        assert_eq!(end.held_len(), 5);
        assert_eq!(end.relay(Bytes::new(), false), None);
        assert_eq!(end.release().as_deref(), Some(&b"world"[..]));
        assert_eq!(end.held_len(), 0);
    }

    #[test]
    fn an_empty_piece_ending_the_stream_brings_the_held_one() {
        let mut end = with_length(5);
        assert_eq!(end.relay(Bytes::from("hello"), false), None);
        assert_eq!(
            end.relay(Bytes::new(), true).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(end.held_len(), 0);
    }

    #[test]
    fn a_piece_that_ends_the_stream_is_relayed_at_once() {
        let mut end = with_length(5);
        assert_eq!(
            end.relay(Bytes::from("hello"), true).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(end.release(), None);
    }

    #[test]
    fn without_a_length_nothing_is_held() {
        let mut end = H2BodyEnd {
            remaining: None,
            held: None,
        };
        assert_eq!(
            end.relay(Bytes::from("hello"), false).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(end.held_len(), 0);
    }
}
