//! Argon2id hashing (OWASP: m=19 MiB, t=2, p=1) on a bounded pool. A hash costs tens of
//! milliseconds of CPU, so it never runs on the proxy's event loop; and when the pool's
//! queue is full the caller is told at once (503) instead of queueing without bound, so a
//! login storm cannot stall proxied traffic. The pool's threads run at a lower CPU
//! priority (`hash_nice`), so on a machine where they share cores with the proxy, proxied
//! requests come first and hashing gets what is left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rayon::{ThreadPool, ThreadPoolBuilder};
use tokio::sync::{oneshot, Semaphore};

use super::error::AuthError;
use crate::config::LimitsConfig;
use crate::metrics::Metrics;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes one password on the calling thread: for the command line, which has no event
/// loop to keep free. Same parameters as the pool's hashes.
pub fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// Hashes and verifies passwords on at most `threads` threads with at most `queue` waiting.
pub struct PasswordHasher {
    /// Admission: running plus waiting. A failed `try_acquire` is the 503.
    admitted: Arc<Semaphore>,
    /// The ones actually hashing.
    running: Arc<Semaphore>,
    /// `threads` threads at the configured niceness.
    pool: ThreadPool,
    /// The longest a hash may wait for a thread before the caller is told to retry.
    max_wait: Duration,
    /// A real hash of a random password, verified against for unknown usernames so that
    /// they cost the same time as a wrong password.
    dummy_hash: String,
    metrics: Arc<Metrics>,
}

impl PasswordHasher {
    /// A pool of `hash_threads` threads at niceness `hash_nice` (0: the process's own
    /// priority, up to 19: the lowest), admitting `hash_queue` more hashes waiting for one
    /// for at most `hash_wait`.
    pub fn new(limits: &LimitsConfig, metrics: Arc<Metrics>) -> Self {
        let nice = limits.hash_nice;
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon2()
            .hash_password(uuid::Uuid::new_v4().as_bytes(), &salt)
            .expect("hashing a random password succeeds")
            .to_string();
        let threads = limits.hash_threads.max(1);
        let pool = ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("authgate-hash-{i}"))
            .start_handler(move |_| lower_own_priority(nice))
            .build()
            .expect("starting the password hashing threads");
        metrics.hash_queue_capacity.set(limits.hash_queue as i64);
        Self {
            pool,
            max_wait: limits.hash_wait,
            admitted: Arc::new(Semaphore::new(threads + limits.hash_queue)),
            running: Arc::new(Semaphore::new(threads)),
            dummy_hash,
            metrics,
        }
    }

    /// Runs `job` on the hashing pool once a hashing slot is free, or refuses with
    /// [`AuthError::Busy`]: at once when the queue is full, or after `max_wait` in it.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let rejected = |reason: &str| {
            self.metrics
                .hash_rejected_total
                .with_label_values(&[reason])
                .inc();
            AuthError::Busy
        };
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| rejected("queue_full"))?;
        self.metrics.hash_queue_depth.inc();
        let waited =
            tokio::time::timeout(self.max_wait, self.running.clone().acquire_owned()).await;
        self.metrics.hash_queue_depth.dec();
        let running = waited
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| rejected("wait"))?;
        let histogram = self.metrics.password_hash_seconds.clone();
        let (done, result) = oneshot::channel();
        self.pool.spawn(move || {
            let started = Instant::now();
            let out = job();
            histogram.observe(started.elapsed().as_secs_f64());
            drop((running, admitted));
            let _ = done.send(out);
        });
        result.await.map_err(|_| AuthError::Busy)
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            AuthError::Busy
        })
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no
    /// account, so both cases take the same time. Returns false for the dummy.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, AuthError> {
        let is_real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        argon2()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(matches && is_real)
    }
}

/// Raises the calling thread's niceness by `nice` (Linux keeps a niceness per thread).
/// Failure only means hashing competes with the proxy at equal priority, so it is logged,
/// not fatal. The crate's one `unsafe` block: libc has no safe wrapper for setpriority.
#[allow(unsafe_code)]
fn lower_own_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: setpriority/gettid take plain integers and touch no memory of ours.
    let result =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if result != 0 {
        tracing::warn!(
            nice,
            error = %std::io::Error::last_os_error(),
            "cannot lower the priority of a password hashing thread"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The niceness of this process's threads named `name`, from /proc.
    fn niceness_of_threads_named(name: &str) -> Vec<i64> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
            // Fields after the parenthesised name: state is field 3, nice is field 19.
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            found.push(after_name.split(' ').nth(16).unwrap().parse().unwrap());
        }
        found
    }

    #[tokio::test]
    async fn hashing_threads_run_at_the_configured_niceness() {
        let limits = LimitsConfig {
            max_body_bytes: 1024,
            hash_threads: 1,
            hash_queue: 0,
            hash_nice: 7,
            hash_wait: Duration::from_secs(60),
        };
        let hasher = PasswordHasher::new(&limits, Arc::new(Metrics::new()));
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher.verify("wrong".into(), Some(hash)).await.unwrap());
        assert_eq!(niceness_of_threads_named("authgate-hash-0"), vec![7]);
    }
}
