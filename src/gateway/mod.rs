//! The pingora `ProxyHttp` implementation. Each phase is a few lines that call a named
//! module: path normalisation and routing, the auth endpoints, the Bearer check, identity
//! headers, security headers, and one access-log event with metrics at the end.

pub mod access_log;
pub mod account_endpoints;
pub mod client_ip;
mod context;
pub mod cors;
pub mod endpoints;
pub mod header_deadline;
pub mod health_check;
pub mod identity;
pub mod jwks_endpoint;
pub mod path;
pub mod policy;
pub mod respond;
pub mod router;
pub mod upstreams;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::StatusCode;
use ipnet::IpNet;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

pub use context::RequestCtx;

use self::identity::IdentityHeaders;
use self::respond::JsonResponse;
use self::router::{Router, Target};
use self::upstreams::Upstreams;
use crate::auth::{AuthError, AuthService};
use crate::config::{AuthMode, Config};
use crate::limits::{RateLimits, RouteLimit};
use crate::metrics::Metrics;

/// The gateway: shared state for every request.
pub struct Gateway {
    pub auth: Arc<AuthService>,
    pub router: Router,
    pub upstreams: Arc<Upstreams>,
    pub identity: IdentityHeaders,
    pub cors: cors::Cors,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    request_metrics: access_log::RequestMetrics,
    trusted_proxies: Vec<IpNet>,
    max_body_bytes: usize,
    /// How long a client may take to send a request body, in total.
    client_timeout: Duration,
    /// The OpenAPI document, when `[server] openapi = true`.
    pub openapi: Option<serde_json::Value>,
    /// `Strict-Transport-Security` on every response (the HTTPS listener's gateway only).
    hsts: Option<crate::tls::hsts::StrictTransportSecurity>,
}

impl Gateway {
    pub fn new(
        config: &Config,
        auth: Arc<AuthService>,
        upstreams: Arc<Upstreams>,
        limits: Arc<RateLimits>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
        let router = Router::new(&config.routes, config.forward_auth.path.clone(), |name| {
            names.iter().position(|n| *n == name).unwrap_or(0)
        })
        .with_openapi(config.server.openapi)
        .with_account_paths(&config.account);
        let openapi = config.server.openapi.then(|| {
            crate::openapi::document().expect("api/openapi.yaml is checked by a unit test")
        });
        Self {
            auth,
            router,
            upstreams,
            identity: IdentityHeaders::new(&config.identity),
            cors: cors::Cors::new(&config.cors),
            limits,
            request_metrics: access_log::RequestMetrics::new(&metrics, &config.routes),
            metrics,
            trusted_proxies: config.server.trusted_proxies.clone(),
            max_body_bytes: config.limits.max_body_bytes,
            client_timeout: config.server.client_timeout,
            openapi,
            hsts: None,
        }
    }

    /// The gateway of an HTTPS listener: `hsts` on every response it sends.
    pub fn with_hsts(mut self, hsts: Option<crate::tls::hsts::StrictTransportSecurity>) -> Self {
        self.hsts = hsts;
        self
    }

