//! `[server] max_connections`: a `ServerApp` wrapper around the gateway. pingora calls
//! `process_new` once for each connection it hands over (after a TLS handshake); for an
//! HTTP application that call runs every keep-alive request and every HTTP/2 stream of the
//! connection before it returns, so one slot held across it counts connections, not
//! requests. Past the limit a new connection is refused at once (see `refusal`), and the
//! connections already open keep working.
//!
//! With h2c on the plain listener, pingora first waits for enough bytes to tell an HTTP/2
//! preface from an HTTP/1 request, with no deadline of its own; the wrapper does that wait
//! first, under `client_timeout` ([`ConnectionLimit::with_preface_deadline`]), so a silent
//! or short connection is closed rather than held.
//!
//! On the HTTPS listener pingora accepts plain TCP and the wrapper runs the TLS handshake
//! ([`ConnectionLimit::with_tls`]): after the slot is taken, within `client_timeout`. A
//! connection past the limit still gets a handshake, within [`REFUSED_HANDSHAKE_WAIT`],
//! so that an HTTPS client is refused with the same `503` as a plain one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::refusal;
use crate::metrics::Metrics;
use crate::tls::handshake::TlsHandshake;

/// How long a connection past the limit may take over its TLS handshake before it is
/// simply closed.
const REFUSED_HANDSHAKE_WAIT: Duration = Duration::from_secs(1);

/// The slots of open connections, and the metrics that show them; clones share the slots.
#[derive(Clone)]
pub struct ConnectionSlots {
    slots: Arc<Semaphore>,
    max: usize,
    open: IntGauge,
    refused: IntCounter,
}

impl ConnectionSlots {
    pub fn new(max_connections: usize, metrics: &Metrics) -> Self {
        metrics.max_connections.set(max_connections as i64);
        Self {
            slots: Arc::new(Semaphore::new(max_connections)),
            max: max_connections,
            open: metrics.open_connections.clone(),
            refused: metrics.connections_refused_total.clone(),
        }
    }

    /// Client connections open now (a drain waits for none).
    pub fn open_now(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// A slot for a new connection, or `None` (counted as refused) when all are taken.
    fn try_open(&self) -> Option<OpenConnection> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.open.inc();
                Some(OpenConnection {
                    _permit: permit,
                    open: self.open.clone(),
                })
            }
            Err(_) => {
                self.refused.inc();
                None
            }
        }
    }
}

/// One open connection's slot: given back, and the gauge lowered, when dropped.
struct OpenConnection {
    _permit: OwnedSemaphorePermit,
    open: IntGauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// The bytes pingora peeks at to tell HTTP/2 prior knowledge from HTTP/1: the length of
/// the HTTP/2 connection preface (RFC 9113 3.4).
const PREFACE_LEN: usize = 24;

/// The gateway (or any `ServerApp`) behind the connection limit.
pub struct ConnectionLimit<A> {
    app: Arc<A>,
    slots: ConnectionSlots,
    preface_deadline: Option<Duration>,
    tls: Option<(Arc<TlsHandshake>, Duration)>,
}

impl<A> ConnectionLimit<A> {
    pub fn new(app: A, slots: ConnectionSlots) -> Self {
        Self {
            app: Arc::new(app),
            slots,
            preface_deadline: None,
            tls: None,
        }
    }

    /// Each new connection is a TLS one: its handshake must finish within `deadline`
    /// (`client_timeout`) or the connection is closed.
    pub fn with_tls(mut self, handshake: Arc<TlsHandshake>, deadline: Duration) -> Self {
        self.tls = Some((handshake, deadline));
        self
    }

    /// A new connection must send its first [`PREFACE_LEN`] bytes within `limit` or be
    /// closed: for a listener where pingora peeks for the h2c preface.
    pub fn with_preface_deadline(mut self, limit: Duration) -> Self {
        self.preface_deadline = Some(limit);
        self
    }

