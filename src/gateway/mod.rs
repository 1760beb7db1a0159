//! authgate's request loop: an `HttpServerApp` on pingora-core (which parses each request
//! and owns the connections). Each step is a call to a named module: path normalisation
//! and routing, the auth endpoints, the Bearer check, rate limits, the upstream request
//! with identity headers, the streamed exchange, security headers and CORS, and one
//! access-log event with metrics at the end.

pub mod access_line;
pub mod access_log;
pub mod access_sink;
pub mod account_endpoints;
mod body_pace;
pub mod client_ip;
mod context;
pub mod cors;
mod downstream_response;
pub mod endpoints;
mod forward;
mod forward_h2;
pub mod grpc_error;
mod h2_body_end;
pub mod header_deadline;
pub mod health_check;
pub mod hop_by_hop;
pub mod identity;
pub mod jwks_endpoint;
mod keepalive;
pub mod live;
mod next_request;
pub mod path;
pub mod policy;
mod request_loop;
pub mod respond;
pub mod router;
mod tunnel;
pub mod tunnel_route;
pub mod upstream_pool;
mod upstream_request;
pub mod upstreams;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, EXPECT};
use http::{Method, StatusCode, Version};
use ipnet::IpNet;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::connectors::http::v2::Connector as H2Connector;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType};

pub use context::RequestCtx;

use self::access_sink::AccessSink;
use self::downstream_response::ClientSide;
use self::forward::Deadlines;
use self::live::SharedLiveConfig;
use self::respond::JsonResponse;
use self::router::Target;
use self::upstream_pool::UpstreamPool;
use self::upstream_request::UpstreamRequest;
use crate::auth::{AuthError, AuthService};
use crate::config::{AuthMode, Config, LogFormat};
use crate::limits::RouteLimit;
use crate::metrics::Metrics;

/// How long an idle upstream connection stays in the pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// HTTP/2 without TLS (prior knowledge) beside HTTP/1 when `[server] h2c = true`: off by
/// default (for a load balancer in front). pingora's wait for the h2c preface has no
/// deadline of its own; the connection limit bounds it by `client_timeout`
/// (`ConnectionLimit::with_preface_deadline`). An idle HTTP/2 connection is closed after
/// `keepalive_timeout`, like an idle HTTP/1 one.
fn server_options(h2c: bool, keepalive_timeout: Duration) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = h2c;
    options.h2_idle_timeout = Some(keepalive_timeout);
    options
}

/// The gateway: shared state for every request.
pub struct Gateway {
    pub auth: Arc<AuthService>,
    /// Router, upstreams, identity headers, CORS and rate limits: swapped whole by a reload.
    pub live: SharedLiveConfig,
    pub metrics: Arc<Metrics>,
    trusted_proxies: Vec<IpNet>,
    max_body_bytes: usize,
    /// How long a request header may take (`client_timeout`) and a keep-alive connection
    /// may idle (`keepalive_timeout`).
    header_deadlines: keepalive::HeaderDeadlines,
    /// How long a client may take to send a request header, and an auth endpoint's body.
    client_timeout: Duration,
    /// The OpenAPI document, when `[server] openapi = true`.
    pub openapi: Option<serde_json::Value>,
    deadlines: Deadlines,
    /// Makes new upstream connections (pingora-core's connector; its pool is not used).
    transport: TransportConnector,
    /// Idle upstream connections.
    pub upstream_pool: Arc<UpstreamPool>,
    /// Streams to HTTP/2 upstreams (`[[upstreams]] http2 = true`), on connections it keeps.
    h2_connector: H2Connector,
    server_options: HttpServerOptions,
    /// A tunnel is closed when its access token expires (false) or lives on with its
    /// session (true).
    tunnel_outlives_token: bool,
    /// A tunnel with no traffic either way for this long is closed.
    tunnel_idle: Duration,
    /// How often a tunnel's session (and route, after a reload) is checked: a quarter of the revocation sync interval (a
    /// lookup in the cache per tunnel), so a session ended on another gateway closes its
    /// tunnels within two sync intervals with room to spare.
    session_check_interval: Duration,
    /// After a stop or upgrade began, how long a tunnel may go on.
    drain_timeout: Duration,
    access_sink: AccessSink,
    access_format: LogFormat,
    /// `Strict-Transport-Security` on every response (the HTTPS listener's gateway only).
    hsts: Option<crate::tls::hsts::StrictTransportSecurity>,
}

