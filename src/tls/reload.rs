//! Certificates replaced without a restart. [`CertificateReloader::reload`] rereads every
//! certificate file of `[tls]` and, when one changed, loads and checks them all before
//! swapping the set the listener serves: a bad PEM or a key that does not match fails the
//! whole reload and the running certificates stay (logged, and counted in
//! `authgate_tls_reloads_total{result="failure"}`). [`CertificateWatch`] calls it on a
//! timer. A configuration reload (SIGHUP) rereads them with the rest of the file, all or
//! nothing: [`CertificateReloader::load_changed`] checks them before anything changes and
//! [`CertificateReloader::install`] swaps them in with the new configuration.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::certificates::{FileContents, LoadedCertificate};
use super::resolver::{CertificateResolver, CertificateSet, SetError};
use crate::config::TlsConfig;
use crate::metrics::Metrics;

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// No file changed since the last load (or the last failed attempt).
    Unchanged,
    /// New certificates are served.
    Replaced,
}

/// The `result` label values of `authgate_tls_reloads_total`.
pub const RELOAD_RESULTS: [&str; 2] = ["success", "failure"];

/// Rereads `[tls]`'s certificate files into the listener's resolver.
pub struct CertificateReloader {
    tls: TlsConfig,
    resolver: Arc<CertificateResolver>,
    metrics: Arc<Metrics>,
    /// The last attempt that failed, so a broken or missing file left in place is
    /// reported once, not at every check.
    last_failed: Mutex<Option<FailedAttempt>>,
}

/// What a failed reload saw.
#[derive(Debug, PartialEq, Eq)]
enum FailedAttempt {
    /// A file could not be read; the error's text.
    Unreadable(String),
    /// The files were read and refused; their fingerprints.
    Refused(Vec<[u8; 32]>),
}

impl CertificateReloader {
    /// Wraps the resolver built at start and exports the expiry of its certificates.
    pub fn new(tls: TlsConfig, resolver: Arc<CertificateResolver>, metrics: Arc<Metrics>) -> Self {
        for result in RELOAD_RESULTS {
            metrics.tls_reloads_total.with_label_values(&[result]);
        }
        let reloader = Self {
            tls,
            resolver,
            metrics,
            last_failed: Mutex::new(None),
        };
        reloader.export_expiry(&reloader.resolver.current());
        reloader
    }

    /// Loads the certificate files again if any changed; all or nothing.
    pub fn reload(&self) -> Result<ReloadOutcome, SetError> {
        let current = self.resolver.current();
        let contents = match self.read_all() {
            Ok(contents) => contents,
            Err(e) => {
                let attempt = FailedAttempt::Unreadable(e.to_string());
                return self.failed(e, attempt);
            }
        };
        let fingerprints: Vec<[u8; 32]> = contents.iter().map(FileContents::fingerprint).collect();
        let last_failed = self.last_failed.lock().unwrap_or_else(|e| e.into_inner());
        let refused_before = matches!(&*last_failed, Some(FailedAttempt::Refused(before)) if *before == fingerprints);
        if self.unchanged(&current, &fingerprints) || refused_before {
            return Ok(ReloadOutcome::Unchanged);
        }
        drop(last_failed);
        match self.parse_all(&contents) {
            Ok(set) => {
                self.install(set);
                Ok(ReloadOutcome::Replaced)
            }
            Err(error) => self.failed(error, FailedAttempt::Refused(fingerprints)),
        }
    }

    /// Reads and checks every certificate file, changing nothing: the new set when a file
    /// changed, `None` when none did.
    pub fn load_changed(&self) -> Result<Option<CertificateSet>, SetError> {
        let contents = self.read_all()?;
        let fingerprints: Vec<[u8; 32]> = contents.iter().map(FileContents::fingerprint).collect();
        if self.unchanged(&self.resolver.current(), &fingerprints) {
            return Ok(None);
        }
        self.parse_all(&contents).map(Some)
    }

    /// Serves `set` from the next handshake on (counted as a successful TLS reload).
    pub fn install(&self, set: CertificateSet) {
        for (name, cert) in &set.loaded {
            tracing::info!(certificate = %name, serial = %cert.serial, not_after = cert.not_after, "TLS certificate loaded");
        }
        self.export_expiry(&set);
        self.resolver.replace(set);
        *self.last_failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.metrics
            .tls_reloads_total
            .with_label_values(&["success"])
            .inc();
    }

    fn unchanged(&self, current: &CertificateSet, fingerprints: &[[u8; 32]]) -> bool {
        fingerprints
            .iter()
            .zip(current.loaded.iter())
            .all(|(read, (_, loaded))| *read == loaded.fingerprint)
    }

    fn parse_all(&self, contents: &[FileContents]) -> Result<CertificateSet, SetError> {
        let mut loaded = Vec::with_capacity(contents.len());
        for (paths, read) in self.tls.all_paths().zip(contents.iter()) {
            let cert = LoadedCertificate::parse(paths, read).map_err(|source| SetError {
                key: source.key(paths),
                source,
            })?;
            loaded.push(cert);
        }
        Ok(CertificateSet::from_loaded(&self.tls, loaded))
    }

    fn read_all(&self) -> Result<Vec<FileContents>, SetError> {
        self.tls
            .all_paths()
            .map(|paths| {
                FileContents::read(paths).map_err(|source| SetError {
                    key: source.key(paths),
                    source,
                })
            })
            .collect()
    }

    /// Logs and counts a failed attempt, once for the same failure seen again.
    fn failed(&self, error: SetError, attempt: FailedAttempt) -> Result<ReloadOutcome, SetError> {
        let mut last_failed = self.last_failed.lock().unwrap_or_else(|e| e.into_inner());
        if last_failed.as_ref() == Some(&attempt) {
            return Ok(ReloadOutcome::Unchanged);
        }
        *last_failed = Some(attempt);
        tracing::warn!(error = %error, "TLS certificates not reloaded; the running ones stay");
        self.metrics
            .tls_reloads_total
            .with_label_values(&["failure"])
            .inc();
        Err(error)
    }

    fn export_expiry(&self, set: &CertificateSet) {
        for (name, cert) in &set.loaded {
            self.metrics
                .tls_certificate_expiry_timestamp_seconds
                .with_label_values(&[name])
                .set(cert.not_after);
        }
    }
}

/// Checks the certificate files every `[tls] watch_interval`.
pub struct CertificateWatch(pub Arc<CertificateReloader>);

#[async_trait]
impl BackgroundService for CertificateWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticker = tokio::time::interval(self.0.tls.watch_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            // The outcome is logged and counted inside.
            let _ = self.0.reload();
        }
    }
}
