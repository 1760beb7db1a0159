//! TLS at the edge: the HTTPS listener's certificates (loaded and checked from PEM files,
//! chosen by SNI, reloaded without a restart), `Strict-Transport-Security`, and the plain
//! listener's redirect to HTTPS. The handshake is authgate's own (pingora listens in plain
//! TCP), so that its rustls configuration resumes sessions for any number of clients. One TLS stack in the process: rustls with ring, the
//! provider pingora's `rustls` feature uses.

pub mod certificates;
pub mod handshake;
pub mod hsts;
pub mod listener;
pub mod redirect;
pub mod reload;
pub mod resolver;

/// Makes ring rustls's process-wide crypto provider. rustls panics at the first handshake
/// when it cannot tell which provider to use; installing one explicitly at start rules that
/// out. Calling it again does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
