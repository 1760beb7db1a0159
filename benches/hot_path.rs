//! Micro-benchmarks of the work authgate adds to every proxied request, piece by piece:
//! Bearer parsing and JWT verification, path normalisation and routing, the revocation
//! lookup (empty and with 1,000,000 entries), the rate-limit check, identity headers,
//! security headers and the per-request metrics.
//!
//!   cargo bench --bench hot_path                 # about 45 s
//!   cargo bench --bench hot_path -- --quick      # about 15 s, rougher figures
//!   cargo bench --bench hot_path -- revocation   # one group
//!
//! Measurement times are short on purpose (see `config()`): these are nanosecond-scale
//! functions and the figures settle quickly; the point is their size next to the
//! tens of microseconds a proxied request costs end to end (BENCHMARKS.md).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pingora::http::{RequestHeader, ResponseHeader};
use uuid::Uuid;

use authgate::auth::bearer::bearer_token;
use authgate::auth::revocation::RevocationCache;
use authgate::auth::tokens::Subject;
use authgate::auth::{TokenService, TokenType, VerifiedToken};
use authgate::config::{AuthMode, IdentityConfig, RateSpec, RouteConfig, TokenConfig};
use authgate::gateway::identity::IdentityHeaders;
use authgate::gateway::path::normalize;
use authgate::gateway::respond::add_security_headers;
use authgate::gateway::router::Router;
use authgate::limits::KeyedLimit;
use authgate::metrics::Metrics;
use authgate::store::{Revocation, RevokedKind};

const NOW: i64 = 1_900_000_000;
const REVOKED_ENTRIES: usize = 1_000_000;

fn token_service() -> TokenService {
    let config = TokenConfig {
        secret: None,
        issuer: "authgate".into(),
        audience: "authgate".into(),
        access_ttl: Duration::from_secs(3600),
        refresh_ttl: Duration::from_secs(30 * 86400),
        leeway: Duration::from_secs(5),
        rotate_refresh: true,
        reuse_grace: Duration::ZERO,
        algorithm: None,
        key_encryption_secret: None,
        key_rotation: None,
        key_publish_delay: Duration::from_secs(600),
    };
    TokenService::new(&config, b"bench-secret-bench-secret-bench-secret-0123")
}

