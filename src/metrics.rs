//! Prometheus metrics. Labels are bounded (route name, status class, reason), never a
//! user, a path or an IP. Label handles used on the proxied path are resolved once per
//! route at start-up so a request formats no label strings.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the gateway exports, registered in one private registry.
pub struct Metrics {
    pub registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: HistogramVec,
    pub upstream_errors_total: IntCounterVec,
    pub auth_failures_total: IntCounterVec,
    pub logins_total: IntCounterVec,
    pub registrations_total: IntCounterVec,
    pub tokens_revoked_total: IntCounter,
    pub refresh_reuse_total: IntCounter,
    pub header_timeouts_total: IntCounter,
    pub revocation_cache_entries: IntGauge,
    pub rate_limited_total: IntCounterVec,
    pub password_hash_seconds: Histogram,
    pub hash_queue_depth: IntGauge,
    /// How many hashes may wait for a thread (`[limits] hash_queue`), for saturation alerts.
    pub hash_queue_capacity: IntGauge,
    /// Logins and registrations shed with 503 because hashing was saturated.
    pub hash_rejected_total: IntCounterVec,
    /// Seconds since the revocation cache last read the database (set at each scrape).
    pub revocation_sync_age_seconds: prometheus::Gauge,
    /// `[database] max_staleness`: past it required routes fail closed.
    pub revocation_max_staleness_seconds: prometheus::Gauge,
    /// Servers of each upstream, and how many pass their health check (set at each scrape).
    pub upstream_servers: IntGaugeVec,
    pub upstream_healthy_servers: IntGaugeVec,
    /// Certificate reloads that changed something, by result (success, failure).
    pub tls_reloads_total: IntCounterVec,
    /// Each served certificate's `notAfter`, by name (`default` or its first server name).
    pub tls_certificate_expiry_timestamp_seconds: IntGaugeVec,
    /// Always 1, labelled with the version: `up` says the process answers, this says which.
    pub build_info: IntGaugeVec,
    pub open_tunnels: IntGauge,
    /// Configuration reloads, by `result` (`success`, `failure`).
    pub config_reloads_total: IntCounterVec,
    /// 1 when the last reload applied (or none was tried yet), 0 when it was refused.
    pub config_last_reload_successful: IntGauge,
    /// Client connections open now, and how many may be (`[server] max_connections`).
    pub open_connections: IntGauge,
    pub max_connections: IntGauge,
    /// New connections closed (or answered 503) because `max_connections` were open.
    pub connections_refused_total: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Self {
            requests_total: counter_vec(
                "authgate_requests_total",
                "Requests answered, by route and status class.",
                &["route", "status_class"],
            ),
            request_duration_seconds: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "authgate_request_duration_seconds",
                        "Time to answer a request, by route.",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ]),
                    &["route"],
                )
                .expect("valid metric"),
            ),
            upstream_errors_total: counter_vec(
                "authgate_upstream_errors_total",
                "Requests that failed at the upstream.",
                &["upstream"],
            ),
            auth_failures_total: counter_vec(
                "authgate_auth_failures_total",
                "Refused Bearer tokens, by reason.",
                &["reason"],
            ),
            logins_total: counter_vec(
                "authgate_logins_total",
                "Login attempts, by result.",
                &["result"],
            ),
            registrations_total: counter_vec(
                "authgate_registrations_total",
                "Registrations, by result.",
                &["result"],
            ),
            tokens_revoked_total: register(
                &r,
                IntCounter::new(
                    "authgate_tokens_revoked_total",
                    "Sessions revoked by this process.",
                )
                .expect("valid"),
            ),
            refresh_reuse_total: register(
                &r,
                IntCounter::new(
                    "authgate_refresh_reuse_total",
                    "Spent refresh tokens presented again (sessions revoked).",
                )
                .expect("valid"),
            ),
            header_timeouts_total: register(
                &r,
                IntCounter::new(
                    "authgate_header_timeouts_total",
                    "Connections closed because a request header was not received within client_timeout.",
                )
                .expect("valid"),
            ),
            revocation_cache_entries: register(
                &r,
                IntGauge::new(
                    "authgate_revocation_cache_entries",
                    "Entries in the revocation cache.",
                )
                .expect("valid"),
            ),
            rate_limited_total: counter_vec(
                "authgate_rate_limited_total",
                "Requests refused by a rate limit.",
                &["scope"],
            ),
            password_hash_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "authgate_password_hash_seconds",
                        "Time of one argon2id hash or verify.",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            hash_queue_depth: register(
                &r,
                IntGauge::new(
                    "authgate_hash_queue_depth",
                    "Password hashes waiting for a thread.",
                )
                .expect("valid"),
            ),
            hash_queue_capacity: register(
                &r,
                IntGauge::new(
                    "authgate_hash_queue_capacity",
                    "Password hashes that may wait for a thread ([limits] hash_queue).",
                )
                .expect("valid"),
            ),
            hash_rejected_total: counter_vec(
                "authgate_hash_rejected_total",
                "Logins and registrations answered 503 because password hashing was saturated, by reason (queue_full, wait).",
                &["reason"],
            ),
            revocation_sync_age_seconds: register(
                &r,
                prometheus::Gauge::new(
                    "authgate_revocation_sync_age_seconds",
                    "Seconds since the revocation cache last read the database.",
                )
                .expect("valid"),
            ),
            revocation_max_staleness_seconds: register(
                &r,
                prometheus::Gauge::new(
                    "authgate_revocation_max_staleness_seconds",
                    "Revocation state older than this fails required routes closed ([database] max_staleness).",
                )
                .expect("valid"),
            ),
            upstream_servers: gauge_vec(
                "authgate_upstream_servers",
                "Configured servers of each upstream.",
                &["upstream"],
            ),
            upstream_healthy_servers: gauge_vec(
                "authgate_upstream_healthy_servers",
                "Servers of each upstream passing their health check.",
                &["upstream"],
            ),
            tls_reloads_total: counter_vec(
                "authgate_tls_reloads_total",
                "TLS certificate reloads after a file changed, by result; a failure keeps the running certificates.",
                &["result"],
            ),
            tls_certificate_expiry_timestamp_seconds: gauge_vec(
                "authgate_tls_certificate_expiry_timestamp_seconds",
                "When each served TLS certificate expires (notAfter), in seconds since the Unix epoch.",
                &["name"],
            ),
            build_info: gauge_vec(
                "authgate_build_info",
                "Always 1; the running version in its label.",
                &["version"],
            ),
            open_tunnels: register(
                &r,
                IntGauge::new(
                    "authgate_open_tunnels",
                    "Upgraded connections (WebSocket and the like) open now.",
                )
                .expect("valid"),
            ),
            config_reloads_total: counter_vec(
                "authgate_config_reloads_total",
                "Configuration reloads (SIGHUP), by result.",
                &["result"],
            ),
            config_last_reload_successful: register(
                &r,
                IntGauge::new(
                    "authgate_config_last_reload_successful",
                    "1 when the last configuration reload applied (or none was tried), 0 \
                     when it was refused.",
                )
                .expect("valid"),
            ),
            open_connections: register(
                &r,
                IntGauge::new(
                    "authgate_open_connections",
                    "Client connections open now on the gateway's listener.",
                )
                .expect("valid"),
            ),
            max_connections: register(
                &r,
                IntGauge::new(
                    "authgate_max_connections",
                    "Client connections that may be open at once ([server] max_connections).",
                )
                .expect("valid"),
            ),
            connections_refused_total: register(
                &r,
                IntCounter::new(
                    "authgate_connections_refused_total",
                    "New client connections refused because max_connections were open.",
                )
                .expect("valid"),
            ),
            registry: r,
        }
    }

    /// Creates every series whose labels are known in advance, at 0, so a fresh gateway
    /// exports them all ("avoid missing metrics"): a rate or an alert over a series works
    /// before its first event. `scopes` are the rate limiters' scopes, `upstreams` the
    /// configured upstream names.
    pub fn initialise_known_series(&self, known: &KnownLabels) {
        for (vec, values) in [
            (&self.auth_failures_total, known.auth_failure_reasons),
            (&self.logins_total, known.login_results),
            (&self.registrations_total, known.registration_results),
            (&self.rate_limited_total, known.rate_limit_scopes),
        ] {
            for value in values {
                vec.with_label_values(&[value]);
            }
        }
        for upstream in &known.upstreams {
            self.upstream_errors_total.with_label_values(&[upstream]);
        }
        for reason in HASH_REJECTED_REASONS {
            self.hash_rejected_total.with_label_values(&[reason]);
        }
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for result in RELOAD_RESULTS {
            self.config_reloads_total.with_label_values(&[result]);
        }
        self.config_last_reload_successful.set(1);
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// Why a hash was refused: no room in the queue, or no thread within `hash_wait`.
pub const HASH_REJECTED_REASONS: [&str; 2] = ["queue_full", "wait"];

/// The `result` label of `authgate_config_reloads_total`.
pub const RELOAD_RESULTS: [&str; 2] = ["success", "failure"];

/// The label values known at start, for [`Metrics::initialise_known_series`].
pub struct KnownLabels<'a> {
    pub auth_failure_reasons: &'a [&'a str],
    pub login_results: &'a [&'a str],
    pub registration_results: &'a [&'a str],
    pub rate_limit_scopes: &'a [&'a str],
    pub upstreams: Vec<&'a str>,
}

/// One route's request metrics with every label resolved, so recording a request formats
/// no label and takes no lock of the metric family.
pub struct RouteMetrics {
    duration: Histogram,
    /// `1xx` .. `5xx`, then `none` for a request that got no status.
    by_class: [IntCounter; 6],
}

const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

impl RouteMetrics {
    pub fn observe(&self, status: u16, elapsed_secs: f64) {
        let class = match status {
            100..=599 => usize::from(status / 100) - 1,
            _ => 5,
        };
        self.by_class[class].inc();
        self.duration.observe(elapsed_secs);
    }
}

impl Metrics {
    /// The handles for requests labelled `route`.
    pub fn route(&self, route: &str) -> RouteMetrics {
        RouteMetrics {
            duration: self.request_duration_seconds.with_label_values(&[route]),
            by_class: STATUS_CLASSES
                .map(|class| self.requests_total.with_label_values(&[route, class])),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
