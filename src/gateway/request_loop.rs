//! The request loop: pingora-core hands over each connection's next request (HTTP/1) or
//! stream (HTTP/2); the gateway reads its header within `client_timeout`, takes it
//! through the steps below, records it, and hands a reusable connection back.

use std::borrow::Cow;
use std::sync::Arc;

use pingora::apps::HttpPersistentSettings;
use pingora::protocols::http::ReusableHttpStream;

use super::next_request;
use super::tunnel::{self, SessionWatch, TunnelChecks, TunnelGuard};
use super::tunnel_route::RouteWatch;
use super::*;
use crate::drain;

#[async_trait]
impl HttpServerApp for Gateway {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // The request's state (its context, the upstream exchange, the tunnel) lives in a box
        // of its own, freed when the request ends: a keep-alive connection idles with none of
        // it, and with no session or header buffer either (next_request).
        let (reusable, settings) = Box::pin(self.serve(session, shutdown)).await?;
        next_request::wait(
            reusable,
            settings,
            self.header_deadlines.keepalive,
            shutdown,
        )
        .await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.server_options)
    }
}

impl Gateway {
    /// Serves one request (or HTTP/2 stream); the connection and its settings when it may
    /// carry the next request.
    async fn serve(
        &self,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<(ReusableHttpStream, HttpPersistentSettings)> {
        let header_limit = self.header_deadlines.prepare(&mut session);
        if !self.read_header(&mut session, header_limit, shutdown).await {
            return None;
        }
        if *shutdown.borrow() {
            session.set_keepalive(None);
        }
        let mut ctx = RequestCtx::new(self.live.load_full());
        let error = self.handle(&mut session, &mut ctx).await;
        access_log::record(self, &session, error.as_deref(), &ctx);
        if let Some(upstream) = ctx.upgraded.take() {
            self.tunnel(session, upstream, &ctx, shutdown).await;
            return None;
        }
        if error.is_some() || !ctx.reusable {
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| (s, settings)),
            Err(e) => {
                tracing::debug!(error = %e, "cannot finish the request");
                None
            }
        }
    }
}