fn tokens(c: &mut Criterion) {
    let service = token_service();
    let subject = Subject {
        user_id: 42,
        username: "bench_user",
        sid: Uuid::new_v4(),
        roles: &[],
    };
    let token = service
        .issue(&subject, TokenType::Access, true, NOW, None)
        .unwrap();
    let header = format!("Bearer {token}");
    // Same header and payload, signature of another key: fails at the HMAC check.
    let forged = {
        let (unsigned, _) = token.rsplit_once('.').unwrap();
        format!("{unsigned}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    };
    assert!(service.verify(&token, TokenType::Access, NOW + 10).is_ok());
    assert!(service
        .verify(&forged, TokenType::Access, NOW + 10)
        .is_err());

    let mut g = c.benchmark_group("tokens");
    g.bench_function("bearer_token", |b| {
        b.iter(|| bearer_token(std::iter::once(black_box(header.as_bytes()))).unwrap())
    });
    g.bench_function("verify_access_ok", |b| {
        b.iter(|| {
            service
                .verify(black_box(&token), TokenType::Access, NOW + 10)
                .unwrap()
        })
    });
    g.bench_function("verify_bad_signature", |b| {
        b.iter(|| {
            service
                .verify(black_box(&forged), TokenType::Access, NOW + 10)
                .unwrap_err()
        })
    });
    g.bench_function("issue_access", |b| {
        b.iter(|| {
            service
                .issue(&subject, TokenType::Access, true, black_box(NOW), None)
                .unwrap()
        })
    });
    g.finish();
}

fn paths(c: &mut Criterion) {
    let routes = [
        ("/public", AuthMode::Public),
        ("/api", AuthMode::Required),
        ("/api/admin", AuthMode::Required),
    ]
    .map(|(prefix, auth)| RouteConfig {
        prefix: prefix.into(),
        upstream: "backend".into(),
        auth,
        rate_limit: None,
        roles: Vec::new(),
        upstream_read_timeout: None,
    });
    let router = Router::new(&routes, None, |_| 0);

    let mut g = c.benchmark_group("path");
    for (name, path) in [
        ("normalize_short", "/api"),
        ("normalize_typical", "/api/v1/users/42/orders"),
        (
            "normalize_dots_escapes",
            "/api/v1/./users//%7Euser/../42/a%20b",
        ),
    ] {
        assert!(normalize(path).is_ok());
        g.bench_function(name, |b| b.iter(|| normalize(black_box(path)).unwrap()));
    }
    g.bench_function("normalize_and_route", |b| {
        b.iter(|| {
            let p = normalize(black_box("/api/v1/users/42/orders")).unwrap();
            router.resolve(&p)
        })
    });
    g.finish();
}

fn filled_cache(n: usize) -> (RevocationCache, Vec<Uuid>) {
    let cache = RevocationCache::new(Duration::from_secs(30));
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = Uuid::new_v4();
        cache.insert(&Revocation {
            id,
            kind: if i % 2 == 0 {
                RevokedKind::Session
            } else {
                RevokedKind::Token
            },
            user_id: (i % 10_000) as i64,
            expires_at: NOW + 86_400,
        });
        ids.push(id);
    }
    (cache, ids)
}

/// A verified access token of user 42 in session `sid`.
fn verified(sid: Uuid, jti: Uuid) -> VerifiedToken {
    VerifiedToken {
        user_id: 42,
        username: "bench_user".into(),
        token_type: TokenType::Access,
        jti,
        sid,
        iat: NOW,
        exp: NOW + 3600,
        roles: Vec::new(),
        kid: None,
    }
}

fn revocation(c: &mut Criterion) {
    let (empty, _) = filled_cache(0);
    let (full, revoked) = filled_cache(REVOKED_ENTRIES);
    assert_eq!(full.len(), REVOKED_ENTRIES);
    let valid = verified(Uuid::new_v4(), Uuid::new_v4());
    // Revoked sessions spread over the whole map (cache misses in the CPU sense).
    let hits: Vec<VerifiedToken> = revoked
        .iter()
        .step_by(997)
        .map(|sid| verified(*sid, Uuid::new_v4()))
        .collect();

    let mut g = c.benchmark_group("revocation");
    // A valid token: both its session id and its token id are looked up and missed.
    g.bench_function("is_revoked_miss_empty", |b| {
        b.iter(|| empty.is_revoked(black_box(&valid)))
    });
    g.bench_function("is_revoked_miss_1m", |b| {
        b.iter(|| full.is_revoked(black_box(&valid)))
    });
    let mut i = 0usize;
    g.bench_function("is_revoked_hit_1m", |b| {
        b.iter(|| {
            i = (i + 1) % hits.len();
            full.is_revoked(black_box(&hits[i]))
        })
    });
    g.bench_function("is_current", |b| b.iter(|| full.is_current()));
    g.finish();
}

fn request_work(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");

    // The limiter as the bench config sets it: runs, never refuses.
    let per_user: KeyedLimit<i64> = KeyedLimit::new(RateSpec {
        count: 1_000_000_000,
        period: Duration::from_secs(1),
    });
    let per_ip: KeyedLimit<IpAddr> = KeyedLimit::new(RateSpec {
        count: 1_000_000_000,
        period: Duration::from_secs(1),
    });
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    g.bench_function("rate_limit_per_user", |b| {
        b.iter(|| per_user.check(black_box(&42)).is_ok())
    });
    g.bench_function("rate_limit_per_ip", |b| {
        b.iter(|| per_ip.check(black_box(&ip)).is_ok())
    });

    let identity = IdentityHeaders::new(&IdentityConfig {
        user_id_header: "X-User-Id".into(),
        username_header: "X-User-Name".into(),
        roles_header: "X-User-Roles".into(),
    });
    let service = token_service();
    let subject = Subject {
        user_id: 42,
        username: "bench_user",
        sid: Uuid::new_v4(),
        roles: &[],
    };
    let token = service
        .issue(&subject, TokenType::Access, true, NOW, None)
        .unwrap();
    let verified = service.verify(&token, TokenType::Access, NOW).unwrap();
    // What wrk sends, plus the Authorization header of a required route.
    let request = || {
        let mut r = RequestHeader::build("GET", b"/api", None).unwrap();
        r.append_header("Host", "127.0.0.1:8093").unwrap();
        r.append_header("Authorization", format!("Bearer {token}"))
            .unwrap();
        r
    };
    g.bench_function("identity_strip_inject", |b| {
        b.iter_batched_ref(
            request,
            |r| {
                identity.strip(r);
                identity.inject(r, &verified).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("security_headers", |b| {
        b.iter_batched_ref(
            || {
                let mut r = ResponseHeader::build(200, Some(8)).unwrap();
                r.append_header("Content-Type", "application/json").unwrap();
                r.append_header("Content-Length", "12").unwrap();
                r
            },
            |r| add_security_headers(r).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // What access_log::record does to the metrics on every request.
    let metrics = Metrics::new();
    g.bench_function("metrics_record", |b| {
        b.iter(|| {
            metrics
                .requests_total
                .with_label_values(&[black_box("/api"), "2xx"])
                .inc();
            metrics
                .request_duration_seconds
                .with_label_values(&[black_box("/api")])
                .observe(0.000_8);
        })
    });
    let counter = metrics.requests_total.with_label_values(&["/api", "2xx"]);
    let histogram = metrics
        .request_duration_seconds
        .with_label_values(&["/api"]);
    g.bench_function("metrics_record_prebound", |b| {
        b.iter(|| {
            counter.inc();
            histogram.observe(black_box(0.000_8));
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = tokens, paths, revocation, request_work
}
criterion_main!(benches);
