//! Brute-force protection: failed logins are counted per (username, client IP). Past the
//! limit, further attempts for that pair are refused before any password is checked. The
//! key includes the IP, so a third party guessing from elsewhere cannot lock the real owner
//! out; a successful login clears the pair.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::config::RateSpec;

/// Failures of one pair within the current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    window_start: Instant,
}

/// Counts failed logins per (case-folded username, client IP).
pub struct LoginThrottle {
    failures: DashMap<(String, IpAddr), Failures>,
    max: u32,
    window: Duration,
}

impl LoginThrottle {
    pub fn new(spec: RateSpec) -> Self {
        Self {
            failures: DashMap::new(),
            max: spec.count,
            window: spec.period,
        }
    }

    fn key(username: &str, ip: IpAddr) -> (String, IpAddr) {
        (username.to_lowercase(), ip)
    }

    /// `Err(seconds to wait)` while the pair is over the limit.
    pub fn check(&self, username: &str, ip: IpAddr) -> Result<(), u64> {
        let Some(f) = self.failures.get(&Self::key(username, ip)).map(|f| *f) else {
            return Ok(());
        };
        let elapsed = f.window_start.elapsed();
        if f.count < self.max || elapsed >= self.window {
            return Ok(());
        }
        let wait = self.window - elapsed;
        Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
    }

    pub fn record_failure(&self, username: &str, ip: IpAddr) {
        let now = Instant::now();
        self.failures
            .entry(Self::key(username, ip))
            .and_modify(|f| {
                if now.duration_since(f.window_start) >= self.window {
                    *f = Failures {
                        count: 1,
                        window_start: now,
                    };
                } else {
                    f.count = f.count.saturating_add(1);
                }
            })
            .or_insert(Failures {
                count: 1,
                window_start: now,
            });
    }

    pub fn record_success(&self, username: &str, ip: IpAddr) {
        self.failures.remove(&Self::key(username, ip));
    }

    /// Forgets pairs whose window has passed, so memory stays bounded.
    pub fn evict_idle(&self) {
        self.failures
            .retain(|_, f| f.window_start.elapsed() < self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_the_pair_only_and_success_resets() {
        let t = LoginThrottle::new(RateSpec {
            count: 3,
            period: Duration::from_secs(900),
        });
        let attacker: IpAddr = "198.51.100.7".parse().unwrap();
        let owner: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("alice", attacker).is_ok());
            t.record_failure("Alice", attacker);
        }
        let wait = t.check("ALICE", attacker).unwrap_err();
        assert!((1..=900).contains(&wait));
        assert!(
            t.check("alice", owner).is_ok(),
            "the owner elsewhere is not locked out"
        );
        t.record_failure("bob", owner);
        t.record_success("bob", owner);
        assert!(t.failures.is_empty() || !t.failures.contains_key(&("bob".to_string(), owner)));
    }
}
