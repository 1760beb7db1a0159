//! The upstream pools: round robin over each upstream's servers, with TCP health checks run
//! as background services so an unreachable server is skipped. Peers speak plain HTTP, or
//! HTTPS verified against `sni` (`[[upstreams]] tls = true`); HTTP/1.1, or HTTP/2 with
//! `http2 = true`. Upstreams added or changed
//! by a reload run the same check as a task of their own, stopped when they are dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pingora::lb::selection::RoundRobin;
use pingora::lb::{health_check::TcpHealthCheck, Backend, LoadBalancer};
use pingora::services::background::{background_service, BackgroundService, GenBackgroundService};
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};

use super::health_check::UpstreamHealthCheck;
use crate::config::{ServerConfig, UpstreamConfig, UpstreamTls};

/// One named upstream.
pub struct Upstream {
    pub name: String,
    pub balancer: Arc<LoadBalancer<RoundRobin>>,
    /// Every server with its peer, built once: a request clones a peer instead of
    /// building one, and a single-server upstream skips the balancer's iterator.
    peers: Peers,
    /// Turns through `peers` when every server is marked down.
    fallback_turn: AtomicUsize,
    /// What this upstream was built from: a reload keeps it when this is unchanged.
    settings: UpstreamSettings,
    /// For an upstream built by a reload: stops its health-check task when dropped.
    _own_health_check: Option<HealthCheckTask>,
}

/// Everything an upstream is built from.
#[derive(Debug, Clone, PartialEq)]
struct UpstreamSettings {
    config: UpstreamConfig,
    connect_timeout: Duration,
    read_timeout: Duration,
}

/// A health-check task started by a reload; told to stop when the upstream goes.
struct HealthCheckTask(tokio::sync::watch::Sender<bool>);

