//! The gateway's listening endpoints, with the per-connection read buffers (pingora's L4
//! buffer) of `[server] read_buffer_size` (0 by default: none, reads go straight to the
//! socket) and `[tls] read_buffer_size` (pingora's 64 KiB by default).

use pingora::listeners::{L4BufferSettings, ListenerConfig};

/// The plain-TCP listener on `[server] listen`.
pub fn gateway_listener(listen: std::net::SocketAddr, read_buffer_size: usize) -> ListenerConfig {
    ListenerConfig::tcp(listen.to_string())
        .l4_buffer(L4BufferSettings::default().read(read_buffer_size))
}

/// The HTTPS listener on `[tls] listen`, with `[tls] read_buffer_size` (the buffer under
/// TLS). pingora accepts plain TCP here: the TLS handshake is the connection wrapper's
/// (`ConnectionLimit::with_tls`).
pub fn gateway_tls_listener(
    listen: std::net::SocketAddr,
    read_buffer_size: usize,
) -> ListenerConfig {
    ListenerConfig::tcp(listen.to_string())
        .l4_buffer(L4BufferSettings::default().read(read_buffer_size))
}
