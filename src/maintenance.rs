//! Timers that keep shared state in shape: the revocation cache follows the database
//! (other processes' revocations, pruning of expired rows), the signing keys follow it too
//! (rotations and retirements made elsewhere) and rotate on schedule, and idle rate-limit
//! keys are evicted so memory stays bounded.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::auth::keys::{rotation, KeyAlgorithm, KeyEncryptionKey};
use crate::auth::revocation::{now_ms, sync_loop, RevocationCache};
use crate::auth::AuthService;
use crate::config::TokenConfig;
use crate::gateway::live::SharedLiveConfig;
use crate::metrics::Metrics;
use crate::store::Store;

pub struct Maintenance {
    pub auth: Arc<AuthService>,
    pub store: Arc<dyn Store>,
    pub revocations: Arc<RevocationCache>,
    /// Its rate limits' idle keys are evicted (those of the configuration of the moment).
    pub live: SharedLiveConfig,
    pub metrics: Arc<Metrics>,
    pub sync_interval: Duration,
    pub key_rotation: Option<KeyRotation>,
}

/// Keys this gateway makes by itself: a new one every `every` seconds (scheduled rotation),
/// and one at once when every stored key has been retired.
pub struct KeyRotation {
    algorithm: KeyAlgorithm,
    kek: KeyEncryptionKey,
    every: Option<i64>,
    publish_delay: i64,
}

impl KeyRotation {
    pub fn from_config(tokens: &TokenConfig) -> Option<Self> {
        Some(Self {
            algorithm: tokens.algorithm?,
            kek: KeyEncryptionKey::from_secret(tokens.key_encryption_secret.as_deref()?),
            every: tokens.key_rotation.map(secs),
            publish_delay: secs(tokens.key_publish_delay),
        })
    }
}

fn secs(d: Duration) -> i64 {
    d.as_secs().min(i64::MAX as u64) as i64
}

impl Maintenance {
    /// Adds a key when one is due (scheduled rotation, or every key retired), then follows
    /// the database's keys. A retired key's tokens leave the
    /// verified-token cache with it. A failed read keeps the keys last read.
    async fn sync_keys(&self) {
        if let Some(r) = &self.key_rotation {
            let now = now_ms() / 1000;
            let store = self.store.as_ref();
            let made = match r.every {
                Some(every) => {
                    rotation::rotate_if_due(store, &r.kek, r.algorithm, now, every, r.publish_delay)
                        .await
                }
                // Every key retired: signing would stop, so a new key signs at once.
                None if self.auth.tokens.keys().load().keys().is_empty() => {
                    rotation::ensure_signing_key(store, &r.kek, r.algorithm, now)
                        .await
                        .map(|kid| kid.is_some())
                }
                None => Ok(false),
            };
            match made {
                Ok(true) => tracing::info!(algorithm = %r.algorithm, "signing key added"),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "cannot add a signing key"),
            }
        }
        match self.auth.tokens.keys().sync(self.store.as_ref()).await {
            Ok(true) => self.auth.verified.clear(),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the signing keys"),
        }
    }
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
                self.live.load().limits.evict_idle();
                self.auth.login_throttle.evict_idle();
                self.auth
                    .verified
                    .prune(now_ms() / 1000, self.auth.tokens.leeway());
                self.metrics
                    .revocation_cache_entries
                    .set(self.revocations.len() as i64);
            }
        };
        let keys = async {
            let mut shutdown = shutdown.clone();
            let mut ticker = tokio::time::interval(self.sync_interval);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shutdown.changed() => return,
                }
                self.sync_keys().await;
            }
        };
        tokio::join!(sync, evict, keys);
    }
}
