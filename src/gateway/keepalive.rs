//! `[server] keepalive_timeout`: how long an HTTP/1 keep-alive connection may idle between
//! requests, apart from `client_timeout` (how long a request header may take once it has
//! begun). The idle gap itself is waited out before the next session starts
//! (`next_request`, bounded by `keepalive_timeout`); pingora also applies the session's
//! keep-alive timeout to each read of a header, closing quietly when one idles that long.

use std::time::Duration;

use pingora::protocols::http::ServerSession;

/// The idle and header limits of a connection.
#[derive(Debug, Clone, Copy)]
pub struct HeaderDeadlines {
    pub keepalive: Duration,
    pub client: Duration,
}

impl HeaderDeadlines {
    /// Sets the session's idle limit and returns the bound on reading its whole header:
    /// `client_timeout`. On a reused connection the idle gap is already over (the first
    /// bytes of the header came in during the wait for them); on a new one the header must
    /// start and end within `client_timeout`.
    pub fn prepare(&self, session: &mut ServerSession) -> Duration {
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.keepalive.as_secs().max(1)));
        }
        self.client
    }
}
