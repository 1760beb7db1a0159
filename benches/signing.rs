//! Sign and verify cost per algorithm: HS256 with the secret, EdDSA and ES256 with a key
//! made and stored the way a gateway makes it (a temporary SQLite database, the key sealed
//! and opened again), through the same `TokenService::issue` / `verify` the gateway calls.
//!
//!   cargo bench --bench signing                  # about 30 s
//!   cargo bench --bench signing -- --quick       # rougher figures

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use uuid::Uuid;

use authgate::auth::keys::startup::load_key_set;
use authgate::auth::keys::KeyAlgorithm;
use authgate::auth::tokens::Subject;
use authgate::auth::{TokenService, TokenType};
use authgate::config::TokenConfig;
use authgate::store::SqliteStore;

const NOW: i64 = 1_900_000_000;
const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret-0123";

fn config(algorithm: Option<KeyAlgorithm>) -> TokenConfig {
    TokenConfig {
        secret: None,
        issuer: "authgate".into(),
        audience: "authgate".into(),
        access_ttl: Duration::from_secs(3600),
        refresh_ttl: Duration::from_secs(30 * 86400),
        leeway: Duration::from_secs(5),
        rotate_refresh: true,
        reuse_grace: Duration::ZERO,
        algorithm,
        key_encryption_secret: Some(b"bench-key-encryption-secret-0123456789".to_vec()),
        key_rotation: None,
        key_publish_delay: Duration::from_secs(600),
    }
}

/// A token service as `build_server` makes it, on a fresh database in `dir`.
fn service(algorithm: Option<KeyAlgorithm>, dir: &tempfile::TempDir) -> TokenService {
    let config = config(algorithm);
    let store = SqliteStore::open(&dir.path().join("bench.db")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = runtime
        .block_on(load_key_set(&store, &config, NOW - 60))
        .unwrap();
    TokenService::with_keys(&config, SECRET, keys)
}

fn sign_and_verify(c: &mut Criterion) {
    let subject = Subject {
        user_id: 42,
        username: "bench_user",
        sid: Uuid::new_v4(),
        roles: &[],
    };
    for (name, algorithm) in [
        ("HS256", None),
        ("EdDSA", Some(KeyAlgorithm::EdDSA)),
        ("ES256", Some(KeyAlgorithm::ES256)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let service = service(algorithm, &dir);
        let token = service
            .issue(&subject, TokenType::Access, true, NOW, None)
            .unwrap();
        let alg = token.split('.').next().unwrap().to_string();
        assert!(
            service.verify(&token, TokenType::Access, NOW + 10).is_ok(),
            "{name}: {alg}"
        );
        let mut g = c.benchmark_group(name);
        g.bench_function("sign", |b| {
            b.iter(|| {
                service
                    .issue(&subject, TokenType::Access, true, black_box(NOW), None)
                    .unwrap()
            })
        });
        g.bench_function("verify", |b| {
            b.iter(|| {
                service
                    .verify(black_box(&token), TokenType::Access, NOW + 10)
                    .unwrap()
            })
        });
        g.finish();
    }
}

fn criterion_config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = sign_and_verify
}
criterion_main!(benches);
