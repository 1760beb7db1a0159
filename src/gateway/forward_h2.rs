//! One request forwarded to an HTTP/2 upstream (`[[upstreams]] http2 = true`: ALPN `h2`
//! over TLS, prior-knowledge h2c otherwise) as one stream, its response relayed back with
//! its trailers. gRPC needs both: calls stream their bodies both ways, and a call's
//! outcome (`grpc-status`) travels in the response trailers. Both bodies are streamed in
//! one loop that waits on whichever side is ready, as on the HTTP/1.1 path; trailers reach
//! an HTTP/2 client as trailers (HTTP/1.1 clients get none: pingora writes no chunked
//! trailers).
//!
//! Connections and their streams come from pingora-core's HTTP/2 connector, which keeps
//! connections with free streams for reuse. A stream on a reused connection that turns out
//! to be closed is opened once more on a new connection; nothing of the request has been
//! sent by then. A stream the upstream refused unprocessed (`REFUSED_STREAM`, or above a
//! graceful GOAWAY's last stream id, as a server that closes connections after N requests
//! sends) is sent once more on a new connection, its body replayed from pingora's retry
//! buffer (64 KiB; a longer body already partly sent is not retried: the client gets 502).

use bytes::Bytes;
use h2::SendStream;
use http::header::{CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri, Version};
use pingora::connectors::http::v2::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::protocols::http::v2::client::Http2Session;
use pingora::protocols::http::v2::write_body;
use pingora::protocols::http::{HttpTask, ServerSession};
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{Error, ErrorSource, ErrorType, Result};

use super::body_pace::BodyPace;
use super::downstream_response::ClientSide;
use super::forward::{read_client, Deadlines, Forwarded};

/// Forwards `req` (the HTTP/1.1 upstream request the gateway built) to `peer` over HTTP/2
/// and relays the response to `session`.
pub async fn forward(
    connector: &Connector,
    peer: &HttpPeer,
    session: &mut ServerSession,
    req: RequestHeader,
    client: ClientSide<'_>,
    deadlines: Deadlines,
) -> Forwarded {
    session.set_abort_on_close(true);
    let request_done = session.is_body_done();
    let mut relay = Relay {
        session,
        client,
        deadlines,
        pace: BodyPace::new(deadlines.min_body_rate, deadlines.body_idle),
        request_done,
        status: None,
    };
    let error = relay.run(connector, peer, req).await.err();
    Forwarded {
        status: relay.status,
        client_reusable: error.is_none() && relay.request_done,
        error,
        upgraded: None,
    }
}

/// The request header as an HTTP/2 stream carries it: `:scheme` and `:authority` (from
/// `Host`, else the server's name) in place of `Host`, no HTTP/1.1 framing, and
/// `te: trailers` kept when the client sent it (gRPC servers ask for it).
pub fn h2_request(
    mut req: RequestHeader,
    client: &RequestHeader,
    peer: &HttpPeer,
) -> Result<RequestHeader> {
    let bad = |what: &str| Error::explain(ErrorType::InvalidHTTPHeader, what.to_string());
    // Connection-specific fields, which HTTP/2 forbids (RFC 9113 8.2.2); a WebSocket
    // upgrade's among them: HTTP/2 upstreams get no upgrade.
    for name in [TRANSFER_ENCODING, CONNECTION, UPGRADE] {
        req.remove_header(&name);
    }
    if wants_trailers(client) {
        req.insert_header(TE, HeaderValue::from_static("trailers"))?;
    }
    let authority = match req.headers.get(HOST) {
        Some(host) => Authority::try_from(host.as_bytes()).map_err(|_| bad("bad Host header"))?,
        None if !peer.sni().is_empty() => {
            Authority::try_from(peer.sni()).map_err(|_| bad("bad upstream name"))?
        }
        None => Authority::try_from(peer.address().to_string().as_str())
            .map_err(|_| bad("bad upstream address"))?,
    };
    let scheme = if peer.tls() {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    let path = req
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| bad("bad request target"))?;
    req.remove_header(&HOST);
    req.set_uri(uri);
    req.set_version(Version::HTTP_2);
    Ok(req)
}

