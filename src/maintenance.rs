//! Timers that keep shared state in shape: the revocation cache follows the database
//! (other processes' revocations, pruning of expired rows) and idle rate-limit keys are
//! evicted so memory stays bounded.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::auth::revocation::{now_ms, sync_loop, RevocationCache};
use crate::auth::AuthService;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::store::Store;

pub struct Maintenance {
    pub auth: Arc<AuthService>,
    pub store: Arc<dyn Store>,
    pub revocations: Arc<RevocationCache>,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    pub sync_interval: Duration,
}

#[async_trait]
impl BackgroundService for Maintenance {
    async fn start(&self, shutdown: ShutdownWatch) {
        let sync = sync_loop(
            self.revocations.clone(),
            self.store.clone(),
            self.sync_interval,
            shutdown.clone(),
        );
        let evict = async {
            let mut shutdown = shutdown.clone();
            let mut ticker = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shutdown.changed() => return,
                }
                self.limits.evict_idle();
                self.auth.login_throttle.evict_idle();
                self.auth
                    .verified
                    .prune(now_ms() / 1000, self.auth.tokens.leeway());
                self.metrics
                    .revocation_cache_entries
                    .set(self.revocations.len() as i64);
            }
        };
        tokio::join!(sync, evict);
    }
}
