//! Rate limits (GCRA, through governor), keyed in memory by client IP or by user. Idle keys
//! are evicted on a timer so a flood of distinct addresses cannot grow memory without bound.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
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

/// Every limit the gateway applies. Each limit is shared (`Arc`) so that a reload can
/// hand a limit whose setting did not change, with its counters, to the new configuration.
pub struct RateLimits {
    pub register: Arc<KeyedLimit<IpAddr>>,
    pub login: Arc<KeyedLimit<IpAddr>>,
    pub refresh: Arc<KeyedLimit<IpAddr>>,
    /// The self-service endpoints (`[account]`).
    pub account: Arc<KeyedLimit<IpAddr>>,
    /// Per route, in config order: per user on required routes, per IP on public ones.
    pub routes: Vec<RouteLimit>,
    /// Each route's prefix, in config order: how a reload finds a route's old limit.
    route_prefixes: Vec<String>,
}

/// A route's limit, keyed as its auth mode says.
#[derive(Clone)]
pub enum RouteLimit {
    PerUser(Arc<KeyedLimit<i64>>),
    PerIp(Arc<KeyedLimit<IpAddr>>),
}

impl RouteLimit {
    fn new(route: &RouteConfig, config: &RateLimitsConfig) -> Self {
        match route.auth {
            AuthMode::Required => Self::PerUser(Arc::new(KeyedLimit::new(
                route.rate_limit.unwrap_or(config.authenticated),
            ))),
            AuthMode::Public => Self::PerIp(Arc::new(KeyedLimit::new(
                route.rate_limit.unwrap_or(config.public),
            ))),
        }
    }

    /// Same key kind and same setting: the old limit's counters remain valid.
    fn same_setting(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::PerUser(a), Self::PerUser(b)) => a.spec == b.spec,
            (Self::PerIp(a), Self::PerIp(b)) => a.spec == b.spec,
            _ => false,
        }
    }
}

/// `previous` when its setting is `spec`, else a new limit with empty counters.
fn keep_or_new<K: Hash + Eq + Clone>(
    previous: &Arc<KeyedLimit<K>>,
    spec: RateSpec,
) -> Arc<KeyedLimit<K>> {
    if previous.spec == spec {
        previous.clone()
    } else {
        Arc::new(KeyedLimit::new(spec))
    }
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
            register: Arc::new(KeyedLimit::new(config.register)),
            login: Arc::new(KeyedLimit::new(config.login)),
            refresh: Arc::new(KeyedLimit::new(config.refresh)),
            account: Arc::new(KeyedLimit::new(config.account)),
            routes: routes.iter().map(|r| RouteLimit::new(r, config)).collect(),
            route_prefixes: routes.iter().map(|r| r.prefix.clone()).collect(),
        }
    }

    /// The limits of a reloaded configuration: a limit whose setting did not change (a
    /// route's is found by its prefix) keeps its counters; a changed or new one starts
    /// empty.
    pub fn carried_over(
        previous: &Self,
        config: &RateLimitsConfig,
        routes: &[RouteConfig],
    ) -> Self {
        let route_limits = routes
            .iter()
            .map(|r| {
                let fresh = RouteLimit::new(r, config);
                previous
                    .route_prefixes
                    .iter()
                    .position(|p| *p == r.prefix)
                    .map(|i| &previous.routes[i])
                    .filter(|old| old.same_setting(&fresh))
                    .cloned()
                    .unwrap_or(fresh)
            })
            .collect();
        Self {
            register: keep_or_new(&previous.register, config.register),
            login: keep_or_new(&previous.login, config.login),
            refresh: keep_or_new(&previous.refresh, config.refresh),
            account: keep_or_new(&previous.account, config.account),
            routes: route_limits,
            route_prefixes: routes.iter().map(|r| r.prefix.clone()).collect(),
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

    fn route(prefix: &str, rate: Option<RateSpec>) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            upstream: "api".into(),
            auth: AuthMode::Public,
            rate_limit: rate,
            roles: Vec::new(),
            upstream_read_timeout: None,
        }
    }

    fn spec(count: u32) -> RateSpec {
        RateSpec {
            count,
            period: Duration::from_secs(300),
        }
    }

    fn per_ip(limits: &RateLimits, index: usize) -> &KeyedLimit<IpAddr> {
        match &limits.routes[index] {
            RouteLimit::PerIp(l) => l,
            RouteLimit::PerUser(_) => panic!("route {index} is public"),
        }
    }

    #[test]
    fn a_reload_keeps_the_counters_of_unchanged_limits_only() {
        let file = crate::config::parse(
            std::path::Path::new("t.toml"),
            "[[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8000\"]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"api\"\n",
        )
        .unwrap();
        let config = crate::config::Config::try_from(file).unwrap().rate_limits;
        let before = RateLimits::new(
            &config,
            &[
                route("/same", Some(spec(1))),
                route("/changed", Some(spec(1))),
            ],
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(per_ip(&before, 0).check(&ip).is_ok());
        assert!(per_ip(&before, 1).check(&ip).is_ok());
        assert!(before.register.check(&ip).is_ok());

        // Reordered, one limit changed, one route added.
        let after = RateLimits::carried_over(
            &before,
            &config,
            &[
                route("/new", Some(spec(1))),
                route("/changed", Some(spec(2))),
                route("/same", Some(spec(1))),
            ],
        );
        assert!(
            per_ip(&after, 2).check(&ip).is_err(),
            "unchanged limit kept its count"
        );
        assert!(
            per_ip(&after, 1).check(&ip).is_ok(),
            "changed limit starts empty"
        );
        assert!(
            per_ip(&after, 0).check(&ip).is_ok(),
            "new route starts empty"
        );
        assert!(Arc::ptr_eq(&before.register, &after.register));
    }
}
