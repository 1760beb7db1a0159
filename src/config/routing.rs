//! `[[upstreams]]` and `[[routes]]`: each checked on its own and against each other.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::file::{RouteFile, UpstreamFile};
use super::upstream_tls::{upstream_tls, UpstreamTls};
use super::validated::RateSpec;
use super::values::{duration, parse_rate, socket_addr};

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    pub servers: Vec<SocketAddr>,
    pub health_check_interval: Duration,
    /// `None`: plain HTTP.
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 to the servers (ALPN `h2` over TLS, prior-knowledge h2c otherwise) instead
    /// of HTTP/1.1.
    pub http2: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Required,
    Public,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub prefix: String,
    pub upstream: String,
    pub auth: AuthMode,
    pub rate_limit: Option<RateSpec>,
    /// Any one of these lets a request through; empty: any valid token does.
    pub roles: Vec<String>,
    /// Overrides `[server] upstream_read_timeout` (a quiet stream, e.g. server-sent
    /// events, may need longer).
    pub upstream_read_timeout: Option<Duration>,
}

pub(super) fn upstream(index: usize, file: UpstreamFile) -> Result<UpstreamConfig, ConfigError> {
    let key = |k: &str| format!("upstreams[{index}].{k}");
    if file.name.trim().is_empty() {
        return Err(ConfigError::invalid(&key("name"), "must not be empty"));
    }
    if file.servers.is_empty() {
        return Err(ConfigError::invalid(
            &key("servers"),
            "needs at least one server",
        ));
    }
    let servers = file
        .servers
        .iter()
        .map(|s| socket_addr(&key("servers"), s))
        .collect::<Result<Vec<_>, _>>()?;
    let tls = upstream_tls(&key, &file)?;
    Ok(UpstreamConfig {
        tls,
        http2: file.http2,
        name: file.name,
        servers,
        health_check_interval: duration(
            &key("health_check_interval"),
            &file.health_check_interval,
        )?,
    })
}

pub(super) fn route(
    index: usize,
    file: RouteFile,
    upstreams: &[UpstreamConfig],
) -> Result<RouteConfig, ConfigError> {
    let key = |k: &str| format!("routes[{index}].{k}");
    let prefix = file.prefix;
    if !prefix.starts_with('/')
        || prefix.contains("//")
        || prefix.contains('%')
        || prefix.contains('\\')
    {
        return Err(ConfigError::invalid(
            &key("prefix"),
            format!("{prefix:?} must be a normalised path starting with '/'"),
        ));
    }
    if prefix.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(ConfigError::invalid(
            &key("prefix"),
            "must not contain dot segments",
        ));
    }
    let prefix = if prefix.len() > 1 {
        prefix.trim_end_matches('/').to_string()
    } else {
        prefix
    };
    if !upstreams.iter().any(|u| u.name == file.upstream) {
        return Err(ConfigError::invalid(
            &key("upstream"),
            format!("no upstream is named {:?}", file.upstream),
        ));
    }
    let auth = match file.auth.as_str() {
        "required" => AuthMode::Required,
        "public" => AuthMode::Public,
        other => {
            return Err(ConfigError::invalid(
                &key("auth"),
                format!("{other:?} is neither \"required\" nor \"public\""),
            ))
        }
    };
    let rate_limit = file
        .rate_limit
        .as_deref()
        .map(|r| parse_rate(&key("rate_limit"), r))
        .transpose()?;
    for role in &file.roles {
        if !crate::auth::roles::is_valid_role(role) {
            return Err(ConfigError::invalid(
                &key("roles"),
                crate::auth::roles::RoleError::InvalidName(role.clone()).to_string(),
            ));
        }
    }
    if !file.roles.is_empty() && auth != AuthMode::Required {
        return Err(ConfigError::invalid(
            &key("roles"),
            "needs auth = \"required\": a public route checks no token",
        ));
    }
    let upstream_read_timeout = file
        .upstream_read_timeout
        .as_deref()
        .map(|t| duration(&key("upstream_read_timeout"), t))
        .transpose()?;
    Ok(RouteConfig {
        prefix,
        upstream: file.upstream,
        auth,
        rate_limit,
        roles: file.roles,
        upstream_read_timeout,
    })
}