    /// The client's address (the peer, or `X-Forwarded-For` from a trusted proxy).
    pub fn client_ip(&self, session: &Session) -> Option<IpAddr> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        client_ip::client_ip(peer, session.req_header(), &self.trusted_proxies)
    }

    /// Writes a response of the gateway's own and ends the request.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        resp: JsonResponse,
    ) -> Result<bool> {
        let resp = self.cors.decorate(resp, ctx.cors_origin.as_deref());
        ctx.status = Some(resp.send(session).await?);
        Ok(true)
    }

    /// Checks a required route's Bearer token.
    fn authenticate(
        &self,
        session: &Session,
    ) -> Result<Arc<crate::auth::VerifiedToken>, AuthError> {
        let values = session.req_header().headers.get_all(AUTHORIZATION);
        self.auth.verify_access(values.iter().map(|v| v.as_bytes()))
    }

    /// Applies the route's rate limit: per user on required routes, per IP on public ones.
    fn route_rate_limit(&self, ctx: &RequestCtx, route_index: usize) -> Option<JsonResponse> {
        let result = match &self.limits.routes[route_index] {
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

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        modules
            .add_module(pingora::modules::http::compression::ResponseCompressionBuilder::enable(0));
        if let Some(hsts) = &self.hsts {
            modules.add_module(Box::new(hsts.clone()));
        }
    }

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        header_deadline::header_received();
        session.set_read_timeout(Some(self.client_timeout));
        ctx.client_ip = self.client_ip(session);
        if let Some(preflight) = self.cors.preflight(session.req_header()) {
            return self.answer(session, ctx, preflight).await;
        }
        ctx.cors_origin = self.cors.allowed_origin(session.req_header());
        let rewritten = match path::normalize(session.req_header().uri.path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(p)) => Some(p),
            Err(e) => {
                session.set_keepalive(None);
                return self
                    .answer(
                        session,
                        ctx,
                        JsonResponse::error(StatusCode::BAD_REQUEST, format!("Bad request: {e}")),
                    )
                    .await;
            }
        };
        let path = rewritten
            .as_deref()
            .unwrap_or(session.req_header().uri.path());
        let route = match self.router.resolve(path) {
            Target::Endpoint(endpoint) => {
                ctx.endpoint = Some(endpoint);
                let resp = endpoints::serve(self, session, endpoint, ctx.client_ip).await;
                return self.answer(session, ctx, resp).await;
            }
            Target::NotFound => {
                return self
                    .answer(
                        session,
                        ctx,
                        JsonResponse::error(StatusCode::NOT_FOUND, "Resource not found"),
                    )
                    .await
            }
            Target::Route(route) => route,
        };
        ctx.route = Some(route.clone());
        if route.auth == AuthMode::Required {
            match self
                .authenticate(session)
                .and_then(|t| policy::require_roles(&route.roles, t))
            {
                Ok(token) => ctx.identity = Some(token),
                Err(e) => {
                    return self
                        .answer(session, ctx, endpoints::refused(self, &e))
                        .await
                }
            }
        }
        if let Some(resp) = self.route_rate_limit(ctx, route.index) {
            return self.answer(session, ctx, resp).await;
        }
        ctx.rewritten_path = rewritten;
        Ok(false)
    }

    /// Proxied uploads get the same total deadline as the auth endpoints' bodies.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.started.elapsed() > self.client_timeout {
            return Err(
                Error::explain(ErrorType::ReadTimedout, "request body too slow").into_down(),
            );
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(500), "no route"))?;
        self.upstreams
            .peer(route.upstream)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(502), "no healthy upstream server"))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.identity.strip(upstream_request);
        if let Some(token) = &ctx.identity {
            self.identity.inject(upstream_request, token)?;
        }
        if let Some(path) = ctx
            .rewritten_path
            .as_deref()
            .filter(|p| *p != session.req_header().uri.path())
        {
            let target = match session.req_header().uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            let uri = target
                .parse()
                .map_err(|_| Error::explain(ErrorType::HTTPStatus(400), "bad path"))?;
            upstream_request.set_uri(uri);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.cors
            .decorate_upstream(resp, ctx.cors_origin.as_deref())?;
        respond::add_security_headers(resp)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, msg) = access_log::failure_status(e);
        if let (Some(route), true) = (&ctx.route, status == 502 || status == 504) {
            let name = &self.upstreams.pools[route.upstream].name;
            self.metrics
                .upstream_errors_total
                .with_label_values(&[name])
                .inc();
        }
        if status > 0 && session.response_written().is_none() {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Err(err) = JsonResponse::error(code, msg).send(session).await {
                tracing::debug!(error = %err, "cannot send error response");
            }
        }
        ctx.status = Some(status);
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        access_log::record(self, session, e, ctx);
    }
}
