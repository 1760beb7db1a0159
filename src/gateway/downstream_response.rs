//! The upstream's response header as the client gets it: without hop-by-hop headers
//! (a `101`'s `Connection: Upgrade` and `Upgrade` excepted), with the security headers
//! and CORS, and framed for the client's HTTP version: a body of unknown length goes
//! chunked to an HTTP/1.1 client (so its connection can be kept) and close-delimited to
//! an HTTP/1.0 one, which knows no chunks.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use http::{StatusCode, Version};
use pingora::http::ResponseHeader;
use pingora::Result;

use super::cors::Cors;
use super::{hop_by_hop, respond};
use crate::tls::hsts::StrictTransportSecurity;

/// What the client's request says about the response it may get.
pub struct ClientSide<'a> {
    pub version: Version,
    pub head: bool,
    pub cors: &'a Cors,
    pub cors_origin: Option<&'a str>,
    /// `Strict-Transport-Security`, on the HTTPS listener.
    pub hsts: Option<&'a StrictTransportSecurity>,
}

impl ClientSide<'_> {
    /// Rewrites `resp` (from the upstream) for the client.
    pub fn prepare(&self, resp: &mut ResponseHeader) -> Result<()> {
        let switching = resp.status == StatusCode::SWITCHING_PROTOCOLS;
        let upgrade = switching
            .then(|| resp.headers.get(UPGRADE).cloned())
            .flatten();
        for name in hop_by_hop::present(&resp.headers) {
            resp.remove_header(&name);
        }
        if let Some(upgrade) = upgrade {
            resp.insert_header("Connection", "Upgrade")?;
            resp.insert_header("Upgrade", upgrade)?;
        }
        let bodyless = self.head
            || switching
            || resp.status.is_informational()
            || resp.status == StatusCode::NO_CONTENT
            || resp.status == StatusCode::NOT_MODIFIED;
        if !bodyless {
            let chunked = resp.headers.contains_key(TRANSFER_ENCODING);
            let sized = resp.headers.contains_key(CONTENT_LENGTH);
            match self.version {
                Version::HTTP_11 if !chunked && !sized => {
                    resp.insert_header(TRANSFER_ENCODING, "chunked")?;
                }
                Version::HTTP_10 | Version::HTTP_09 if chunked => {
                    resp.remove_header(&TRANSFER_ENCODING);
                }
                _ => {}
            }
        }
        self.cors.decorate_upstream(resp, self.cors_origin)?;
        if let Some(hsts) = self.hsts {
            hsts.apply(resp)?;
        }
        respond::add_security_headers(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CorsConfig;

    fn no_cors() -> Cors {
        Cors::new(&CorsConfig {
            allowed_origins: Vec::new(),
            allowed_methods: Vec::new(),
            allowed_headers: Vec::new(),
            max_age: std::time::Duration::ZERO,
            allow_credentials: false,
        })
    }

    fn names(resp: &ResponseHeader) -> Vec<String> {
        let mut n: Vec<String> = resp.headers.keys().map(|k| k.to_string()).collect();
        n.sort_unstable();
        n.retain(|k| {
            !respond::SECURITY_HEADERS
                .iter()
                .any(|(s, _)| s.eq_ignore_ascii_case(k))
        });
        n
    }

    fn client(version: Version, cors: &Cors) -> ClientSide<'_> {
        ClientSide {
            version,
            head: false,
            cors,
            cors_origin: None,
            hsts: None,
        }
    }

    #[test]
    fn a_close_delimited_body_goes_chunked_to_http11_and_as_is_to_http10() {
        let cors = no_cors();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Connection", "close, X-Hop").unwrap();
        resp.append_header("X-Hop", "1").unwrap();
        resp.append_header("X-Kept", "1").unwrap();
        let mut for_10 = resp.clone();
        client(Version::HTTP_11, &cors).prepare(&mut resp).unwrap();
        assert_eq!(names(&resp), vec!["transfer-encoding", "x-kept"]);
        client(Version::HTTP_10, &cors)
            .prepare(&mut for_10)
            .unwrap();
        assert_eq!(names(&for_10), vec!["x-kept"]);
    }

    #[test]
    fn a_101_keeps_its_upgrade_headers() {
        let cors = no_cors();
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.append_header("Connection", "upgrade").unwrap();
        resp.append_header("Upgrade", "websocket").unwrap();
        resp.append_header("Sec-WebSocket-Accept", "x").unwrap();
        client(Version::HTTP_11, &cors).prepare(&mut resp).unwrap();
        assert_eq!(
            names(&resp),
            vec!["connection", "sec-websocket-accept", "upgrade"]
        );
    }
}