/// `TE: trailers` on the client's request (the only `TE` HTTP/2 allows).
fn wants_trailers(client: &RequestHeader) -> bool {
    client
        .headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// A stream to `peer`: on a connection with a free stream if there is one, else on a new
/// connection. True when the connection was reused.
async fn open_stream(connector: &Connector, peer: &HttpPeer) -> Result<(Http2Session, bool)> {
    if let Ok(Some(stream)) = connector.reused_http_session(peer).await {
        return Ok((stream, true));
    }
    new_stream(connector, peer)
        .await
        .map(|stream| (stream, false))
}

/// A stream on a new connection, which must agree to HTTP/2.
async fn new_stream(connector: &Connector, peer: &HttpPeer) -> Result<Http2Session> {
    match connector.new_http_session::<_, ()>(peer).await? {
        ClientSession::H2(stream) => Ok(stream),
        _ => Error::e_explain(
            ErrorType::ConnectError,
            "the upstream did not agree to HTTP/2 (ALPN h2)",
        ),
    }
}

/// Whether `e` says the upstream did not process the stream: a graceful GOAWAY that the
/// stream was above, or `REFUSED_STREAM`.
fn refused_stream(e: &Error) -> bool {
    let Some(h2) = e.root_cause().downcast_ref::<h2::Error>() else {
        return false;
    };
    h2.is_remote()
        && match h2.reason() {
            Some(h2::Reason::REFUSED_STREAM) => true,
            Some(h2::Reason::NO_ERROR) => h2.is_go_away(),
            _ => false,
        }
}

/// What the relay knows of the exchange.
struct Relay<'a> {
    session: &'a mut ServerSession,
    client: ClientSide<'a>,
    deadlines: Deadlines,
    pace: BodyPace,
    /// Every request body byte has been read from the client.
    request_done: bool,
    /// The status the client got.
    status: Option<u16>,
}