impl Drop for HealthCheckTask {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// An upstream's servers, each with its peer.
type Peers = Vec<(Backend, HttpPeer)>;

/// All upstreams, in config order.
pub struct Upstreams {
    pub pools: Vec<Arc<Upstream>>,
}

/// Concurrent streams the gateway opens on one HTTP/2 upstream connection before it opens
/// another (the server's own `SETTINGS_MAX_CONCURRENT_STREAMS` lowers it).
const H2_STREAMS_PER_CONNECTION: usize = 100;

/// A peer with keep-alive and the configured timeouts, over TLS when `tls` says so, and
/// speaking HTTP/2 only when `http2` says so.
fn http_peer(
    backend: &Backend,
    server: &ServerConfig,
    tls: Option<&UpstreamTls>,
    http2: bool,
) -> HttpPeer {
    let mut peer = match tls {
        None => HttpPeer::new(backend.addr.clone(), false, String::new()),
        Some(tls) => {
            let mut peer = HttpPeer::new(backend.addr.clone(), true, tls.sni.clone());
            peer.options.verify_cert = tls.verify;
            peer.options.verify_hostname = tls.verify;
            peer.options.ca = tls.ca.as_ref().map(|ders| {
                // Every certificate was parsed when the config was validated, so pingora's
                // parse (which panics on bad DER) cannot fail here.
                ders.iter()
                    .map(|der| WrappedX509::new(der.clone(), parse_x509))
                    .collect::<Vec<_>>()
                    .into()
            });
            peer
        }
    };
    peer.options.connection_timeout = Some(server.upstream_connect_timeout);
    peer.options.read_timeout = Some(server.upstream_read_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    if http2 {
        // ALPN `h2` alone over TLS; without TLS the minimum of 2 means prior knowledge.
        peer.options.set_http_version(2, 2);
        peer.options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
    }
    peer
}

/// Whether `peer` is spoken to in HTTP/2.
pub fn speaks_h2(peer: &HttpPeer) -> bool {
    peer.options.alpn.get_min_http_version() == 2
}

impl UpstreamSettings {
    fn new(config: &UpstreamConfig, server: &ServerConfig) -> Self {
        Self {
            config: config.clone(),
            connect_timeout: server.upstream_connect_timeout,
            read_timeout: server.upstream_read_timeout,
        }
    }
}

/// An upstream's balancer with its TCP health check, and its servers' peers.
fn balancer(
    u: &UpstreamConfig,
    server: &ServerConfig,
) -> std::io::Result<(LoadBalancer<RoundRobin>, Peers)> {
    let mut lb =
        LoadBalancer::<RoundRobin>::try_from_iter(u.servers.iter().map(|s| s.to_string()))?;
    let peers = lb
        .backends()
        .get_backend()
        .iter()
        .map(|b| (b.clone(), http_peer(b, server, u.tls.as_ref(), u.http2)))
        .collect();
    let mut hc = TcpHealthCheck::new();
    hc.peer_template.options.connection_timeout =
        Some(server.upstream_connect_timeout.min(Duration::from_secs(2)));
    lb.set_health_check(Box::new(UpstreamHealthCheck::new(&u.name, hc)));
    lb.health_check_frequency = Some(u.health_check_interval);
    Ok((lb, peers))
}

/// The health-check services that must be added to the server beside the proxy.
pub type HealthChecks = Vec<GenBackgroundService<LoadBalancer<RoundRobin>>>;

impl Upstreams {
    pub fn build(
        configs: &[UpstreamConfig],
        server: &ServerConfig,
    ) -> std::io::Result<(Self, HealthChecks)> {
        let mut pools = Vec::with_capacity(configs.len());
        let mut checks = Vec::with_capacity(configs.len());
        for u in configs {
            if let Some(tls) = u.tls.as_ref().filter(|t| !t.verify) {
                tracing::warn!(
                    upstream = %u.name,
                    sni = %tls.sni,
                    "upstream TLS certificates are not verified (verify = false): anyone on the \
                     path can impersonate this upstream"
                );
            }
            let (lb, peers) = balancer(u, server)?;
            let service = background_service(&format!("health check {}", u.name), lb);
            pools.push(Arc::new(Upstream {
                name: u.name.clone(),
                balancer: service.task(),
                peers,
                fallback_turn: AtomicUsize::new(0),
                settings: UpstreamSettings::new(u, server),
                _own_health_check: None,
            }));
            checks.push(service);
        }
        Ok((Self { pools }, checks))
    }

    /// The upstreams of a reloaded configuration. One whose name, servers, check interval
    /// and timeouts are unchanged is kept as it is, health state included; any other is
    /// built anew (its servers count as healthy until its first check, which starts at
    /// once, and `peer` tries marked-down servers anyway). Runs inside a tokio runtime.
    pub fn rebuild(
        previous: &Self,
        configs: &[UpstreamConfig],
        server: &ServerConfig,
    ) -> std::io::Result<Self> {
        let mut pools = Vec::with_capacity(configs.len());
        for u in configs {
            let settings = UpstreamSettings::new(u, server);
            if let Some(kept) = previous.pools.iter().find(|p| p.settings == settings) {
                pools.push(kept.clone());
                continue;
            }
            let (lb, peers) = balancer(u, server)?;
            let lb = Arc::new(lb);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let task = lb.clone();
            tokio::spawn(async move { task.start(stopped).await });
            pools.push(Arc::new(Upstream {
                name: u.name.clone(),
                balancer: lb,
                peers,
                fallback_turn: AtomicUsize::new(0),
                settings,
                _own_health_check: Some(HealthCheckTask(stop)),
            }));
        }
        Ok(Self { pools })
    }

    /// A healthy server of upstream `index`, as a peer (plain or TLS) with keep-alive. When
    /// every server is marked down, one of them anyway, in turn (as nginx does): a mark is
    /// only as fresh as the last health check, and a server that came up since (one
    /// started a moment after the gateway) should be tried at once, its answer deciding,
    /// not answered 502 for a whole check interval.
    pub fn peer(&self, index: usize) -> Option<Box<HttpPeer>> {
        let pool = &self.pools[index];
        let healthy = match pool.peers.as_slice() {
            [(backend, peer)] => pool.balancer.backends().ready(backend).then_some(peer),
            peers => pool
                .balancer
                .select(b"", 256)
                .and_then(|backend| peers.iter().find(|(b, _)| *b == backend))
                .map(|(_, peer)| peer),
        };
        let peer = match healthy {
            Some(peer) => peer,
            None => {
                let turn = pool.fallback_turn.fetch_add(1, Ordering::Relaxed);
                &pool.peers.get(turn % pool.peers.len().max(1))?.1
            }
        };
        Some(Box::new(peer.clone()))
    }

    /// Servers of upstream `index`, and how many of them pass their health check.
    pub fn server_counts(&self, index: usize) -> (usize, usize) {
        let lb = &self.pools[index].balancer;
        let backends = lb.backends().get_backend();
        let healthy = backends.iter().filter(|b| lb.backends().ready(b)).count();
        (backends.len(), healthy)
    }

    /// True when upstream `index` has at least one server passing its health check.
    pub fn has_healthy(&self, index: usize) -> bool {
        let lb = &self.pools[index].balancer;
        lb.backends()
            .get_backend()
            .iter()
            .any(|b| lb.backends().ready(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(servers: &str) -> crate::config::Config {
        let text = format!(
            "[[upstreams]]\nname = \"api\"\nservers = [{servers}]\n\
             [[upstreams]]\nname = \"other\"\nservers = [\"127.0.0.1:8001\"]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"api\"\n"
        );
        let file = crate::config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        crate::config::Config::try_from(file).unwrap()
    }

    #[tokio::test]
    async fn a_reload_keeps_unchanged_upstreams_and_rebuilds_changed_ones() {
        let before = config("\"127.0.0.1:8000\"");
        let (first, _checks) = Upstreams::build(&before.upstreams, &before.server).unwrap();
        let after = config("\"127.0.0.1:8000\", \"127.0.0.1:8002\"");
        let second = Upstreams::rebuild(&first, &after.upstreams, &after.server).unwrap();
        assert!(
            !Arc::ptr_eq(&first.pools[0], &second.pools[0]),
            "changed servers: rebuilt"
        );
        assert_eq!(
            second.server_counts(0),
            (2, 2),
            "new servers count as healthy"
        );
        assert!(second.pools[0]._own_health_check.is_some());
        assert!(
            Arc::ptr_eq(&first.pools[1], &second.pools[1]),
            "unchanged: kept with its health state"
        );
        let third = Upstreams::rebuild(&second, &after.upstreams, &after.server).unwrap();
        assert!(Arc::ptr_eq(&second.pools[0], &third.pools[0]));
    }

    #[tokio::test]
    async fn an_upstream_added_by_a_reload_is_health_checked() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let before = config("\"127.0.0.1:8000\"");
        let (first, _checks) = Upstreams::build(&before.upstreams, &before.server).unwrap();
        let mut after = config(&format!("\"{closed}\""));
        after.upstreams[0].health_check_interval = Duration::from_millis(50);
        let second = Upstreams::rebuild(&first, &after.upstreams, &after.server).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while second.has_healthy(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the refused server is still marked healthy after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(second.server_counts(0), (1, 0));
    }
}
