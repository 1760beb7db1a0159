//! Per-request state carried between the steps of the request loop.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::live::LiveConfig;
use super::router::{Endpoint, Route};
use crate::auth::VerifiedToken;

/// What the request phases learned about one request.
pub struct RequestCtx {
    pub started: Instant,
    /// The configuration this request sees from start to end, taken once when it started.
    pub live: Arc<LiveConfig>,
    pub client_ip: Option<IpAddr>,
    /// The normalised path when it differs from the raw one; forwarded in its place.
    pub rewritten_path: Option<String>,
    pub route: Option<Arc<Route>>,
    pub endpoint: Option<Endpoint>,
    /// Set on required routes once the Bearer token verified.
    pub identity: Option<Arc<VerifiedToken>>,
    /// Status of a response the gateway wrote itself.
    pub status: Option<u16>,
    /// The request's `Origin`, when CORS allows it.
    pub cors_origin: Option<String>,
    /// The client's connection may carry its next request.
    pub reusable: bool,
    /// After a `101`: the upstream session the tunnel continues on.
    pub upgraded: Option<pingora::protocols::http::v1::client::HttpSession>,
}

impl RequestCtx {
    pub fn new(live: Arc<LiveConfig>) -> Self {
        Self {
            started: Instant::now(),
            live,
            client_ip: None,
            rewritten_path: None,
            route: None,
            endpoint: None,
            identity: None,
            status: None,
            cors_origin: None,
            reusable: false,
            upgraded: None,
        }
    }
}
