//! The HTTPS listener's rustls configuration, built by authgate rather than by pingora's
//! TLS listener (which in pingora 0.9 always uses rustls's defaults: no session tickets
//! and a 256-entry session cache, so only the last ~128 TLS 1.3 / ~256 TLS 1.2 clients
//! could resume). pingora listens in plain TCP on `[tls] listen`; the handshake is done
//! with this configuration by [`super::handshake::TlsHandshake`], inside the connection
//! wrapper, under `client_timeout`.
//!
//! - TLS 1.2 and 1.3 only, rustls's default cipher suites with ring (all AEAD with
//!   forward secrecy, within Mozilla's "intermediate" list);
//! - certificates from our resolver, so a reload swaps them for the next handshake;
//! - ALPN `h2` then `http/1.1` (pingora serves HTTP/2 for any HTTP app when the client
//!   picks `h2`);
//! - session resumption for any number of returning clients: stateless tickets
//!   (TLS 1.3 and TLS 1.2 clients that ask for them) from ring's ticketer, whose key
//!   rotates every 6 hours with the previous key still accepted, and a server-side cache
//!   of [`SESSION_CACHE_ENTRIES`] sessions for TLS 1.2 clients without tickets. Ticket
//!   keys live in the process: after a restart or an upgrade, clients do one full
//!   handshake again.

use std::sync::Arc;

use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;

use super::resolver::CertificateResolver;

/// Sessions kept for TLS 1.2 resumption by session id (a few hundred bytes each).
pub const SESSION_CACHE_ENTRIES: usize = 20_000;

/// The listener's rustls configuration, certificates coming from `resolver`.
pub fn server_config(resolver: Arc<CertificateResolver>) -> Result<ServerConfig, rustls::Error> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(config)
}
