//! `[server]` keys that bound client connections: how many may be open at once, how long
//! a keep-alive connection may idle, and the listener's read buffer per connection.

use std::time::Duration;

use super::error::ConfigError;
use super::values::duration;

/// Client connections open at once, by default. Sized for a 2-core, 24 GiB machine: at
/// about 100 KiB per connection (BENCHMARKS.md) 20,000 connections take about 2 GB, and
/// with one upstream connection each they fit the 65,536 open files that
/// deploy/authgate.service allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;

/// The read buffer per client connection by default: none. pingora's L4 read buffer
/// (`DEFAULT_L4_READ_BUFFER_SIZE`, 64 KiB) is allocated whole when a connection is accepted
/// and kept while it idles, yet on the plain listener every read the gateway makes is at
/// least 4 KiB (a request header's first read, a body, a tunnel), which bypasses a buffer
/// of 4 KiB or less: so reads go straight to the socket (BENCHMARKS.md, idle connections).
pub const DEFAULT_READ_BUFFER_SIZE: usize = 0;

/// The smallest and largest read buffers accepted, besides 0 (none): below 1 KiB a request
/// header takes many reads; above 1 MiB a connection flood takes the memory.
const READ_BUFFER_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

pub(super) fn max_connections(value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(
            "server.max_connections",
            "must be at least 1",
        ));
    }
    Ok(value)
}

/// Whole seconds, at least one: pingora keeps the keep-alive timeout in seconds, and zero
/// would mean "never".
pub(super) fn keepalive_timeout(value: &str) -> Result<Duration, ConfigError> {
    const KEY: &str = "server.keepalive_timeout";
    let d = duration(KEY, value)?;
    if d.subsec_nanos() != 0 || d.is_zero() {
        return Err(ConfigError::invalid(
            KEY,
            format!("{value:?} must be a whole number of seconds, at least 1s"),
        ));
    }
    Ok(d)
}

pub(super) fn read_buffer_size(value: usize) -> Result<usize, ConfigError> {
    read_buffer_size_of("server.read_buffer_size", value)
}

/// A listener's read buffer (`key` names it in errors): 0, or within [`READ_BUFFER_RANGE`].
pub(super) fn read_buffer_size_of(key: &str, value: usize) -> Result<usize, ConfigError> {
    if value != 0 && !READ_BUFFER_RANGE.contains(&value) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{value} bytes is neither 0 (no buffer) nor within {}..={} bytes",
                READ_BUFFER_RANGE.start(),
                READ_BUFFER_RANGE.end()
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(e: ConfigError) -> String {
        e.to_string()
    }

    #[test]
    fn zero_connections_is_refused_with_the_key() {
        assert!(reason(max_connections(0).unwrap_err()).contains("server.max_connections"));
        assert_eq!(max_connections(50).unwrap(), 50);
    }

    #[test]
    fn keepalive_timeout_is_whole_seconds() {
        assert_eq!(keepalive_timeout("75s").unwrap(), Duration::from_secs(75));
        assert_eq!(keepalive_timeout("2m").unwrap(), Duration::from_secs(120));
        for bad in ["0s", "1500ms", "soon"] {
            let e = reason(keepalive_timeout(bad).unwrap_err());
            assert!(e.contains("server.keepalive_timeout"), "{bad}: {e}");
        }
    }

    #[test]
    fn read_buffer_size_is_bounded() {
        assert_eq!(read_buffer_size(4096).unwrap(), 4096);
        assert_eq!(read_buffer_size(0).unwrap(), 0, "0: no read buffer");
        assert_eq!(read_buffer_size(DEFAULT_READ_BUFFER_SIZE).unwrap(), 0);
        assert_eq!(
            read_buffer_size(pingora::listeners::DEFAULT_L4_READ_BUFFER_SIZE).unwrap(),
            65536
        );
        for bad in [1, 1023, 2 * 1024 * 1024] {
            let e = reason(read_buffer_size(bad).unwrap_err());
            assert!(e.contains("server.read_buffer_size"), "{bad}: {e}");
        }
    }
}
