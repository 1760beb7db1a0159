//! The in-memory revocation list every proxied request is checked against. The database is
//! the source of truth; this cache mirrors its unexpired rows and knows how fresh it is, so
//! required routes can fail closed when the database has not been read for too long.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use uuid::Uuid;

use super::tokens::VerifiedToken;
use crate::store::{Revocation, Store, StoreError, UserCutoff};

/// Rows read from the database per query when syncing.
const SYNC_PAGE_ROWS: usize = 50_000;

/// Revoked session and token ids with the time after which they no longer matter.
pub struct RevocationCache {
    entries: DashMap<Uuid, i64>,
    /// Per user: tokens issued at or before `.0` are revoked; `.1` is when that stops mattering.
    cutoffs: DashMap<i64, (i64, i64)>,
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
            cutoffs: DashMap::new(),
            cursor: AtomicI64::new(0),
            synced_at_ms: AtomicI64::new(0),
            max_staleness_ms: max_staleness.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// True when the token's session or the token itself has been revoked, or its user
    /// logged out everywhere after it was issued.
    pub fn is_revoked(&self, token: &VerifiedToken) -> bool {
        self.entries.contains_key(&token.sid)
            || self.entries.contains_key(&token.jti)
            || self
                .cutoffs
                .get(&token.user_id)
                .is_some_and(|c| token.iat <= c.0)
    }

    /// True while the cache reflects the database recently enough to be trusted.
    pub fn is_current(&self) -> bool {
        now_ms() - self.synced_at_ms.load(Ordering::Relaxed) <= self.max_staleness_ms
    }

    /// Milliseconds since the last successful read of the database.
    pub fn sync_age_ms(&self) -> i64 {
        now_ms() - self.synced_at_ms.load(Ordering::Relaxed)
    }

    /// `[database] max_staleness`, in milliseconds.
    pub fn max_staleness_ms(&self) -> i64 {
        self.max_staleness_ms
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.cutoffs.len()
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

    /// The time to issue a new token of `user_id` at: `now`, or just past a cutoff set in
    /// this very second (logout everywhere followed at once by a new login), so the new
    /// token is not caught by it. At most one second ahead, well within any leeway.
    pub fn issue_time(&self, user_id: i64, now: i64) -> i64 {
        match self.cutoffs.get(&user_id) {
            Some(c) if c.0 >= now => c.0 + 1,
            _ => now,
        }
    }

    /// Adds a user cutoff this process has already committed to the database.
    pub fn insert_cutoff(&self, cutoff: &UserCutoff) {
        self.cutoffs
            .entry(cutoff.user_id)
            .and_modify(|c| *c = (c.0.max(cutoff.not_before), c.1.max(cutoff.expires_at)))
            .or_insert((cutoff.not_before, cutoff.expires_at));
    }

    /// Reads every revocation newer than the cursor (all of them at start-up), a page at
    /// a time, so that only one page of rows is held besides the cache itself.
    pub async fn sync(&self, store: &dyn Store, now: i64) -> Result<usize, StoreError> {
        self.sync_in_pages(store, now, SYNC_PAGE_ROWS).await
    }

    async fn sync_in_pages(
        &self,
        store: &dyn Store,
        now: i64,
        page: usize,
    ) -> Result<usize, StoreError> {
        let mut added = 0;
        loop {
            let batch = store
                .revocations_after(self.cursor.load(Ordering::Acquire), now, page)
                .await?;
            for r in &batch.revocations {
                self.insert(r);
            }
            for c in &batch.cutoffs {
                self.insert_cutoff(c);
            }
            self.cursor.fetch_max(batch.cursor, Ordering::AcqRel);
            added += batch.revocations.len() + batch.cutoffs.len();
            if batch.rows < page {
                break;
            }
        }
        self.synced_at_ms.store(now_ms(), Ordering::Relaxed);
        Ok(added)
    }

    /// Drops entries that expired before `now`: no token they cover can still verify.
    pub fn prune(&self, now: i64) {
        self.entries.retain(|_, expires_at| *expires_at >= now);
        self.cutoffs.retain(|_, (_, expires_at)| *expires_at >= now);
    }
}

/// Keeps the cache in step with the database: syncs whenever the store signals a new
/// revocation (PostgreSQL's LISTEN/NOTIFY) and in any case every `interval` (the catch-up
/// for missed signals, and the only way SQLite processes learn of each other's), and
/// prunes expired rows from both every `prune_every` ticks. A failed sync leaves the cache
/// as it was and its age growing, so required routes fail closed once it is stale.
pub async fn sync_loop(
    cache: Arc<RevocationCache>,
    store: Arc<dyn Store>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let wake = store.subscribe();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prune_every = (60_000 / interval.as_millis().max(1)).max(1) as u64;
    let mut tick: u64 = 0;
    loop {
        let pushed = async {
            match &wake {
                Some(wake) => wake.notified().await,
                None => std::future::pending().await,
            }
        };
        let periodic = tokio::select! {
            _ = ticker.tick() => true,
            _ = pushed => false,
            _ = shutdown.changed() => return,
        };
        let now = now_ms() / 1000;
        if let Err(e) = cache.sync(store.as_ref(), now).await {
            tracing::warn!(error = %e, "cannot read revocations; required routes fail closed once the cache is stale");
            continue;
        }
        if !periodic {
            continue;
        }
        tick += 1;
        if tick.is_multiple_of(prune_every) {
            cache.prune(now);
            if let Err(e) = store.prune_revocations(now).await {
                tracing::warn!(error = %e, "cannot prune expired revocations");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RevokedKind, SqliteStore};

    #[tokio::test]
    async fn sync_reads_every_page_including_pages_of_expired_rows_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("authgate.db")).unwrap();
        let now = 1_000_000;
        // Rows 1-3 unexpired, 4-9 expired (two whole pages of 3), 10-11 unexpired.
        let expiries = [1, 1, 1, -1, -1, -1, -1, -1, -1, 1, 1].map(|d| now + d);
        let mut ids = Vec::new();
        for expires_at in expiries {
            let id = Uuid::new_v4();
            store
                .revoke(Revocation {
                    id,
                    kind: RevokedKind::Token,
                    user_id: 1,
                    expires_at,
                })
                .await
                .unwrap();
            ids.push((id, expires_at >= now));
        }
        let cache = RevocationCache::new(Duration::from_secs(5));
        assert_eq!(cache.sync_in_pages(&store, now, 3).await.unwrap(), 5);
        for (id, live) in ids {
            assert_eq!(cache.entries.contains_key(&id), live);
        }
        assert_eq!(cache.cursor.load(Ordering::Acquire), 11);
        assert!(cache.is_current());
    }
}
