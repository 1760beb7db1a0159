//! Logging: a tracing subscriber writing text or JSON lines, with pingora's `log` records
//! bridged in. The level comes from `RUST_LOG` when set, else from `[log] level`.

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

/// Installs the global subscriber; a second call (as in tests) changes nothing.
pub fn init(config: &LogConfig) {
    let filter = filter(&config.level);
    // `log` records above the most verbose level any directive allows (pingora's debug
    // calls on every request, at the default level) stop at the `log` crate's own level
    // check instead of reaching the subscriber to be filtered out there.
    let most_verbose = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(most_verbose.as_log())
        .init();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
