//! The in-memory revocation list every proxied request is checked against. The database is
//! the source of truth; this cache mirrors its unexpired rows and knows how fresh it is, so
//! required routes can fail closed when the database has not been read for too long.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use uuid::Uuid;

use crate::store::{Revocation, Store, StoreError};

/// Revoked session and token ids with the time after which they no longer matter.
pub struct RevocationCache {
    entries: DashMap<Uuid, i64>,
    /// Row id of the newest revocation read from the database.
    cursor: AtomicI64,
    /// Unix milliseconds of the last successful read of the database.
    synced_at_ms: AtomicI64,
    max_staleness_ms: i64,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RevocationCache {
    pub fn new(max_staleness: Duration) -> Self {
        Self {
            entries: DashMap::new(),
            cursor: AtomicI64::new(0),
            synced_at_ms: AtomicI64::new(0),
            max_staleness_ms: max_staleness.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// True when the session or the token has been revoked.
    pub fn is_revoked(&self, sid: &Uuid, jti: &Uuid) -> bool {
        self.entries.contains_key(sid) || self.entries.contains_key(jti)
    }

    /// True while the cache reflects the database recently enough to be trusted.
    pub fn is_current(&self) -> bool {
        now_ms() - self.synced_at_ms.load(Ordering::Relaxed) <= self.max_staleness_ms
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a revocation this process has already committed to the database.
    pub fn insert(&self, revocation: &Revocation) {
        self.entries
            .entry(revocation.id)
            .and_modify(|e| *e = (*e).max(revocation.expires_at))
            .or_insert(revocation.expires_at);
    }

    /// Reads every revocation newer than the cursor (all of them at start-up).
    pub async fn sync(&self, store: &dyn Store, now: i64) -> Result<usize, StoreError> {
        let (rows, cursor) = store
            .revocations_after(self.cursor.load(Ordering::Acquire), now)
            .await?;
        for r in &rows {
            self.insert(r);
        }
        self.cursor.fetch_max(cursor, Ordering::AcqRel);
        self.synced_at_ms.store(now_ms(), Ordering::Relaxed);
        Ok(rows.len())
    }

    /// Drops entries that expired before `now`: no token they cover can still verify.
    pub fn prune(&self, now: i64) {
        self.entries.retain(|_, expires_at| *expires_at >= now);
    }
}

/// Keeps the cache in step with the database: picks up other processes' revocations every
/// `interval` and prunes expired rows from both every `prune_every` ticks.
pub async fn sync_loop(
    cache: Arc<RevocationCache>,
    store: Arc<dyn Store>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prune_every = (60_000 / interval.as_millis().max(1)).max(1) as u64;
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        tick += 1;
        let now = now_ms() / 1000;
        if let Err(e) = cache.sync(store.as_ref(), now).await {
            tracing::warn!(error = %e, "cannot read revocations; required routes fail closed once the cache is stale");
            continue;
        }
        if tick.is_multiple_of(prune_every) {
            cache.prune(now);
            if let Err(e) = store.prune_revocations(now).await {
                tracing::warn!(error = %e, "cannot prune expired revocations");
            }
        }
    }
}
