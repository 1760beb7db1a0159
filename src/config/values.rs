//! Parsers for the value types the config file uses: durations, addresses, rates, header
//! names. Each error names the key it was read from.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::validated::RateSpec;

pub(super) fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value)
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a duration: {e}")))
}

pub(super) fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not an IP:port address")))
}

/// Parses `"N/period"`, e.g. `"10/5m"`.
pub fn parse_rate(key: &str, value: &str) -> Result<RateSpec, ConfigError> {
    let bad = || {
        ConfigError::invalid(
            key,
            format!("{value:?} is not of the form \"N/period\", e.g. \"10/5m\""),
        )
    };
    let (count, period) = value.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let period = humantime::parse_duration(period.trim()).map_err(|_| bad())?;
    if count == 0 || period.is_zero() {
        return Err(ConfigError::invalid(
            key,
            "count and period must both be above zero",
        ));
    }
    Ok(RateSpec { count, period })
}

pub(super) fn header_name(key: &str, value: &str) -> Result<String, ConfigError> {
    http::header::HeaderName::from_bytes(value.as_bytes())
        .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not a valid header name")))?;
    Ok(value.to_string())
}

/// A path the gateway serves itself: normalised and starting with '/', or empty (`None`,
/// the endpoint is off).
pub(super) fn endpoint_path(key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    match value {
        "" => Ok(None),
        p if p.starts_with('/')
            && !p.contains("//")
            && !p.contains('%')
            && !p.split('/').any(|s| s == "." || s == "..") =>
        {
            Ok(Some(p.to_string()))
        }
        p => Err(ConfigError::invalid(
            key,
            format!("{p:?} must be a normalised path starting with '/', or empty"),
        )),
    }
}
