//! A bounded cache of access tokens whose signature and claims have already verified, as
//! Envoy's jwt_authn keeps one. A hit skips the base64, JSON and HMAC work of a decode;
//! the caller still checks expiry and revocation on every request. The key is the whole
//! token, so a token that differs in a single byte is a miss and is verified in full.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::tokens::VerifiedToken;

/// Verified tokens by their text, at most about `capacity` of them.
pub struct VerifiedCache {
    entries: DashMap<Box<str>, Arc<VerifiedToken>, ahash::RandomState>,
    /// Inserts since the last reset; cheaper to keep than `DashMap::len` on every insert.
    inserted: AtomicUsize,
    capacity: usize,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: DashMap::with_hasher(ahash::RandomState::new()),
            inserted: AtomicUsize::new(0),
            capacity,
        }
    }

    pub fn get(&self, token: &str) -> Option<Arc<VerifiedToken>> {
        self.entries.get(token).map(|e| e.value().clone())
    }

    /// Remembers a verified token. When the bound is reached the cache starts over: a
    /// flood of distinct tokens costs verification, never memory.
    pub fn insert(&self, token: &str, verified: Arc<VerifiedToken>) {
        if self.capacity == 0 {
            return;
        }
        if self.inserted.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.entries.clear();
            self.inserted.store(1, Ordering::Relaxed);
        }
        self.entries.insert(token.into(), verified);
    }

    /// Drops tokens that expired before `now` (with `leeway`).
    pub fn prune(&self, now: i64, leeway: i64) {
        self.entries
            .retain(|_, v| v.exp.saturating_add(leeway) >= now);
    }

    /// Forgets every token (a signing key was retired: its tokens must be verified again,
    /// and fail).
    pub fn clear(&self) {
        self.entries.clear();
        self.inserted.store(0, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenType;

    fn token(exp: i64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            user_id: 1,
            username: "a".into(),
            token_type: TokenType::Access,
            jti: uuid::Uuid::new_v4(),
            sid: uuid::Uuid::new_v4(),
            iat: 0,
            exp,
            roles: Vec::new(),
            kid: None,
        })
    }

    #[test]
    fn bounded_and_pruned() {
        let cache = VerifiedCache::new(3);
        for i in 0..3 {
            cache.insert(&format!("t{i}"), token(100));
        }
        assert_eq!(cache.len(), 3);
        cache.insert("t3", token(10));
        assert_eq!(cache.len(), 1, "starts over at the bound");
        assert!(cache.get("t3").is_some() && cache.get("t0").is_none());
        cache.prune(20, 5);
        assert!(cache.is_empty());
    }
}
