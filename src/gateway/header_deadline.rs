//! One total deadline for reading a request's header, for the apps on pingora-core's own
//! `HttpServer` (the plain listener's HTTPS redirect). The gateway's request loop reads
//! its header under `client_timeout` itself.
//!
//! pingora reads the request header before the app runs, with a fixed 60 s limit per read:
//! a client that sends one byte a minute holds its connection as long as it likes.
//! [`HeaderDeadline`] wraps the app and races each request against `client_timeout`; the
//! app calls [`header_received`] first, after which the request runs to its end. A client
//! still sending its header when the deadline passes — or a keep-alive connection idle
//! that long between requests — has its connection closed, like nginx's
//! `client_header_timeout`.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use prometheus::IntCounter;

tokio::task_local! {
    /// Whether the current request's header has been read; set by [`header_received`].
    static HEADER_RECEIVED: Cell<bool>;
}

/// Marks the current request's header as read: the deadline no longer applies to it.
/// Outside a [`HeaderDeadline`] this does nothing.
pub fn header_received() {
    let _ = HEADER_RECEIVED.try_with(|received| received.set(true));
}

/// An HTTP app whose requests must finish sending their header within `limit`.
pub struct HeaderDeadline<A> {
    app: Arc<A>,
    limit: Duration,
    timeouts: IntCounter,
}

impl<A> HeaderDeadline<A> {
    pub fn new(app: A, limit: Duration, timeouts: IntCounter) -> Self {
        Self {
            app: Arc::new(app),
            limit,
            timeouts,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for HeaderDeadline<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        HEADER_RECEIVED
            .scope(Cell::new(false), async {
                let mut request = self.app.process_new_http(session, shutdown);
                tokio::select! {
                    biased;
                    reused = &mut request => return reused,
                    () = tokio::time::sleep(self.limit) => {}
                }
                if HEADER_RECEIVED.with(Cell::get) {
                    return request.await;
                }
                // Dropping the request closes the connection.
                self.timeouts.inc();
                tracing::debug!(limit = ?self.limit, "request header not received in time");
                None
            })
            .await
    }

    async fn http_cleanup(&self) {
        self.app.http_cleanup().await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.app.server_options()
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        self.app.h2_options()
    }

    async fn process_custom_session(
        self: Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.app
            .clone()
            .process_custom_session(stream, shutdown)
            .await
    }
}
