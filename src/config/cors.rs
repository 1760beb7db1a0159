//! `[cors]`: which browser origins may call through the gateway.

use std::time::Duration;

use super::error::ConfigError;
use super::file::CorsFile;
use super::values::{duration, header_name};

#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Empty: no CORS headers at all. `"*"`: any origin.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub max_age: Duration,
    pub allow_credentials: bool,
}

pub(super) fn cors(file: CorsFile) -> Result<CorsConfig, ConfigError> {
    for origin in &file.allowed_origins {
        let valid = origin == "*"
            || ((origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && http::HeaderValue::from_str(origin).is_ok());
        if !valid {
            return Err(ConfigError::invalid(
                "cors.allowed_origins",
                format!("{origin:?} is not \"*\" or an origin like \"https://app.example.com\""),
            ));
        }
    }
    if file.allow_credentials && file.allowed_origins.iter().any(|o| o == "*") {
        return Err(ConfigError::invalid(
            "cors.allow_credentials",
            "cannot be combined with the \"*\" origin",
        ));
    }
    for h in &file.allowed_headers {
        header_name("cors.allowed_headers", h)?;
    }
    for m in &file.allowed_methods {
        http::Method::from_bytes(m.as_bytes()).map_err(|_| {
            ConfigError::invalid(
                "cors.allowed_methods",
                format!("{m:?} is not an HTTP method"),
            )
        })?;
    }
    Ok(CorsConfig {
        allowed_origins: file.allowed_origins,
        allowed_methods: file.allowed_methods,
        allowed_headers: file.allowed_headers,
        max_age: duration("cors.max_age", &file.max_age)?,
        allow_credentials: file.allow_credentials,
    })
}