impl Gateway {
    pub fn new(
        config: &Config,
        auth: Arc<AuthService>,
        live: SharedLiveConfig,
        metrics: Arc<Metrics>,
        access_sink: AccessSink,
    ) -> Self {
        let openapi = config.server.openapi.then(|| {
            crate::openapi::document().expect("api/openapi.yaml is checked by a unit test")
        });
        Self {
            auth,
            live,
            metrics,
            trusted_proxies: config.server.trusted_proxies.clone(),
            max_body_bytes: config.limits.max_body_bytes,
            header_deadlines: keepalive::HeaderDeadlines {
                keepalive: config.server.keepalive_timeout,
                client: config.server.client_timeout,
            },
            client_timeout: config.server.client_timeout,
            openapi,
            deadlines: Deadlines {
                body_idle: config.server.client_timeout,
                min_body_rate: config.server.min_body_rate,
            },
            transport: TransportConnector::new(Some(ConnectorOptions::new(1))),
            h2_connector: H2Connector::new(Some(ConnectorOptions::new(
                config.server.upstream_keepalive_pool_size,
            ))),
            upstream_pool: Arc::new(UpstreamPool::new(
                config.server.upstream_keepalive_pool_size,
                UPSTREAM_IDLE_TIMEOUT,
            )),
            server_options: server_options(config.server.h2c, config.server.keepalive_timeout),
            tunnel_outlives_token: config.server.tunnel_outlives_token,
            tunnel_idle: config.server.tunnel_idle_timeout,
            session_check_interval: (config.database.sync_interval / 4)
                .max(Duration::from_millis(10)),
            drain_timeout: config.server.drain_timeout,
            access_sink,
            access_format: config.log.format,
            hsts: None,
        }
    }

    /// The gateway of an HTTPS listener: `hsts` on every response it sends.
    pub fn with_hsts(mut self, hsts: Option<crate::tls::hsts::StrictTransportSecurity>) -> Self {
        self.hsts = hsts;
        self
    }

    /// The client's address (the peer, or `X-Forwarded-For` from a trusted proxy).
    pub fn client_ip(&self, session: &ServerSession) -> Option<IpAddr> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        client_ip::client_ip(peer, session.req_header(), &self.trusted_proxies)
    }

    /// Writes a response of the gateway's own and ends the request.
    async fn answer(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        resp: JsonResponse,
    ) -> Option<Box<Error>> {
        let resp = self.decorate_own(resp, ctx);
        ctx.status = Some(resp.status.as_u16());
        resp.send(session).await.err()
    }

    /// CORS and, on the HTTPS listener, HSTS on a response of the gateway's own.
    fn decorate_own(&self, resp: JsonResponse, ctx: &RequestCtx) -> JsonResponse {
        let resp = ctx.live.cors.decorate(resp, ctx.cors_origin.as_deref());
        match &self.hsts {
            Some(hsts) => resp.header("Strict-Transport-Security", hsts.value()),
            None => resp,
        }
    }

    /// Checks a required route's Bearer token.
    fn authenticate(
        &self,
        session: &ServerSession,
    ) -> Result<Arc<crate::auth::VerifiedToken>, AuthError> {
        let values = session.req_header().headers.get_all(AUTHORIZATION);
        self.auth.verify_access(values.iter().map(|v| v.as_bytes()))
    }

    /// Applies the route's rate limit: per user on required routes, per IP on public ones.
    fn route_rate_limit(&self, ctx: &RequestCtx, route_index: usize) -> Option<JsonResponse> {
        let result = match &ctx.live.limits.routes[route_index] {
            RouteLimit::PerUser(l) => ctx.identity.as_ref().map(|t| l.check(&t.user_id)),
            RouteLimit::PerIp(l) => ctx.client_ip.map(|ip| l.check(&ip)),
        };
        let limited = result?.err()?;
        let scope = if ctx.identity.is_some() {
            "authenticated"
        } else {
            "public"
        };
        self.metrics
            .rate_limited_total
            .with_label_values(&[scope])
            .inc();
        tracing::info!(target: "audit", event = "rate_limited", scope);
        Some(endpoints::rate_limited(limited))
    }
}
