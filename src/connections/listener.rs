//! The gateway's listening endpoint, with the per-connection read buffer of
//! `[server] read_buffer_size` (pingora's L4 buffer; 0, the default, leaves it out and
//! reads go straight to the socket).

use pingora::listeners::{L4BufferSettings, ListenerConfig};

/// The plain-TCP listener on `[server] listen`.
pub fn gateway_listener(listen: std::net::SocketAddr, read_buffer_size: usize) -> ListenerConfig {
    ListenerConfig::tcp(listen.to_string())
        .l4_buffer(L4BufferSettings::default().read(read_buffer_size))
}
