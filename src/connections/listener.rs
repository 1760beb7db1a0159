//! The gateway's listening endpoint, with the per-connection read buffer of
//! `[server] read_buffer_size` (pingora's L4 buffer, 64 KiB unless set).

use pingora::listeners::{L4BufferSettings, ListenerConfig};

use crate::config::ServerConfig;

/// The plain-TCP listener on `[server] listen`.
pub fn gateway_listener(server: &ServerConfig) -> ListenerConfig {
    ListenerConfig::tcp(server.listen.to_string())
        .l4_buffer(L4BufferSettings::default().read(server.read_buffer_size))
}
