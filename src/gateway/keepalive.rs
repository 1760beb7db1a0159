//! `[server] keepalive_timeout`: how long an HTTP/1 keep-alive connection may idle between
//! requests, apart from `client_timeout` (how long a request header may take once it has
//! begun). pingora applies the session's keep-alive timeout to each read of the header; a
//! connection handed back after a response is marked, so the next request on it may idle
//! for `keepalive_timeout` before its header starts.

use std::time::Duration;

use pingora::apps::HttpPersistentSettings;
use pingora::protocols::http::ServerSession;

/// Marks a connection handed back for its next request.
struct ReusedConnection;

/// The idle and header limits of a connection.
#[derive(Debug, Clone, Copy)]
pub struct HeaderDeadlines {
    pub keepalive: Duration,
    pub client: Duration,
}

impl HeaderDeadlines {
    /// Sets the session's idle limit and returns the bound on reading its whole header:
    /// `client_timeout` for a connection's first request; `keepalive_timeout` more for a
    /// later one, whose wait for the first byte is the idle gap (closed quietly by pingora
    /// at `keepalive_timeout`).
    pub fn prepare(&self, session: &mut ServerSession) -> Duration {
        let reused = session
            .take_connection_user_context()
            .is_some_and(|context| context.is::<ReusedConnection>());
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.keepalive.as_secs().max(1)));
        }
        if reused {
            self.keepalive + self.client
        } else {
            self.client
        }
    }
}

/// The settings that carry a finished session's connection to its next request.
pub fn next_request_settings(session: &ServerSession) -> HttpPersistentSettings {
    let mut settings = HttpPersistentSettings::for_session(session);
    settings.set_user_context(Box::new(ReusedConnection));
    settings
}
