//! The TLS handshake of an HTTPS connection, done by the connection wrapper (after the
//! connection has its slot) with pingora's public `Acceptor` over our own rustls
//! configuration ([`super::listener::server_config`]). The handshake must finish within
//! its deadline (`client_timeout` for an admitted connection), else the connection is
//! closed: a client that connects and sends nothing, or half a ClientHello, holds nothing
//! for long. The TLS stream handed on reports the negotiated ALPN, so pingora serves
//! HTTP/2 on it when the client picked `h2`.

use std::sync::Arc;
use std::time::Duration;

use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::Stream;
use rustls::ServerConfig;

/// The HTTPS listener's handshake.
pub struct TlsHandshake {
    acceptor: Acceptor,
}

impl TlsHandshake {
    pub fn new(config: ServerConfig) -> Self {
        Self {
            acceptor: Acceptor::from_server_config(Arc::new(config)),
        }
    }

    /// Runs the handshake on `stream` (a plain TCP connection from pingora's listener)
    /// within `deadline`; `None` when it fails or takes longer (the connection is closed).
    pub async fn accept(&self, stream: Stream, deadline: Duration) -> Option<Stream> {
        let tcp = match stream.into_any().downcast::<TcpStream>() {
            Ok(tcp) => *tcp,
            Err(_) => {
                tracing::error!("the HTTPS listener handed over a connection that is not TCP");
                return None;
            }
        };
        match tokio::time::timeout(deadline, self.acceptor.tls_handshake(tcp)).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(?deadline, "TLS handshake not finished in time; closed");
                None
            }
        }
    }
}
