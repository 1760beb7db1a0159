//! One request forwarded to an HTTP/1.1 upstream and its response relayed back, both
//! bodies streamed chunk by chunk in one loop that waits on whichever side is ready: the
//! upstream may answer before the request body is finished, and a client that goes away
//! cancels the exchange. A `101` ends the exchange here: the bytes already buffered on
//! either side are passed on and the upstream session is handed back for the tunnel.
//!
//! New connections are made by pingora-core's [`TransportConnector`]; idle ones wait in
//! the gateway's [`UpstreamPool`]. A pooled connection that turns out to be closed gets
//! one retry on a fresh connection when no request bytes were lost (the body read so far
//! is kept by pingora's retry buffer). The upstream request header goes to the first
//! attempt as it is; a retry builds it again from the client's, so no copy is kept for
//! the rare retry.

use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::http::{HttpTask, ServerSession};
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{Error, ErrorSource, ErrorType, Result};

use super::body_pace::BodyPace;
use super::downstream_response::ClientSide;
use super::h2_body_end::{self, H2BodyEnd};
use super::upstream_pool::UpstreamPool;
use super::upstream_request::UpstreamRequest;

/// How the exchange may use time.
#[derive(Clone, Copy)]
pub struct Deadlines {
    /// The longest silence between two pieces of a request body.
    pub body_idle: Duration,
    /// The slowest average a request body may keep once it has taken `body_idle`.
    pub min_body_rate: u64,
}

/// Where upstream connections come from and go back to.
pub struct Connections<'a> {
    pub transport: &'a TransportConnector,
    pub pool: &'a UpstreamPool,
}

/// What the relay knows of the exchange, kept across a retry.
struct Relay<'a> {
    session: &'a mut ServerSession,
    client: ClientSide<'a>,
    deadlines: Deadlines,
    pace: BodyPace,
    /// The last piece of an HTTP/2 body, held until the client's stream has ended.
    body_end: H2BodyEnd,
    /// Every request body byte has been read from the client.
    request_done: bool,
    /// The response header has been written to the client.
    response_started: bool,
    /// The status the client got.
    status: Option<u16>,
    /// The upstream switched protocols: the rest is a tunnel.
    upgraded: bool,
}

/// Why one attempt ended early.
enum Stop {
    /// The upstream connection failed before anything was lost: try a fresh one.
    Retry(Box<Error>),
    Failed(Box<Error>),
}

impl From<Box<Error>> for Stop {
    fn from(e: Box<Error>) -> Self {
        Stop::Failed(e)
    }
}

/// The outcome of a forwarded request.
pub struct Forwarded {
    /// The status the client got, if a response header was written.
    pub status: Option<u16>,
    /// Why the exchange failed, if it did.
    pub error: Option<Box<Error>>,
    /// The client's connection may carry another request: the exchange completed, the
    /// whole request body was read, and it was not a tunnel.
    pub client_reusable: bool,
    /// After a `101`: the upstream session, whose stream the tunnel continues on.
    pub upgraded: Option<UpstreamSession>,
}

/// Forwards `req` (built by `rebuild` from the client's header) to `peer` and relays the
/// response to `session`.
pub async fn forward(
    connections: Connections<'_>,
    peer: &HttpPeer,
    session: &mut ServerSession,
    req: RequestHeader,
    rebuild: &UpstreamRequest<'_>,
    client: ClientSide<'_>,
    deadlines: Deadlines,
) -> Forwarded {
    session.enable_retry_buffering();
    // A client that closes its connection mid-exchange ends the exchange.
    session.set_abort_on_close(true);
    let request_done = session.is_body_done();
    if request_done {
        if let Err(e) = h2_body_end::wait_for_end(session, deadlines.body_idle).await {
            return Forwarded {
                status: None,
                error: Some(e),
                client_reusable: false,
                upgraded: None,
            };
        }
    }
    let body_end = H2BodyEnd::new(session, &req);
    let mut relay = Relay {
        session,
        client,
        deadlines,
        pace: BodyPace::new(deadlines.min_body_rate, deadlines.body_idle),
        body_end,
        request_done,
        response_started: false,
        status: None,
        upgraded: false,
    };
    let (upgraded, error) = match relay.attempts(&connections, peer, req, rebuild).await {
        Ok(upgraded) => (upgraded, None),
        Err(e) => (None, Some(e)),
    };
    Forwarded {
        status: relay.status,
        client_reusable: error.is_none() && relay.request_done && !relay.upgraded,
        error,
        upgraded,
    }
}

