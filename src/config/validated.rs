//! The validated configuration the gateway runs on. Built once at start-up from the file
//! structs; every error names the key that is wrong and why.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

pub use super::database::{
    parse_database_url, redact_url, DatabaseBackend, DatabaseConfig, DatabaseUrl, PostgresConfig,
};
use super::error::ConfigError;
use super::file::{CorsFile, FileConfig, RouteFile, UpstreamFile};

/// Everything the gateway needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub tokens: TokenConfig,
    pub identity: IdentityConfig,
    pub limits: LimitsConfig,
    pub rate_limits: RateLimitsConfig,
    pub log: LogConfig,
    pub cors: CorsConfig,
    pub forward_auth: ForwardAuthConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub threads: usize,
    pub metrics_listen: Option<SocketAddr>,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream_connect_timeout: Duration,
    pub upstream_read_timeout: Duration,
    pub client_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `None`: generate one and keep it beside the SQLite file (never with PostgreSQL).
    pub secret: Option<Vec<u8>>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub leeway: Duration,
    /// `/refresh` also returns a new refresh token and spends the presented one.
    pub rotate_refresh: bool,
    /// How long a spent refresh token may be presented again before it counts as theft.
    pub reuse_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub user_id_header: String,
    pub username_header: String,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub hash_threads: usize,
    pub hash_queue: usize,
}

/// `N` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub count: u32,
    pub period: Duration,
}

#[derive(Debug, Clone)]
pub struct RateLimitsConfig {
    pub register: RateSpec,
    pub login: RateSpec,
    pub refresh: RateSpec,
    /// Failed logins per username and client IP before further attempts are refused.
    pub login_failures: RateSpec,
    pub authenticated: RateSpec,
    pub public: RateSpec,
}

/// The forward-auth endpoint for other proxies (nginx `auth_request` and the like).
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// `None`: disabled.
    pub path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Empty: no CORS headers at all. `"*"`: any origin.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub max_age: Duration,
    pub allow_credentials: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    pub servers: Vec<SocketAddr>,
    pub health_check_interval: Duration,
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
}

fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value)
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a duration: {e}")))
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
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

fn header_name(key: &str, value: &str) -> Result<String, ConfigError> {
    http::header::HeaderName::from_bytes(value.as_bytes())
        .map_err(|_| ConfigError::invalid(key, format!("{value:?} is not a valid header name")))?;
    Ok(value.to_string())
}

fn upstream(index: usize, file: UpstreamFile) -> Result<UpstreamConfig, ConfigError> {
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
    Ok(UpstreamConfig {
        name: file.name,
        servers,
        health_check_interval: duration(
            &key("health_check_interval"),
            &file.health_check_interval,
        )?,
    })
}

fn route(
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
    Ok(RouteConfig {
        prefix,
        upstream: file.upstream,
        auth,
        rate_limit,
    })
}

