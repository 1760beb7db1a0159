//! The end of every request: one access-log event and the request metrics. Nothing else
//! logs per request. The Authorization header and bodies are never logged.

use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

use super::{Gateway, RequestCtx};

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

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// Records the finished request.
pub fn record(gw: &Gateway, session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
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
    gw.metrics
        .requests_total
        .with_label_values(&[route, status_class(status)])
        .inc();
    gw.metrics
        .request_duration_seconds
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
    let req = session.req_header();
    let upstream = ctx
        .route
        .as_ref()
        .map(|r| gw.upstreams.pools[r.upstream].name.as_str());
    tracing::info!(
        target: "access",
        method = %req.method,
        path = req.uri.path(),
        route,
        status,
        duration_us = elapsed.as_micros() as u64,
        user_id = ctx.identity.as_ref().map(|t| t.user_id),
        client_ip = ctx.client_ip.map(tracing::field::display),
        upstream,
        error = e.map(tracing::field::display),
        "request"
    );
}
