//! The request header sent upstream, built from the client's: always HTTP/1.1 in
//! origin-form with a `Host` (an HTTP/2 request's `:authority`, or an absolute-form
//! target's authority), without hop-by-hop headers or `Expect` (the gateway answers
//! `100 Continue` itself), with the client's identity headers removed and the verified
//! ones set, and framed so the upstream knows where the body ends.

use http::header::{CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::{Uri, Version};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

use super::hop_by_hop;
use super::identity::IdentityHeaders;
use crate::auth::VerifiedToken;

/// What, beyond the client's header, decides the upstream request.
pub struct UpstreamRequest<'a> {
    /// The normalised path when it differs from the client's.
    pub rewritten_path: Option<&'a str>,
    /// The client will send a body (it may still be empty).
    pub has_body: bool,
    pub identity: &'a IdentityHeaders,
    /// The verified token on a required route.
    pub token: Option<&'a VerifiedToken>,
}

impl UpstreamRequest<'_> {
    /// The header to write upstream for `client`'s request.
    pub fn build(&self, client: &RequestHeader) -> Result<RequestHeader> {
        let mut req = client.clone();
        let websocket =
            client.version == Version::HTTP_11 && hop_by_hop::is_websocket_upgrade(&client.headers);
        for name in hop_by_hop::present(&client.headers) {
            req.remove_header(&name);
        }
        req.remove_header(&EXPECT);
        if websocket {
            req.insert_header("Connection", "Upgrade")?;
            req.insert_header("Upgrade", "websocket")?;
        }
        self.identity.strip(&mut req);
        if let Some(token) = self.token {
            self.identity.inject(&mut req, token)?;
        }
        if let Some(authority) = client.uri.authority() {
            // RFC 9112 3.2.2: an absolute-form target's authority replaces `Host`; an
            // HTTP/2 request carries it as `:authority`.
            req.insert_header(HOST, authority.as_str())?;
        }
        if client.uri.authority().is_some() || self.rewritten_path.is_some() {
            req.set_uri(origin_form(client, self.rewritten_path)?);
        }
        req.set_version(Version::HTTP_11);
        let framed =
            req.headers.contains_key(CONTENT_LENGTH) || req.headers.contains_key(TRANSFER_ENCODING);
        if self.has_body && !framed {
            // An HTTP/2 body without a length: chunked to the HTTP/1.1 upstream.
            req.insert_header(TRANSFER_ENCODING, "chunked")?;
        }
        Ok(req)
    }
}

/// `path?query` with `path` replacing the client's when it was rewritten.
fn origin_form(client: &RequestHeader, rewritten: Option<&str>) -> Result<Uri> {
    let path = rewritten.unwrap_or_else(|| client.uri.path());
    let path = if path.is_empty() { "/" } else { path };
    let target = match client.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    target
        .parse()
        .map_err(|_| Error::explain(ErrorType::HTTPStatus(400), "bad request target"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IdentityConfig;

    fn identity() -> IdentityHeaders {
        IdentityHeaders::new(&IdentityConfig {
            user_id_header: "X-User-Id".into(),
            username_header: "X-User-Name".into(),
            roles_header: "X-User-Roles".into(),
        })
    }

    fn wire(req: &RequestHeader) -> String {
        let mut buf = Vec::new();
        req.header_to_h1_wire(&mut buf);
        format!(
            "{} {} {:?}\n{}",
            req.method,
            String::from_utf8_lossy(req.raw_path()),
            req.version,
            String::from_utf8(buf).unwrap()
        )
    }

    #[test]
    fn an_h2_request_becomes_origin_form_http11_with_host() {
        let mut client = RequestHeader::build("POST", b"/api/x?a=1", None).unwrap();
        client.set_uri("https://example.test/api/x?a=1".parse().unwrap());
        client.set_version(Version::HTTP_2);
        let identity = identity();
        let req = UpstreamRequest {
            rewritten_path: None,
            has_body: true,
            identity: &identity,
            token: None,
        }
        .build(&client)
        .unwrap();
        assert_eq!(
            wire(&req),
            "POST /api/x?a=1 HTTP/1.1\nHost: example.test\r\nTransfer-Encoding: chunked\r\n"
        );
    }

    #[test]
    fn hop_by_hop_and_expect_go_but_a_websocket_upgrade_stays() {
        let mut client = RequestHeader::build("GET", b"/ws", None).unwrap();
        for (k, v) in [
            ("Host", "h"),
            ("Connection", "Upgrade, X-Drop"),
            ("Upgrade", "websocket"),
            ("X-Drop", "1"),
            ("Expect", "100-continue"),
            ("Keep-Alive", "5"),
            ("Sec-WebSocket-Key", "k"),
        ] {
            client.append_header(k, v).unwrap();
        }
        let identity = identity();
        let req = UpstreamRequest {
            rewritten_path: Some("/ws2"),
            has_body: false,
            identity: &identity,
            token: None,
        }
        .build(&client)
        .unwrap();
        assert_eq!(
            wire(&req),
            "GET /ws2 HTTP/1.1\nHost: h\r\nSec-WebSocket-Key: k\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        );
    }
}
