//! Bare pingora reverse proxy: the baseline for authgate's overhead.
//!
//! It does nothing but pick the one upstream, so the difference between this
//! and authgate is the cost of authgate's own work (routing, JWT checks,
//! identity headers, rate limiting, metrics). Single worker thread, plain HTTP
//! to the upstream with pingora's connection pool (keep-alive).
//!
//!   BARE_LISTEN   address to listen on  (default 127.0.0.1:8082)
//!   BARE_UPSTREAM upstream address      (default 127.0.0.1:8081)

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let listen = env_or("BARE_LISTEN", "127.0.0.1:8082");
    let upstream: SocketAddr = env_or("BARE_UPSTREAM", "127.0.0.1:8081")
        .parse()
        .expect("BARE_UPSTREAM must be an IP:port address");

    let conf = ServerConf {
        threads: 1,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
