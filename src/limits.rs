//! Rate limits (GCRA, through governor), keyed in memory by client IP or by user. Idle keys
//! are evicted on a timer so a flood of distinct addresses cannot grow memory without bound.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{AuthMode, RateLimitsConfig, RateSpec, RouteConfig};

/// One keyed limit with the policy it advertises.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    spec: RateSpec,
}

/// Refused by a rate limit: what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
    pub policy: String,
    pub state: String,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    pub fn new(spec: RateSpec) -> Self {
        let count = NonZeroU32::new(spec.count).unwrap_or(NonZeroU32::MIN);
        let per_cell = (spec.period / count.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(per_cell)
            .expect("period is above zero")
            .allow_burst(count);
        Self {
            limiter: RateLimiter::keyed(quota),
            spec,
        }
    }

    /// Takes one request from `key`'s allowance.
    pub fn check(&self, key: &K) -> Result<(), Limited> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let retry_after_secs = retry_after_secs.max(1);
            Limited {
                retry_after_secs,
                policy: format!(
                    "{};w={}",
                    self.spec.count,
                    self.spec.period.as_secs().max(1)
                ),
                state: format!(
                    "limit={}, remaining=0, reset={}",
                    self.spec.count, retry_after_secs
                ),
            }
        })
    }

    /// Forgets keys whose allowance is full again.
    pub fn evict_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Every limit the gateway applies.
pub struct RateLimits {
    pub register: KeyedLimit<IpAddr>,
    pub login: KeyedLimit<IpAddr>,
    pub refresh: KeyedLimit<IpAddr>,
    /// The self-service endpoints (`[account]`).
    pub account: KeyedLimit<IpAddr>,
    /// Per route, in config order: per user on required routes, per IP on public ones.
    pub routes: Vec<RouteLimit>,
}

/// A route's limit, keyed as its auth mode says.
pub enum RouteLimit {
    PerUser(KeyedLimit<i64>),
    PerIp(KeyedLimit<IpAddr>),
}

impl RateLimits {
    /// Every `scope` label of `authgate_rate_limited_total`: the per-route limits' two
    /// scopes, then the auth endpoints that have a limit of their own.
    pub const SCOPES: [&'static str; 7] = [
        "authenticated",
        "public",
        "register",
        "login",
        "refresh",
        "me",
        "password",
    ];

    pub fn new(config: &RateLimitsConfig, routes: &[RouteConfig]) -> Self {
        Self {
            register: KeyedLimit::new(config.register),
            login: KeyedLimit::new(config.login),
            refresh: KeyedLimit::new(config.refresh),
            account: KeyedLimit::new(config.account),
            routes: routes
                .iter()
                .map(|r| match r.auth {
                    AuthMode::Required => RouteLimit::PerUser(KeyedLimit::new(
                        r.rate_limit.unwrap_or(config.authenticated),
                    )),
                    AuthMode::Public => {
                        RouteLimit::PerIp(KeyedLimit::new(r.rate_limit.unwrap_or(config.public)))
                    }
                })
                .collect(),
        }
    }

    pub fn evict_idle(&self) {
        self.register.evict_idle();
        self.login.evict_idle();
        self.refresh.evict_idle();
        self.account.evict_idle();
        for r in &self.routes {
            match r {
                RouteLimit::PerUser(l) => l.evict_idle(),
                RouteLimit::PerIp(l) => l.evict_idle(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses_with_retry_after() {
        let limit = KeyedLimit::new(RateSpec {
            count: 3,
            period: Duration::from_secs(300),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(&ip).is_ok());
        }
        let refused = limit.check(&ip).unwrap_err();
        assert!((1..=100).contains(&refused.retry_after_secs), "{refused:?}");
        assert_eq!(refused.policy, "3;w=300");
        assert!(limit.check(&"192.0.2.2".parse().unwrap()).is_ok());
    }
}
