//! `[tls] redirect_http = true`: the plain listener answers every request with a 308 to
//! the same host and path over HTTPS, and forwards nothing. A request without a usable
//! `Host` gets the contract's JSON 400.

use async_trait::async_trait;
use http::uri::Authority;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::gateway::header_deadline::header_received;
use crate::gateway::respond::SECURITY_HEADERS;

/// Redirects to the HTTPS listener's port.
pub struct HttpsRedirect {
    https_port: u16,
}

impl HttpsRedirect {
    pub fn new(https_port: u16) -> Self {
        Self { https_port }
    }

    /// `https://host[:port]/path?query` for a request to `host` (a `Host` value) and
    /// `target` (its path and query); `None` when `host` is not a host.
    pub fn location(&self, host: &str, target: &str) -> Option<String> {
        let authority: Authority = host.parse().ok()?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return None;
        }
        let port = match self.https_port {
            443 => String::new(),
            p => format!(":{p}"),
        };
        let target = if target.starts_with('/') { target } else { "/" };
        Some(format!("https://{}{port}{target}", authority.host()))
    }
}

#[async_trait]
impl ServeHttp for HttpsRedirect {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        header_received();
        let req = session.req_header();
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        let target = req
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let location = host.and_then(|h| self.location(&h, &target));
        let mut builder = Response::builder();
        for (name, value) in SECURITY_HEADERS {
            builder = builder.header(name, value);
        }
        let response = match location {
            Some(location) => builder
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(http::header::LOCATION, location)
                .header(http::header::CONTENT_LENGTH, "0")
                .body(Vec::new()),
            None => {
                let body = b"{\"msg\":\"Missing or invalid Host header\"}\n".to_vec();
                builder
                    .status(StatusCode::BAD_REQUEST)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(http::header::CONTENT_LENGTH, body.len().to_string())
                    .body(body)
            }
        };
        // Every part above is a valid static or checked value.
        response.unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_host_path_and_query_and_names_the_https_port() {
        let r = HttpsRedirect::new(5443);
        assert_eq!(
            r.location("example.com:8080", "/api/x?y=1").as_deref(),
            Some("https://example.com:5443/api/x?y=1")
        );
        assert_eq!(
            HttpsRedirect::new(443)
                .location("example.com", "/")
                .as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            r.location("[::1]:80", "/a").as_deref(),
            Some("https://[::1]:5443/a")
        );
        assert_eq!(r.location("user@evil.com", "/"), None);
        assert_eq!(r.location("bad host", "/"), None);
        assert_eq!(r.location("", "/"), None);
    }
}