impl Gateway {
    /// Reads the request header; false when there is none to serve. The whole header must
    /// arrive within `limit` (`client_timeout`; on a reused connection it runs from the
    /// header's first bytes), like nginx's `client_header_timeout`: one byte a minute holds
    /// no connection. Once a drain has begun, a connection whose request has not arrived
    /// within `drain::IDLE_CLOSE_GRACE` is closed.
    async fn read_header(
        &self,
        session: &mut ServerSession,
        limit: Duration,
        shutdown: &ShutdownWatch,
    ) -> bool {
        let read = tokio::select! {
            read = tokio::time::timeout(limit, session.read_request()) => read,
            () = drain::begun_since(shutdown, drain::IDLE_CLOSE_GRACE) => {
                tracing::debug!("idle connection closed by the drain");
                return false;
            }
        };
        match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                    tracing::debug!(error = %e, "malformed request header");
                    session.set_keepalive(None);
                    let resp = JsonResponse::error(StatusCode::BAD_REQUEST, "Bad request");
                    if let Err(e) = resp.send_to_unreadable_request(session).await {
                        tracing::debug!(error = %e, "cannot send error response");
                    }
                }
                false
            }
            Err(_) => {
                self.metrics.header_timeouts_total.inc();
                tracing::debug!(?limit, "request header not received in time");
                false
            }
        }
    }

    /// The steps of one request; the error that ended it early, if any.
    async fn handle(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
    ) -> Option<Box<Error>> {
        ctx.client_ip = self.client_ip(session);
        if session.req_header().method == Method::CONNECT {
            session.set_keepalive(None);
            let resp = JsonResponse::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
            return self.answer(session, ctx, resp).await;
        }
        if let Some(preflight) = ctx.live.cors.preflight(session.req_header()) {
            return self.finish_answer(session, ctx, preflight).await;
        }
        ctx.cors_origin = ctx.live.cors.allowed_origin(session.req_header());
        let rewritten = match path::normalize(session.req_header().uri.path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(p)) => Some(p),
            Err(e) => {
                session.set_keepalive(None);
                let resp =
                    JsonResponse::error(StatusCode::BAD_REQUEST, format!("Bad request: {e}"));
                return self.answer(session, ctx, resp).await;
            }
        };
        let path = rewritten
            .as_deref()
            .unwrap_or(session.req_header().uri.path());
        let live = ctx.live.clone();
        let route = match live.router.resolve(path) {
            Target::Endpoint(endpoint) => {
                ctx.endpoint = Some(endpoint);
                let resp = endpoints::serve(self, &live, session, endpoint, ctx.client_ip).await;
                return self.finish_answer(session, ctx, resp).await;
            }
            Target::NotFound => {
                let resp = JsonResponse::error(StatusCode::NOT_FOUND, "Resource not found");
                return self.finish_answer(session, ctx, resp).await;
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
                    let resp = endpoints::refused(self, &e);
                    return self.finish_answer(session, ctx, resp).await;
                }
            }
        }
        if let Some(resp) = self.route_rate_limit(ctx, route.index) {
            return self.finish_answer(session, ctx, resp).await;
        }
        ctx.rewritten_path = rewritten;
        self.proxy(session, ctx).await
    }

    /// Answers with the gateway's own response; the connection is kept when the answer
    /// went out.
    async fn finish_answer(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        resp: JsonResponse,
    ) -> Option<Box<Error>> {
        let error = self.answer(session, ctx, resp).await;
        ctx.reusable = error.is_none();
        error
    }

    /// Forwards the request upstream and relays the answer.
    async fn proxy(&self, session: &mut ServerSession, ctx: &mut RequestCtx) -> Option<Box<Error>> {
        let route = ctx.route.clone()?;
        let Some(mut peer) = ctx.live.upstreams.peer(route.upstream) else {
            let e = Error::explain(ErrorType::HTTPStatus(502), "no healthy upstream server");
            self.fail(session, ctx, &e).await;
            return Some(e);
        };
        if let Some(timeout) = route.upstream_read_timeout {
            peer.options.read_timeout = Some(timeout);
        }
        let has_body = !session.is_body_empty();
        let upstream_request = UpstreamRequest {
            rewritten_path: ctx.rewritten_path.as_deref(),
            has_body,
            identity: &ctx.live.identity,
            token: ctx.identity.as_deref(),
        };
        let req = match upstream_request.build(session.req_header()) {
            Ok(req) => req,
            Err(e) => {
                self.fail(session, ctx, &e).await;
                return Some(e);
            }
        };
        if has_body && expects_continue(session) {
            // Auth passed: invite the body. The upstream never sees the `Expect`.
            if let Err(e) = session.write_continue_response().await {
                return Some(e.into_down());
            }
        }
        let client = ClientSide {
            version: session.req_header().version,
            head: session.req_header().method == Method::HEAD,
            cors: &ctx.live.cors,
            cors_origin: ctx.cors_origin.as_deref(),
            hsts: self.hsts.as_ref(),
        };
        let forwarded = if upstreams::speaks_h2(&peer) {
            // Boxed: the HTTP/2 exchange (its connect included) is several KiB, and every
            // request's future, HTTP/1 ones too, would otherwise carry that size.
            Box::pin(forward_h2::forward(
                &self.h2_connector,
                &peer,
                session,
                req,
                client,
                self.deadlines,
            ))
            .await
        } else {
            let connections = forward::Connections {
                transport: &self.transport,
                pool: &self.upstream_pool,
            };
            forward::forward(
                connections,
                &peer,
                session,
                req,
                &upstream_request,
                client,
                self.deadlines,
            )
            .await
        };
        ctx.upgraded = forwarded.upgraded;
        ctx.status = forwarded.status;
        ctx.reusable = forwarded.client_reusable;
        if !forwarded.client_reusable {
            session.set_keepalive(None);
        }
        if let Some(e) = &forwarded.error {
            if ctx.status.is_none() {
                self.fail(session, ctx, e).await;
            }
        }
        forwarded.error
    }

    /// Answers a failed exchange with the matching JSON error (when the client is still
    /// there to read it) and counts upstream failures.
    async fn fail(&self, session: &mut ServerSession, ctx: &mut RequestCtx, e: &Error) {
        let (status, msg) = access_log::failure_status(e);
        if let (Some(route), true) = (&ctx.route, status == 502 || status == 504) {
            let name = &ctx.live.upstreams.pools[route.upstream].name;
            self.metrics
                .upstream_errors_total
                .with_label_values(&[name])
                .inc();
        }
        ctx.status = Some(status);
        session.set_keepalive(None);
        if status == 0 || session.response_written().is_some() {
            return;
        }
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        let resp = self.decorate_own(JsonResponse::error(code, msg), ctx);
        if let Err(err) = resp.send(session).await {
            tracing::debug!(error = %err, "cannot send error response");
        }
    }
}

impl Gateway {
    /// Runs the tunnel a `101` opened, on the two connections' own streams, counted in the
    /// open-tunnel gauge and bound to the token's session on required routes.
    async fn tunnel(
        &self,
        session: ServerSession,
        upstream: pingora::protocols::http::v1::client::HttpSession,
        ctx: &RequestCtx,
        shutdown: &ShutdownWatch,
    ) {
        let path = ctx
            .rewritten_path
            .clone()
            .unwrap_or_else(|| session.req_header().uri.path().to_string());
        let ServerSession::H1(client) = session else {
            return;
        };
        let _open = TunnelGuard::open(&self.metrics.open_tunnels);
        let checks = TunnelChecks {
            idle: self.tunnel_idle,
            every: self.session_check_interval,
            session: ctx.identity.as_deref().map(|token| SessionWatch {
                revocations: &self.auth.revocations,
                token,
                outlives_token: self.tunnel_outlives_token,
            }),
            route: RouteWatch {
                live: &self.live,
                path,
                identity: ctx.identity.as_deref(),
                checked: ctx.live.clone(),
            },
            drain_over: drain::begun_since(shutdown, self.drain_timeout),
        };
        tunnel::splice(client.into_inner(), upstream.into_inner(), checks).await;
    }
}

/// `Expect: 100-continue` on an HTTP/1.1 request.
fn expects_continue(session: &ServerSession) -> bool {
    let req = session.req_header();
    req.version == Version::HTTP_11
        && req
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}
