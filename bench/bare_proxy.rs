//! Bare pingora reverse proxy: the baseline for authgate's overhead.
//!
//! It does nothing but pick the one upstream, so the difference between this
//! and authgate is the cost of authgate's own work (routing, JWT checks,
//! identity headers, rate limiting, metrics). Plain HTTP to the upstream with
//! pingora's connection pool (keep-alive).
//!
//! It runs as authgate does (the same allocator, mimalloc, and one worker
//! thread on pingora's no-steal runtime, authgate's `[server] work_stealing =
//! false` default) unless an environment variable below changes a setting;
//! that is how the runtime knobs in BENCHMARKS.md were measured.
//! `BARE_WORK_STEALING=1` gives pingora's own default runtime.
//!
//!   BARE_LISTEN           address to listen on  (default 127.0.0.1:8082)
//!   BARE_UPSTREAM         upstream address      (default 127.0.0.1:8081)
//!   BARE_THREADS          ServerConf.threads                       (default 1)
//!   BARE_WORK_STEALING    ServerConf.work_stealing, 0 or 1         (default 0, as authgate)
//!   BARE_KEEPALIVE_POOL   ServerConf.upstream_keepalive_pool_size  (default pingora's, 128)
//!   BARE_LISTENER_TASKS   ServerConf.listener_tasks_per_fd         (default pingora's, 1)
//!   BARE_PEER_OPTIONS     1: set the peer timeouts authgate sets (connect 5 s, read 30 s,
//!                         idle 60 s)                               (default 0)
//!   BARE_READ_TIMEOUT     upstream read timeout in seconds only    (default none)
//!   BARE_IDLE_TIMEOUT     pooled upstream connection idle timeout in seconds only
//!   BARE_CLIENT_TIMEOUT   downstream read timeout set on every request, in seconds (what
//!                         authgate's `server.client_timeout` does)  (default none)
//!   BARE_H2C              1: HTTP/2 without TLS (prior knowledge) beside HTTP/1  (default 0)
//!   BARE_TLS_CERT, BARE_TLS_KEY  PEM files: listen with TLS (ALPN h2 then http/1.1)
//!                         instead of plain TCP                     (default plain)
//!   BARE_TOKIO_TIMER_ABOVE  ServerConf.fast_timeout_to_tokio_threshold_seconds: timeouts
//!                         longer than this many seconds use tokio's timer instead of
//!                         pingora's fast timer (default pingora's, 900)

use std::net::SocketAddr;
use std::time::Duration;

/// The allocator authgate's binary uses, so that authgate ÷ bare compares their own work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Bare {
    upstream: SocketAddr,
    peer_options: bool,
    read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    client_timeout: Option<Duration>,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if self.client_timeout.is_some() {
            session.set_read_timeout(self.client_timeout);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if self.peer_options {
            peer.options.connection_timeout = Some(Duration::from_secs(5));
            peer.options.read_timeout = Some(Duration::from_secs(30));
            peer.options.idle_timeout = Some(Duration::from_secs(60));
        }
        if self.read_timeout.is_some() {
            peer.options.read_timeout = self.read_timeout;
        }
        if self.idle_timeout.is_some() {
            peer.options.idle_timeout = self.idle_timeout;
        }
        Ok(Box::new(peer))
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_num(name: &str) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a non-negative integer (got {v:?})")),
    )
}

fn main() {
    let listen = env_or("BARE_LISTEN", "127.0.0.1:8082");
    let upstream: SocketAddr = env_or("BARE_UPSTREAM", "127.0.0.1:8081")
        .parse()
        .expect("BARE_UPSTREAM must be an IP:port address");

    let mut conf = ServerConf {
        threads: env_num("BARE_THREADS").unwrap_or(1),
        work_stealing: env_num("BARE_WORK_STEALING").unwrap_or(0) != 0,
        ..Default::default()
    };
    if let Some(v) = env_num("BARE_KEEPALIVE_POOL") {
        conf.upstream_keepalive_pool_size = v;
    }
    if let Some(v) = env_num("BARE_LISTENER_TASKS") {
        conf.listener_tasks_per_fd = v.max(1);
    }
    if let Some(v) = env_num("BARE_TOKIO_TIMER_ABOVE") {
        conf.fast_timeout_to_tokio_threshold_seconds = Some(v as u64);
    }
    eprintln!(
        "bare_proxy: listen {listen}, upstream {upstream}, threads {}, work_stealing {}, \
         upstream_keepalive_pool_size {}, listener_tasks_per_fd {}, \
         fast_timeout_to_tokio_threshold_seconds {:?}",
        conf.threads,
        conf.work_stealing,
        conf.upstream_keepalive_pool_size,
        conf.listener_tasks_per_fd,
        conf.fast_timeout_to_tokio_threshold_seconds
    );
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let secs = |name| env_num(name).map(|s| Duration::from_secs(s as u64));
    let bare = Bare {
        upstream,
        peer_options: env_num("BARE_PEER_OPTIONS").unwrap_or(0) != 0,
        read_timeout: secs("BARE_READ_TIMEOUT"),
        idle_timeout: secs("BARE_IDLE_TIMEOUT"),
        client_timeout: secs("BARE_CLIENT_TIMEOUT"),
    };
    let mut proxy = http_proxy_service(&server.configuration, bare);
    if env_num("BARE_H2C").unwrap_or(0) != 0 {
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        proxy.app_logic_mut().expect("the proxy app").server_options = Some(options);
    }
    match (
        std::env::var("BARE_TLS_CERT"),
        std::env::var("BARE_TLS_KEY"),
    ) {
        (Ok(cert), Ok(key)) => {
            let mut tls = pingora::listeners::tls::TlsSettings::intermediate(&cert, &key)
                .expect("BARE_TLS_CERT and BARE_TLS_KEY must be a PEM certificate and key");
            tls.enable_h2();
            proxy.add_tls_with_settings(&listen, None, tls);
        }
        _ => proxy.add_tcp(&listen),
    }
    server.add_service(proxy);
    server.run_forever();
}