impl Relay<'_> {
    async fn run(
        &mut self,
        connector: &Connector,
        peer: &HttpPeer,
        req: RequestHeader,
    ) -> Result<()> {
        let req = h2_request(req, self.session.req_header(), peer).map_err(|e| e.into_down())?;
        // The body read so far is kept (up to pingora's 64 KiB) for a replay.
        self.session.enable_retry_buffering();
        let mut replay = false;
        loop {
            let (mut up, writer) = self.start_stream(connector, peer, &req, replay).await?;
            match self.exchange(&mut up, writer).await {
                Err(e) if !replay && self.may_replay(&e) => {
                    // RFC 9113 6.8: a stream above a GOAWAY's last stream id, or refused,
                    // was not processed; it is sent again on a new connection.
                    tracing::debug!(error = %e, "HTTP/2 upstream refused the stream; retrying");
                    up.conn.mark_shutdown();
                    replay = true;
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    if self.request_done {
                        connector.release_http_session(up, peer, peer.options.idle_timeout);
                    }
                    // Otherwise the upstream answered before the request body ended:
                    // dropping the stream's handles resets it.
                    return Ok(());
                }
            }
        }
    }

    /// Whether a failed stream may be sent again: the upstream refused it before
    /// answering, and every body byte sent so far is still in the retry buffer.
    fn may_replay(&self, e: &Error) -> bool {
        e.esource() == &ErrorSource::Upstream
            && self.status.is_none()
            && !self.session.retry_buffer_truncated()
            && refused_stream(e)
    }

    /// Opens a stream and writes the request header, and on a `replay` the body read so
    /// far; the body's writer while more is to come.
    async fn start_stream(
        &mut self,
        connector: &Connector,
        peer: &HttpPeer,
        req: &RequestHeader,
        replay: bool,
    ) -> Result<(Http2Session, Option<SendStream<Bytes>>)> {
        let body = match replay {
            true => self.session.get_retry_buffer().filter(|b| !b.is_empty()),
            false => None,
        };
        let end = self.request_done && body.is_none();
        let (mut up, reused) = match replay {
            // Not on a connection the refusal may have come from.
            true => new_stream(connector, peer)
                .await
                .map(|stream| (stream, false)),
            false => open_stream(connector, peer).await,
        }
        .map_err(|e| e.into_up())?;
        if let Err(e) = up.write_request_header(Box::new(req.clone()), end) {
            if !reused {
                return Err(e.into_up());
            }
            tracing::debug!(error = %e, "reused HTTP/2 upstream connection closed; retrying");
            up = new_stream(connector, peer).await.map_err(|e| e.into_up())?;
            up.write_request_header(Box::new(req.clone()), end)
                .map_err(|e| e.into_up())?;
        }
        up.read_timeout = peer.options.read_timeout;
        up.write_timeout = peer.options.write_timeout;
        if end {
            return Ok((up, None));
        }
        let mut writer = up.take_request_body_writer();
        if let (Some(stream), Some(body)) = (writer.as_mut(), body) {
            write_body(stream, body, self.request_done, up.write_timeout)
                .await
                .map_err(|e| e.into_up())?;
            if self.request_done {
                writer = None;
            }
        }
        Ok((up, writer))
    }

    /// Relays the response (header, body, trailers) while passing the client's body on.
    async fn exchange(
        &mut self,
        up: &mut Http2Session,
        mut writer: Option<SendStream<Bytes>>,
    ) -> Result<()> {
        let idle = self.deadlines.body_idle;
        let write_timeout = up.write_timeout;
        loop {
            tokio::select! {
                header = up.read_response_header() => {
                    header.map_err(|e| e.into_up())?;
                    break;
                }
                body = read_client(self.session, self.request_done, idle) => {
                    self.relay_request(&mut writer, body?, write_timeout).await?;
                }
            }
        }
        if self.relay_header(up).await? {
            return Ok(());
        }
        loop {
            tokio::select! {
                data = up.read_response_body() => {
                    match data.map_err(|e| e.into_up())? {
                        Some(data) => self
                            .session
                            .write_response_body(data, false)
                            .await
                            .map_err(|e| e.into_down())?,
                        None => break,
                    }
                }
                body = read_client(self.session, self.request_done, idle) => {
                    self.relay_request(&mut writer, body?, write_timeout).await?;
                }
            }
        }
        // The body ended with the stream: the trailers, if any, are already here.
        if let Some(trailers) = up.read_trailers().await.map_err(|e| e.into_up())? {
            self.session
                .write_response_trailers(trailers)
                .await
                .map_err(|e| e.into_down())?;
        }
        self.session.finish_body().await.map_err(|e| e.into_down())
    }

    /// Writes the response header to the client; true when it ended the response (a
    /// gRPC "trailers-only" answer, a bodyless one), which then ends the client's stream
    /// in the same header block.
    async fn relay_header(&mut self, up: &mut Http2Session) -> Result<bool> {
        let Some(resp) = up.response_header() else {
            return Error::e_explain(ErrorType::H2Error, "no response header");
        };
        let mut resp = Box::new(resp.clone());
        if !self.session.is_http2() {
            // An HTTP/1 client reads an HTTP/1.1 status line.
            resp.set_version(Version::HTTP_11);
        }
        self.client.prepare(&mut resp)?;
        self.status = Some(resp.status.as_u16());
        let end = up.response_finished();
        self.session
            .response_duplex_vec(vec![HttpTask::Header(resp, end)])
            .await
            .map_err(|e| e.into_down())?;
        Ok(end)
    }

    /// Passes a piece of the client's body upstream; `None`: the body ended.
    async fn relay_request(
        &mut self,
        writer: &mut Option<SendStream<Bytes>>,
        body: Option<Bytes>,
        write_timeout: Option<std::time::Duration>,
    ) -> Result<()> {
        let Some(stream) = writer.as_mut() else {
            return Ok(());
        };
        let body_ended = body.is_none();
        let data = match body {
            Some(data) => {
                self.pace.record(data.len())?;
                data
            }
            None => Bytes::new(),
        };
        let end = body_ended || self.session.is_body_done();
        write_body(stream, data, end, write_timeout)
            .await
            .map_err(|e| e.into_up())?;
        if end {
            self.request_done = true;
            *writer = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(tls: bool) -> HttpPeer {
        let sni = if tls { "api.internal" } else { "" };
        HttpPeer::new("127.0.0.1:8443", tls, sni.to_string())
    }

    #[test]
    fn host_becomes_the_authority_and_http1_framing_goes() {
        let mut client = RequestHeader::build("POST", b"/pkg.Echo/Say", None).unwrap();
        client.insert_header("te", "trailers").unwrap();
        let mut built = RequestHeader::build("POST", b"/pkg.Echo/Say", None).unwrap();
        built.insert_header("host", "gw.example:5000").unwrap();
        built.insert_header("transfer-encoding", "chunked").unwrap();
        built.insert_header("connection", "Upgrade").unwrap();
        built.insert_header("upgrade", "websocket").unwrap();
        built.insert_header("x-user-id", "7").unwrap();
        let req = h2_request(built, &client, &peer(false)).unwrap();
        assert_eq!(req.version, Version::HTTP_2);
        assert_eq!(req.uri.to_string(), "http://gw.example:5000/pkg.Echo/Say");
        assert!(req.headers.get("host").is_none());
        for gone in ["transfer-encoding", "connection", "upgrade"] {
            assert!(req.headers.get(gone).is_none(), "{gone}");
        }
        assert_eq!(req.headers.get("te").unwrap(), "trailers");
        assert_eq!(req.headers.get("x-user-id").unwrap(), "7");
    }

    #[test]
    fn without_host_the_server_name_is_the_authority() {
        let client = RequestHeader::build("GET", b"/x?y=1", None).unwrap();
        let built = client.clone();
        let req = h2_request(built, &client, &peer(true)).unwrap();
        assert_eq!(req.uri.to_string(), "https://api.internal/x?y=1");
        assert!(req.headers.get("te").is_none());
        let req = h2_request(client.clone(), &client, &peer(false)).unwrap();
        assert_eq!(req.uri.to_string(), "http://127.0.0.1:8443/x?y=1");
    }
}
