//! Configuration reload on SIGHUP: the file (and the process environment, as at start) is
//! read and validated completely with [`config::load`], then the live configuration is
//! swapped whole. A file that does not validate changes nothing; the error names the key
//! as `authgate check` does. Keys that cannot change in a running process are logged as
//! needing a restart and keep their running values; the rest applies, with the log level
//! and the `[tls]` certificate files (reread; a bad one refuses the whole reload).

pub mod changes;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use self::changes::Applies;
use crate::config::{self, Config};
use crate::gateway::live::{LiveConfig, SharedLiveConfig};
use crate::metrics::Metrics;
use crate::telemetry::LiveLogLevel;
use crate::tls::reload::CertificateReloader;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot set up an upstream: {0}")]
    Upstream(std::io::Error),
    #[error("cannot load the TLS certificates: {0}")]
    Certificates(crate::tls::resolver::SetError),
}

/// Reloads the configuration file on SIGHUP.
pub struct ConfigReloader {
    path: PathBuf,
    /// The configuration in force: the last file applied, with the running values of the
    /// keys that need a restart.
    running: Mutex<Config>,
    live: SharedLiveConfig,
    metrics: Arc<Metrics>,
    /// Sets the level of the installed log subscriber (`None`: not installed here).
    log_level: Option<LiveLogLevel>,
    /// The `[tls]` listener's certificates (`None`: no `[tls]`).
    certificates: Option<Arc<CertificateReloader>>,
}

impl ConfigReloader {
    /// Installs the SIGHUP handler at once (a SIGHUP that arrives before the background
    /// service runs must not end the process, the signal's default), so call it before
    /// the server starts, inside a tokio runtime.
    pub fn new(
        path: PathBuf,
        running: Config,
        live: SharedLiveConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        // The process-wide handler stays installed once registered; the stream is not
        // needed here.
        if let Err(e) = signal(SignalKind::hangup()) {
            tracing::error!(error = %e, "cannot install the SIGHUP handler");
        }
        Self {
            path,
            running: Mutex::new(running),
            live,
            metrics,
            log_level: None,
            certificates: None,
        }
    }

    /// Applies `[log] level` to the running subscriber on reload.
    pub fn with_log_level(mut self, level: Option<LiveLogLevel>) -> Self {
        self.log_level = level;
        self
    }

    /// Rereads the `[tls]` certificate files on reload.
    pub fn with_certificates(mut self, certificates: Option<Arc<CertificateReloader>>) -> Self {
        self.certificates = certificates;
        self
    }

    /// Reads, validates and applies the file; the running configuration stays on error.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let new = config::load(&self.path)?;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let found = changes::changes(&running, &new);
        let next = changes::applied(&running, &new);
        // Everything is loaded and checked before anything changes.
        let certificates = match &self.certificates {
            Some(reloader) => reloader
                .load_changed()
                .map_err(ReloadError::Certificates)?
                .map(|set| (reloader, set)),
            None => None,
        };
        let live = LiveConfig::next(&self.live.load(), &next, &self.metrics)
            .map_err(ReloadError::Upstream)?;
        self.live.store(Arc::new(live));
        if let Some((reloader, set)) = certificates {
            reloader.install(set);
        }
        if next.log.level != running.log.level {
            if let Some(Err(e)) = self.log_level.as_ref().map(|l| l.set(&next.log.level)) {
                tracing::error!(error = %e, "cannot change the log level");
            }
        }
        *running = next;
        for change in &found {
            match change.applies {
                Applies::Live => tracing::info!(key = change.key, "configuration change applied"),
                Applies::Restart => tracing::warn!(
                    key = change.key,
                    "configuration change needs a restart; the running value stays"
                ),
            }
        }
        Ok(())
    }

    /// One reload, logged and counted.
    fn reload_and_record(&self) {
        let result = self.reload();
        let label = if result.is_ok() { "success" } else { "failure" };
        self.metrics
            .config_reloads_total
            .with_label_values(&[label])
            .inc();
        self.metrics
            .config_last_reload_successful
            .set(i64::from(result.is_ok()));
        match result {
            Ok(()) => tracing::info!(path = %self.path.display(), "configuration reloaded"),
            Err(e) => tracing::error!(
                path = %self.path.display(),
                error = %one_line(&e.to_string()),
                "configuration reload refused; the running configuration stays"
            ),
        }
    }
}

/// A multi-line message (a TOML parse error shows the line and a caret) on one log line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait]
impl BackgroundService for ConfigReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload is off");
                return;
            }
        };
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    self.reload_and_record();
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