/// A new connection to `peer`. pingora's connect future (TCP and TLS set-up) is several
/// KiB; boxed, it is allocated only when a connection is made, and the future every
/// request builds and moves into its box stays small.
async fn connect(
    transport: &TransportConnector,
    peer: &HttpPeer,
) -> Result<pingora::protocols::Stream> {
    Box::pin(transport.new_stream(peer))
        .await
        .map_err(|e| e.into_up())
}

fn upstream_session(stream: pingora::protocols::Stream, peer: &HttpPeer) -> UpstreamSession {
    let mut up = UpstreamSession::new_with_options(stream, peer);
    up.read_timeout = peer.options.read_timeout;
    up.write_timeout = peer.options.write_timeout;
    up
}

impl Relay<'_> {
    async fn attempts(
        &mut self,
        connections: &Connections<'_>,
        peer: &HttpPeer,
        req: RequestHeader,
        rebuild: &UpstreamRequest<'_>,
    ) -> Result<Option<UpstreamSession>> {
        let transport = connections.transport;
        let key = peer.reuse_hash();
        let (stream, reused) = match connections.pool.checkout(key) {
            Some(stream) => (stream, true),
            None => (connect(transport, peer).await?, false),
        };
        let mut up = upstream_session(stream, peer);
        let result = match self.exchange(&mut up, req, reused, false).await {
            Err(Stop::Retry(e)) => {
                tracing::debug!(error = %e, "pooled upstream connection closed; retrying");
                let req = rebuild.build(self.session.req_header())?;
                let stream = connect(transport, peer).await?;
                up = upstream_session(stream, peer);
                self.exchange(&mut up, req, false, true).await
            }
            other => other,
        };
        match result {
            Ok(()) if self.upgraded => Ok(Some(up)),
            Ok(()) => {
                // An upstream that answered before the whole body was sent has unread
                // bytes coming: its connection is not reused.
                if self.request_done {
                    up.respect_keepalive();
                    if let Some(stream) = up.reuse().await {
                        connections.pool.release(key, stream);
                    }
                }
                Ok(None)
            }
            Err(Stop::Retry(e) | Stop::Failed(e)) => Err(e),
        }
    }

    /// Whether an upstream failure may be retried on a fresh connection.
    fn may_retry(&self, reused: bool, e: &Error) -> bool {
        reused
            && !self.response_started
            && !self.session.retry_buffer_truncated()
            && e.esource() == &ErrorSource::Upstream
            && !matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout | ErrorType::ConnectTimedout
            )
    }

    fn upstream_failure(&self, reused: bool, e: Box<Error>) -> Stop {
        let e = e.into_up();
        if self.may_retry(reused, &e) {
            Stop::Retry(e)
        } else {
            Stop::Failed(e)
        }
    }

    /// One attempt on one upstream connection. `replay`: the request body read so far (in
    /// pingora's retry buffer) is written first, less any piece held back.
    async fn exchange(
        &mut self,
        up: &mut UpstreamSession,
        req: RequestHeader,
        reused: bool,
        replay: bool,
    ) -> Result<(), Stop> {
        if let Err(e) = up.write_request_header(Box::new(req)).await {
            return Err(self.upstream_failure(reused, e));
        }
        if replay {
            if let Some(body) = self.session.get_retry_buffer() {
                let relayed = body.len().saturating_sub(self.body_end.held_len());
                up.write_body(&body[..relayed])
                    .await
                    .map_err(|e| e.into_up())?;
            }
            if self.request_done {
                up.finish_body().await.map_err(|e| e.into_up())?;
            }
        }
        let mut response_done = false;
        let idle_limit = self.deadlines.body_idle;
        while !response_done {
            tokio::select! {
                task = up.read_response_task() => {
                    let task = task.map_err(|e| self.upstream_failure(reused, e))?;
                    response_done = self.relay_response(up, task).await?;
                }
                body = read_client(self.session, self.request_done, idle_limit) => {
                    self.relay_request(up, body?).await?;
                }
            }
        }
        Ok(())
    }

    /// After the `101`: passes on what is already buffered on either side (bytes the
    /// upstream sent with its `101`, bytes the client sent after its request), without
    /// waiting, so the streams can be taken out of their sessions.
    async fn pass_buffered(&mut self, up: &mut UpstreamSession) -> Result<(), Stop> {
        while let Some(task) = poll_once(up.read_response_task()) {
            match task.map_err(|e| Stop::Failed(e.into_up()))? {
                HttpTask::UpgradedBody(Some(data), end) | HttpTask::Body(Some(data), end) => {
                    self.session
                        .write_response_body(data, false)
                        .await
                        .map_err(|e| Stop::Failed(e.into_down()))?;
                    if end {
                        break;
                    }
                }
                _ => break,
            }
        }
        up.maybe_upgrade_body_writer();
        while let Some(body) = poll_once(self.session.read_request_body()) {
            match body {
                Ok(Some(data)) => {
                    up.write_body(&data)
                        .await
                        .map_err(|e| Stop::Failed(e.into_up()))?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Passes one response event to the client; true when the response is complete.
    async fn relay_response(
        &mut self,
        up: &mut UpstreamSession,
        task: HttpTask,
    ) -> Result<bool, Stop> {
        let down = |e: Box<Error>| Stop::Failed(e.into_down());
        match task {
            HttpTask::Header(mut resp, end) => {
                if resp.status.is_informational() && resp.status != 101 {
                    // The gateway answered any `Expect` itself; other 1xx are dropped.
                    return Ok(false);
                }
                if resp.status == 101 && !up.was_upgraded() {
                    // A switch the request never asked for: its framing is unknowable.
                    let e = Error::explain(
                        ErrorType::InvalidHTTPHeader,
                        "101 to a request that asked for no upgrade",
                    );
                    return Err(Stop::Failed(e.into_up()));
                }
                self.client.prepare(&mut resp)?;
                let status = resp.status.as_u16();
                let upgraded = status == 101 && up.was_upgraded();
                self.write_header(resp).await.map_err(down)?;
                if upgraded {
                    self.upgraded = true;
                    self.pass_buffered(up).await?;
                    return Ok(true);
                }
                if end {
                    self.session.finish_body().await.map_err(down)?;
                }
                Ok(end)
            }
            HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                self.session
                    .write_response_body(data.unwrap_or_default(), end)
                    .await
                    .map_err(down)?;
                if end {
                    self.session.finish_body().await.map_err(down)?;
                }
                Ok(end)
            }
            HttpTask::Done => {
                self.session.finish_body().await.map_err(down)?;
                Ok(true)
            }
            HttpTask::Trailer(_) => Ok(false),
            HttpTask::Failed(e) => Err(Stop::Failed(e.into_up())),
        }
    }

    async fn write_header(&mut self, resp: Box<ResponseHeader>) -> Result<()> {
        self.status = Some(resp.status.as_u16());
        self.response_started = true;
        self.session.write_response_header(resp).await
    }

    /// Passes a piece of the client's body upstream. A failed read never gets here: the
    /// attempt ends and the upstream connection, its request unfinished, is dropped.
    async fn relay_request(
        &mut self,
        up: &mut UpstreamSession,
        body: Option<Bytes>,
    ) -> Result<(), Stop> {
        let Some(data) = body else {
            self.request_done = true;
            if let Some(held) = self.body_end.release() {
                up.write_body(&held)
                    .await
                    .map_err(|e| Stop::Failed(e.into_up()))?;
            }
            up.finish_body()
                .await
                .map_err(|e| Stop::Failed(e.into_up()))?;
            return Ok(());
        };
        self.pace.record(data.len())?;
        let ended = self.session.is_body_done();
        if let Some(data) = self.body_end.relay(data, ended) {
            up.write_body(&data)
                .await
                .map_err(|e| Stop::Failed(e.into_up()))?;
        }
        if ended {
            self.request_done = true;
            up.finish_body()
                .await
                .map_err(|e| Stop::Failed(e.into_up()))?;
        }
        Ok(())
    }
}

/// The next piece of the client's body, or (once it is all read) a wait that ends only
/// when the client closes its connection. `idle`: the longest wait for a piece.
pub(super) async fn read_client(
    session: &mut ServerSession,
    request_done: bool,
    idle: Duration,
) -> Result<Option<Bytes>> {
    if request_done {
        let e = session.read_body_or_idle(true).await.err();
        return Err(e
            .unwrap_or_else(|| Error::explain(ErrorType::ConnectionClosed, "client closed"))
            .into_down());
    }
    let body = match tokio::time::timeout(idle, session.read_request_body()).await {
        Ok(body) => body,
        Err(_) => Error::e_explain(ErrorType::ReadTimedout, "request body idle too long"),
    };
    body.map_err(|e| e.into_down())
}

/// Polls `future` once: its output if it is ready now.
fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}
