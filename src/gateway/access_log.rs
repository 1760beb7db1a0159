//! The end of every request: one access line and the request metrics. Nothing else
//! logs per request. The Authorization header and bodies are never logged. The line is
//! written when `[log] access` is not `off` and the log level lets `access` events
//! through (info), as when it was a tracing event.

use std::cell::RefCell;
use std::time::SystemTime;

use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorSource, ErrorType};

use super::access_line::AccessRecord;
use super::router::Endpoint;
use super::{Gateway, RequestCtx};
use crate::config::RouteConfig;
use crate::metrics::{Metrics, RouteMetrics};

/// The status and message for a request that failed in the proxy, or 0 when the client is
/// gone and nothing can be written.
pub fn failure_status(e: &Error) -> (u16, &'static str) {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(502), _) => (502, "Bad gateway: no healthy upstream server"),
        (ErrorType::HTTPStatus(code), _) => (*code, "Request failed"),
        (
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ErrorSource::Upstream,
        ) => (504, "Gateway timeout: the upstream did not answer in time"),
        (_, ErrorSource::Upstream) => (502, "Bad gateway: the upstream could not be reached"),
        (ErrorType::ReadTimedout, ErrorSource::Downstream) => (408, "Request timeout"),
        (
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => (0, ""),
        (_, ErrorSource::Downstream) => (400, "Bad request"),
        _ => (500, "Internal error"),
    }
}

/// Request metrics of every route, endpoint, and of requests that matched nothing.
pub struct RequestMetrics {
    routes: Vec<RouteMetrics>,
    endpoints: Vec<RouteMetrics>,
    unmatched: RouteMetrics,
}

impl RequestMetrics {
    /// `routes` in config order (a route's `index`).
    pub fn new(metrics: &Metrics, routes: &[RouteConfig]) -> Self {
        Self {
            routes: routes.iter().map(|r| metrics.route(&r.prefix)).collect(),
            endpoints: Endpoint::ALL
                .iter()
                .map(|e| metrics.route(e.name()))
                .collect(),
            unmatched: metrics.route("none"),
        }
    }

    fn of(&self, ctx: &RequestCtx) -> &RouteMetrics {
        match (&ctx.route, ctx.endpoint) {
            (_, Some(endpoint)) => &self.endpoints[endpoint as usize],
            (Some(route), None) => &self.routes[route.index],
            (None, None) => &self.unmatched,
        }
    }
}

/// Records the finished request.
pub fn record(gw: &Gateway, session: &ServerSession, e: Option<&Error>, ctx: &RequestCtx) {
    let status = ctx
        .status
        .or_else(|| session.response_written().map(|r| r.status.as_u16()))
        .unwrap_or(0);
    let route = match (&ctx.route, ctx.endpoint) {
        (_, Some(endpoint)) => endpoint.name(),
        (Some(route), None) => route.prefix.as_str(),
        (None, None) => "none",
    };
    let elapsed = ctx.started.elapsed();
    ctx.live
        .request_metrics
        .of(ctx)
        .observe(status, elapsed.as_secs_f64());
    let req = session.req_header();
    let upstream = ctx
        .route
        .as_ref()
        .map(|r| ctx.live.upstreams.pools[r.upstream].name.as_str());
    if !gw.access_sink.enabled() || !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    let record = AccessRecord {
        method: req.method.as_str(),
        path: req.uri.path(),
        route,
        status,
        duration_us: elapsed.as_micros() as u64,
        user_id: ctx.identity.as_ref().map(|t| t.user_id),
        client_ip: ctx.client_ip,
        upstream,
        error: e.map(|e| e.to_string()),
    };
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        record.write(gw.access_format, SystemTime::now(), &mut line);
        gw.access_sink.push(&line);
    });
}

thread_local! {
    /// Each worker thread's line buffer, reused for every request.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}