    /// The application behind the limit.
    pub fn app(&self) -> &Arc<A> {
        &self.app
    }

    /// What comes before the application on a new connection: the TLS handshake under its
    /// deadline, or the wait for the h2c preface's bytes; `None` when the connection is to
    /// be closed.
    async fn first_bytes(&self, stream: Stream) -> Option<Stream> {
        let mut stream = stream;
        if let Some((tls, deadline)) = &self.tls {
            stream = tls.accept(stream, *deadline).await?;
        }
        if let Some(limit) = self.preface_deadline {
            // Boxed: the wait is over before the connection's long life begins.
            if !Box::pin(preface_arrives(&mut stream, limit)).await {
                return None;
            }
        }
        Some(stream)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionLimit<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(_open) = self.slots.try_open() else {
            tracing::debug!("connection refused: max_connections are open");
            // Boxed: the refusal's read buffer would otherwise be part of every open
            // connection's task, for its whole life.
            Box::pin(async {
                let stream = match &self.tls {
                    Some((tls, _)) => tls.accept(stream, REFUSED_HANDSHAKE_WAIT).await?,
                    None => stream,
                };
                refusal::refuse(stream).await;
                Some(())
            })
            .await;
            return None;
        };
        // Boxed, as above: the handshake's and the peek's state are not kept for the
        // connection's life.
        let stream = Box::pin(self.first_bytes(stream)).await?;
        // A stream handed back is the same connection: serve it under the same slot.
        let mut next = self.app.process_new(stream, shutdown).await;
        while let Some(stream) = next {
            next = self.app.process_new(stream, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// Whether the connection's first [`PREFACE_LEN`] bytes arrive within `limit`. They are
/// put back (pingora's `rewind`): pingora's own peek then finds them at once.
async fn preface_arrives(stream: &mut Stream, limit: Duration) -> bool {
    let mut first = [0u8; PREFACE_LEN];
    match tokio::time::timeout(limit, stream.try_peek(&mut first)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection closed before its first bytes");
            false
        }
        Err(_) => {
            tracing::debug!(?limit, "no request on a new connection in time; closed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let metrics = Metrics::new();
        let slots = ConnectionSlots::new(2, &metrics);
        assert_eq!(metrics.max_connections.get(), 2);
        let a = slots.try_open().expect("first slot");
        let b = slots.try_open().expect("second slot");
        assert_eq!(metrics.open_connections.get(), 2);
        assert_eq!(slots.open_now(), 2);
        assert!(slots.try_open().is_none(), "a third connection is refused");
        assert_eq!(metrics.connections_refused_total.get(), 1);
        drop(a);
        assert_eq!(metrics.open_connections.get(), 1);
        let _c = slots.try_open().expect("a slot given back is reused");
        drop(b);
        assert_eq!(metrics.open_connections.get(), 1);
        assert_eq!(metrics.connections_refused_total.get(), 1);
    }

    /// Serves nothing: the limit's own share of a connection's memory is what is measured.
    struct Nothing;

    #[async_trait]
    impl ServerApp for Nothing {
        async fn process_new(
            self: &Arc<Self>,
            _stream: Stream,
            _shutdown: &ShutdownWatch,
        ) -> Option<Stream> {
            None
        }
    }

    /// The limit's future is part of every open connection for its whole life: it holds a
    /// slot and the application's (boxed) future, not the refusal's read buffer.
    #[tokio::test]
    async fn an_open_connection_costs_the_limit_little_memory() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream: pingora::protocols::l4::stream::Stream = server.into();
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let limit = Arc::new(ConnectionLimit::new(
            Nothing,
            ConnectionSlots::new(1, &Metrics::new()),
        ));
        let serving = limit.process_new(Box::new(stream), &shutdown);
        let bytes = std::mem::size_of_val(&*serving);
        assert!(bytes <= 256, "the limit's future takes {bytes} bytes");
        assert!(serving.await.is_none());
    }
}
