//! The live configuration: every per-request part of the gateway that a reload may change
//! (router, upstreams, identity headers, CORS, rate limits, route metrics), held as one
//! value in an `ArcSwap`. A request takes the current value once when it starts and uses
//! it to the end, so a reload never mixes two configurations within one request.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::access_log::RequestMetrics;
use super::cors::Cors;
use super::identity::IdentityHeaders;
use super::router::Router;
use super::upstreams::{HealthChecks, Upstreams};
use crate::config::Config;
use crate::limits::RateLimits;
use crate::metrics::Metrics;

/// One whole configuration as the request path uses it.
pub struct LiveConfig {
    pub router: Router,
    pub upstreams: Arc<Upstreams>,
    pub identity: IdentityHeaders,
    pub cors: Cors,
    pub limits: Arc<RateLimits>,
    pub request_metrics: RequestMetrics,
    /// Upstream index of every route, in config order.
    pub route_upstreams: Vec<usize>,
}

/// The current live configuration, swapped whole by a reload.
pub type SharedLiveConfig = Arc<ArcSwap<LiveConfig>>;

impl LiveConfig {
    /// The live configuration at start; the upstreams' health checks are pingora
    /// background services the caller adds to the server.
    pub fn first(config: &Config, metrics: &Metrics) -> std::io::Result<(Self, HealthChecks)> {
        let (upstreams, checks) = Upstreams::build(&config.upstreams, &config.server)?;
        let limits = RateLimits::new(&config.rate_limits, &config.routes);
        Ok((Self::assemble(config, metrics, upstreams, limits), checks))
    }

    /// The live configuration after a reload: upstreams whose settings did not change
    /// keep their servers' health state, and limits that did not change keep their
    /// counters. Must run inside a tokio runtime (new upstreams start their own checks).
    pub fn next(previous: &Self, config: &Config, metrics: &Metrics) -> std::io::Result<Self> {
        let upstreams = Upstreams::rebuild(&previous.upstreams, &config.upstreams, &config.server)?;
        let limits =
            RateLimits::carried_over(&previous.limits, &config.rate_limits, &config.routes);
        Ok(Self::assemble(config, metrics, upstreams, limits))
    }

    fn assemble(
        config: &Config,
        metrics: &Metrics,
        upstreams: Upstreams,
        limits: RateLimits,
    ) -> Self {
        let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
        // An upstream added by a reload exports its error counter at 0, like those at start.
        for name in &names {
            metrics.upstream_errors_total.with_label_values(&[name]);
        }
        let upstream_index = |name: &str| names.iter().position(|n| *n == name).unwrap_or(0);
        let router = Router::new(
            &config.routes,
            config.forward_auth.path.clone(),
            upstream_index,
        )
        .with_openapi(config.server.openapi)
        .with_account_paths(&config.account);
        Self {
            router,
            upstreams: Arc::new(upstreams),
            identity: IdentityHeaders::new(&config.identity),
            cors: Cors::new(&config.cors),
            limits: Arc::new(limits),
            request_metrics: RequestMetrics::new(metrics, &config.routes),
            route_upstreams: config
                .routes
                .iter()
                .map(|r| upstream_index(&r.upstream))
                .collect(),
        }
    }
}
