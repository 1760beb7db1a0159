//! The upstream servers' health check: pingora's TCP connect check, with log lines a person
//! can read. pingora logs a flip as `{summary} becomes unhealthy, {error}`; its default
//! summary and its connect errors print the whole peer, options included (hundreds of
//! characters). Here the summary names the upstream and the server, and the error keeps
//! only its kind and cause: `upstream "api" server 127.0.0.1:8000 becomes unhealthy,
//! ConnectRefused context: Connection refused (os error 111)`.

use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::{Error, Result};

/// A TCP connect check of one upstream's servers.
pub struct UpstreamHealthCheck {
    upstream: String,
    tcp: Box<TcpHealthCheck>,
}

impl UpstreamHealthCheck {
    pub fn new(upstream: &str, tcp: Box<TcpHealthCheck>) -> Self {
        Self {
            upstream: upstream.to_string(),
            tcp,
        }
    }
}

/// `error` cut to its kind and its root cause (the operating system's words), without the
/// contexts that repeat the kind and dump the peer.
fn short_error(error: &Error) -> Box<Error> {
    let mut current = error;
    let reason = loop {
        match &current.cause {
            Some(cause) => {
                if let Some(inner) = cause.downcast_ref::<Error>() {
                    current = inner;
                } else if let Some(inner) = cause.downcast_ref::<Box<Error>>() {
                    current = inner;
                } else {
                    break cause.to_string();
                }
            }
            None => break current.etype.as_str().to_string(),
        }
    };
    Error::explain(error.etype.clone(), reason)
}

#[async_trait]
impl HealthCheck for UpstreamHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        self.tcp.check(target).await.map_err(|e| short_error(&e))
    }

    fn backend_summary(&self, target: &Backend) -> String {
        format!("upstream {:?} server {}", self.upstream, target.addr)
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.tcp.health_threshold(success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_reported_in_one_short_line() {
        // A port nothing listens on: bind, note it, close.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let check = UpstreamHealthCheck::new("api", TcpHealthCheck::new());
        let backend = Backend::new(&addr.to_string()).unwrap();
        let error = check.check(&backend).await.unwrap_err();
        let line = format!(
            "{} becomes unhealthy, {error}",
            check.backend_summary(&backend)
        );
        assert!(
            line.starts_with(&format!("upstream \"api\" server {addr} becomes unhealthy")),
            "{line}"
        );
        assert!(!line.contains("PeerOptions"), "{line}");
        assert!(line.len() < 160, "{} characters: {line}", line.len());
    }
}
