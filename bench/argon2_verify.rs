//! Time of one argon2id password verify with authgate's parameters: the cost a
//! login pays on the hashing pool, and so the login capacity of a pool of N
//! hashing threads (N ÷ this time). `bench/logins` runs it on the CPU the
//! gateway runs on, in the same run as the login load.
//!
//! The hash comes from authgate's own `PasswordHasher` (the library crate), so
//! its parameters are the ones a registered user's hash has; the program checks
//! them (m=19456 KiB, t=2, p=1, argon2id v19) and refuses to time anything else.
//! It then times, one after the other:
//!
//! - `direct`: `verify_password` of the argon2 crate against that hash, on
//!   this thread: the work of one verify and nothing else;
//! - `pool`: `PasswordHasher::verify` with one hashing thread and nothing
//!   else queued, awaited on a current-thread tokio runtime: the verify as
//!   authgate runs it, including the hand-off to the blocking pool.
//!
//! Usage: argon2_verify [VERIFIES]   (default 50, after 3 untimed ones)
//!
//! Output: one human-readable line per kind, then `key=value` lines for
//! scripts (times in milliseconds): `direct_median_ms=...`, `pool_median_ms=...`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use authgate::auth::password::PasswordHasher;
use authgate::config::LimitsConfig;
use authgate::metrics::Metrics;

/// The allocator authgate's binary uses (each verify allocates its 19 MiB block).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &str = "bench-password-123";
const WARMUP: usize = 3;

/// Median, 10th and 90th percentile, minimum and maximum of `samples`, in ms.
struct Summary {
    median: f64,
    p10: f64,
    p90: f64,
    min: f64,
    max: f64,
}

fn summarise(mut samples: Vec<f64>) -> Summary {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let at = |q: f64| samples[((n - 1) as f64 * q).round() as usize];
    let median = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    };
    Summary {
        median,
        p10: at(0.1),
        p90: at(0.9),
        min: samples[0],
        max: samples[n - 1],
    }
}

fn time_ms(mut f: impl FnMut() -> bool) -> f64 {
    let started = Instant::now();
    assert!(f(), "the password must verify");
    started.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let verifies: usize = match std::env::args().nth(1) {
        None => 50,
        Some(arg) => match arg.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: argon2_verify [VERIFIES]  (a number above zero, default 50)");
                std::process::exit(2);
            }
        },
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    // One hashing thread, as bench/logins configures the gateway.
    let limits = LimitsConfig {
        max_body_bytes: 16 * 1024,
        hash_threads: 1,
        hash_queue: 0,
        hash_nice: 0,
        hash_wait: Duration::from_secs(60),
    };
    let hasher = PasswordHasher::new(&limits, Arc::new(Metrics::new()));
    let hash = runtime
        .block_on(hasher.hash(PASSWORD.to_string()))
        .expect("authgate's hasher hashes a password");

    let parsed = PasswordHash::new(&hash).expect("authgate writes a PHC string");
    let params = Params::try_from(&parsed).expect("the PHC string holds argon2 parameters");
    let expected = (19 * 1024, 2, 1);
    let got = (params.m_cost(), params.t_cost(), params.p_cost());
    if parsed.algorithm.as_str() != "argon2id" || got != expected {
        eprintln!(
            "authgate's hash is {} m={},t={},p={}; this harness expects argon2id m=19456,t=2,p=1",
            parsed.algorithm, got.0, got.1, got.2
        );
        std::process::exit(1);
    }
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);

    let direct = || argon2.verify_password(PASSWORD.as_bytes(), &parsed).is_ok();
    let pool = || {
        runtime
            .block_on(hasher.verify(PASSWORD.to_string(), Some(hash.clone())))
            .expect("one verify at a time is never refused")
    };

    for _ in 0..WARMUP {
        time_ms(direct);
        time_ms(pool);
    }
    // Interleaved, so drift on the machine affects both alike.
    let mut direct_ms = Vec::with_capacity(verifies);
    let mut pool_ms = Vec::with_capacity(verifies);
    for _ in 0..verifies {
        direct_ms.push(time_ms(direct));
        pool_ms.push(time_ms(pool));
    }

    println!("argon2id m=19456 KiB, t=2, p=1 (authgate's hash), {verifies} verifies each after {WARMUP} untimed");
    let direct = summarise(direct_ms);
    let pool = summarise(pool_ms);
    for (name, s) in [("direct", &direct), ("pool", &pool)] {
        println!(
            "{name:>6}: median {:.2} ms  p10 {:.2}  p90 {:.2}  min {:.2}  max {:.2}",
            s.median, s.p10, s.p90, s.min, s.max
        );
    }
    println!("verifies={verifies}");
    println!("direct_median_ms={:.3}", direct.median);
    println!("direct_p90_ms={:.3}", direct.p90);
    println!("pool_median_ms={:.3}", pool.median);
    println!("pool_p90_ms={:.3}", pool.p90);
}
