//! The upstream pools: round robin over each upstream's servers, with TCP health checks run
//! as background services so an unreachable server is skipped. Peers speak plain HTTP, or
//! HTTPS verified against `sni` (`[[upstreams]] tls = true`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pingora::lb::selection::RoundRobin;
use pingora::lb::{health_check::TcpHealthCheck, Backend, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};
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
    peers: Vec<(Backend, HttpPeer)>,
    /// Turns through `peers` when every server is marked down.
    fallback_turn: AtomicUsize,
}

/// All upstreams, in config order.
pub struct Upstreams {
    pub pools: Vec<Upstream>,
}

/// A peer with keep-alive and the configured timeouts, over TLS when `tls` says so.
fn http_peer(backend: &Backend, server: &ServerConfig, tls: Option<&UpstreamTls>) -> HttpPeer {
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
    peer
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
            let mut lb =
                LoadBalancer::<RoundRobin>::try_from_iter(u.servers.iter().map(|s| s.to_string()))?;
            let peers = lb
                .backends()
                .get_backend()
                .iter()
                .map(|b| (b.clone(), http_peer(b, server, u.tls.as_ref())))
                .collect();
            let mut hc = TcpHealthCheck::new();
            hc.peer_template.options.connection_timeout =
                Some(server.upstream_connect_timeout.min(Duration::from_secs(2)));
            lb.set_health_check(Box::new(UpstreamHealthCheck::new(&u.name, hc)));
            lb.health_check_frequency = Some(u.health_check_interval);
            let service = background_service(&format!("health check {}", u.name), lb);
            pools.push(Upstream {
                name: u.name.clone(),
                balancer: service.task(),
                peers,
                fallback_turn: AtomicUsize::new(0),
            });
            checks.push(service);
        }
        Ok((Self { pools }, checks))
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
