//! Logging: a tracing subscriber writing text or JSON lines to stderr from a writer
//! thread, with pingora's `log` records bridged in. The level comes from `RUST_LOG` when
//! set, else from `[log] level`, which a reload changes in the running process
//! ([`LiveLogLevel`]).

use std::io::{BufWriter, IsTerminal};
use std::sync::Arc;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_log::AsLog;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// pingora's debug records print whole request headers, Authorization included, so its
/// crates never log below info, whatever level is asked for.
const CAPS: [&str; 2] = ["pingora_proxy=info", "pingora_core=info"];

/// The filter: the asked-for level, with pingora capped at info.
fn filter(level: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    if filter
        .max_level_hint()
        .is_some_and(|l| l > LevelFilter::INFO)
    {
        for cap in CAPS {
            filter = filter.add_directive(cap.parse().expect("valid directive"));
        }
    }
    filter
}

/// Keeps the log writer thread running; dropping it writes out the lines still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
    level: Option<LiveLogLevel>,
}

impl LogGuard {
    /// The handle that changes the level of the installed subscriber (`None` when this
    /// call did not install it).
    pub fn level(&self) -> Option<LiveLogLevel> {
        self.level.clone()
    }
}

type Reload = dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync;

/// Changes the log level of the running process: `[log] level` on reload. `RUST_LOG`,
/// when set, still wins, as at start.
#[derive(Clone)]
pub struct LiveLogLevel(Arc<Reload>);

impl LiveLogLevel {
    /// Applies `level` (as `[log] level` takes it) from the next event on.
    pub fn set(&self, level: &str) -> Result<(), String> {
        (self.0)(filter(level))
    }

    /// Writes no event from now on, `RUST_LOG` or not: for the moment before the process
    /// exits, when threads still stopping would otherwise write to a log writer that is
    /// already closed (and tracing would print its complaint in the middle of the log).
    pub fn silence(&self) {
        let _ = (self.0)(EnvFilter::new("off"));
    }

    /// From now on only authgate's own info events (`authgate stopped`), not the
    /// messages of pingora's services still stopping after the drain.
    pub fn only_own_info(&self) {
        let _ = (self.0)(EnvFilter::new("off,authgate=info"));
    }

    fn of<S: 'static>(handle: tracing_subscriber::reload::Handle<EnvFilter, S>) -> Self {
        Self(Arc::new(move |filter: EnvFilter| {
            let most_verbose = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
            handle.reload(filter).map_err(|e| e.to_string())?;
            tracing_log::log::set_max_level(most_verbose.as_log());
            Ok(())
        }))
    }
}

/// Installs the global subscriber; a second call (as in tests) changes nothing.
///
/// A request formats its line and queues it; the writer thread writes whatever has
/// queued up with one `write(2)` and flushes whenever the queue runs empty, so a line
/// costs the request no system call and reaches stderr within one batch. Nothing is
/// dropped: when 128k lines are waiting, the logging thread waits too.
pub fn init(config: &LogConfig) -> LogGuard {
    let filter = filter(&config.level);
    // `log` records above the most verbose level any directive allows (pingora's debug
    // calls on every request, at the default level) stop at the `log` crate's own level
    // check instead of reaching the subscriber to be filtered out there.
    let most_verbose = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(most_verbose.as_log())
        .init();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("authgate-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    // Set directly: `try_init` would also try to install a `log` bridge, fail since
    // there is one, and report the subscriber as not installed.
    let (installed, level) = match config.format {
        LogFormat::Json => {
            let builder = builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_filter_reloading();
            let level = LiveLogLevel::of(builder.reload_handle());
            (
                tracing::subscriber::set_global_default(builder.finish()),
                level,
            )
        }
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let level = LiveLogLevel::of(builder.reload_handle());
            (
                tracing::subscriber::set_global_default(builder.finish()),
                level,
            )
        }
    };
    let installed = installed.is_ok();
    LogGuard {
        _writer: installed.then_some(guard),
        level: installed.then_some(level),
    }
}