fn cors(file: CorsFile) -> Result<CorsConfig, ConfigError> {
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

impl TryFrom<FileConfig> for Config {
    type Error = ConfigError;

    fn try_from(file: FileConfig) -> Result<Self, ConfigError> {
        let s = file.server;
        if s.threads == 0 {
            return Err(ConfigError::invalid("server.threads", "must be at least 1"));
        }
        let trusted_proxies = s
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            "server.trusted_proxies",
                            format!("{p:?} is not a CIDR or IP address"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let server = ServerConfig {
            listen: socket_addr("server.listen", &s.listen)?,
            threads: s.threads,
            metrics_listen: s
                .metrics_listen
                .as_deref()
                .map(|m| socket_addr("server.metrics_listen", m))
                .transpose()?,
            trusted_proxies,
            upstream_connect_timeout: duration(
                "server.upstream_connect_timeout",
                &s.upstream_connect_timeout,
            )?,
            upstream_read_timeout: duration(
                "server.upstream_read_timeout",
                &s.upstream_read_timeout,
            )?,
            client_timeout: duration("server.client_timeout", &s.client_timeout)?,
        };

        let database = DatabaseConfig::try_from(file.database)?;

        let t = file.tokens;
        let secret = match t.secret.as_bytes() {
            [] => None,
            s if s.len() < 32 => {
                return Err(ConfigError::invalid(
                    "tokens.secret",
                    format!("is {} bytes; at least 32 are needed", s.len()),
                ))
            }
            s => Some(s.to_vec()),
        };
        if secret.is_none() && matches!(database.backend, DatabaseBackend::Postgres(_)) {
            return Err(ConfigError::invalid(
                "tokens.secret",
                "must be set (or JWT_SECRET_KEY) with a PostgreSQL database: every gateway \
                 sharing it must sign with the same secret",
            ));
        }
        let tokens = TokenConfig {
            secret,
            issuer: t.issuer,
            audience: t.audience,
            access_ttl: duration("tokens.access_ttl", &t.access_ttl)?,
            refresh_ttl: duration("tokens.refresh_ttl", &t.refresh_ttl)?,
            leeway: duration("tokens.leeway", &t.leeway)?,
            rotate_refresh: t.rotate_refresh,
            reuse_grace: duration("tokens.reuse_grace", &t.reuse_grace)?,
        };
        if tokens.access_ttl.is_zero() || tokens.refresh_ttl.is_zero() {
            return Err(ConfigError::invalid(
                "tokens.access_ttl",
                "token lifetimes must be above zero",
            ));
        }
        if tokens.issuer.is_empty() || tokens.audience.is_empty() {
            return Err(ConfigError::invalid(
                "tokens.issuer",
                "issuer and audience must not be empty",
            ));
        }

        let identity = IdentityConfig {
            user_id_header: header_name("identity.user_id_header", &file.identity.user_id_header)?,
            username_header: header_name(
                "identity.username_header",
                &file.identity.username_header,
            )?,
        };

        let l = file.limits;
        if l.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.max_body_bytes",
                "must be above zero",
            ));
        }
        let available = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let limits = LimitsConfig {
            max_body_bytes: l.max_body_bytes,
            hash_threads: if l.hash_threads == 0 {
                available
            } else {
                l.hash_threads
            },
            hash_queue: l.hash_queue,
        };

        let r = file.rate_limits;
        let rate_limits = RateLimitsConfig {
            register: parse_rate("rate_limits.register", &r.register)?,
            login: parse_rate("rate_limits.login", &r.login)?,
            refresh: parse_rate("rate_limits.refresh", &r.refresh)?,
            login_failures: parse_rate("rate_limits.login_failures", &r.login_failures)?,
            authenticated: parse_rate("rate_limits.authenticated", &r.authenticated)?,
            public: parse_rate("rate_limits.public", &r.public)?,
        };

        let log = LogConfig {
            format: match file.log.format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::invalid(
                        "log.format",
                        format!("{other:?} is neither \"text\" nor \"json\""),
                    ))
                }
            },
            level: file.log.level,
        };

        let cors = cors(file.cors)?;
        let forward_auth = ForwardAuthConfig {
            path: match file.forward_auth.path.as_str() {
                "" => None,
                p if p.starts_with('/')
                    && !p.contains("//")
                    && !p.contains('%')
                    && !p.split('/').any(|s| s == "." || s == "..") =>
                {
                    Some(p.to_string())
                }
                p => {
                    return Err(ConfigError::invalid(
                        "forward_auth.path",
                        format!("{p:?} must be a normalised path starting with '/', or empty"),
                    ))
                }
            },
        };

        let mut upstreams = Vec::with_capacity(file.upstreams.len());
        let mut names = HashSet::new();
        for (i, u) in file.upstreams.into_iter().enumerate() {
            let u = upstream(i, u)?;
            if !names.insert(u.name.clone()) {
                return Err(ConfigError::invalid(
                    &format!("upstreams[{i}].name"),
                    format!("{:?} is defined twice", u.name),
                ));
            }
            upstreams.push(u);
        }
        let mut routes = Vec::with_capacity(file.routes.len());
        let mut prefixes = HashSet::new();
        for (i, r) in file.routes.into_iter().enumerate() {
            let r = route(i, r, &upstreams)?;
            if !prefixes.insert(r.prefix.clone()) {
                return Err(ConfigError::invalid(
                    &format!("routes[{i}].prefix"),
                    format!("{:?} is defined twice", r.prefix),
                ));
            }
            routes.push(r);
        }

        Ok(Config {
            server,
            database,
            tokens,
            identity,
            limits,
            rate_limits,
            log,
            cors,
            forward_auth,
            upstreams,
            routes,
        })
    }
}
