//! The validated configuration the gateway runs on. Built once at start-up from the file
//! structs; every error names the key that is wrong and why.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::account::account;
pub use super::account::AccountConfig;
use super::cors::cors;
pub use super::cors::CorsConfig;
pub use super::database::{
    parse_database_url, redact_url, DatabaseBackend, DatabaseConfig, DatabaseUrl, PostgresConfig,
};
use super::error::ConfigError;
use super::file::FileConfig;
use super::routing::{route, upstream};
pub use super::routing::{AuthMode, RouteConfig, UpstreamConfig};
use super::tls::{check_listeners, tls, TlsConfig};
pub use super::values::parse_rate;
use super::values::{duration, endpoint_path, header_name, socket_addr};
use crate::auth::keys::KeyAlgorithm;

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
    pub account: AccountConfig,
    /// `None`: no HTTPS listener.
    pub tls: Option<TlsConfig>,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The plain-HTTP listener; `None` (`listen = "off"`, only with `[tls]`): none.
    pub listen: Option<SocketAddr>,
    pub threads: usize,
    /// One work-stealing runtime instead of one single-threaded runtime per thread.
    pub work_stealing: bool,
    pub metrics_listen: Option<SocketAddr>,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream_connect_timeout: Duration,
    pub upstream_read_timeout: Duration,
    /// Idle upstream connections kept for reuse, for the whole process.
    pub upstream_keepalive_pool_size: usize,
    /// How long a client may take to send a request header, and the longest silence
    /// within a request body.
    pub client_timeout: Duration,
    /// Serve the OpenAPI document at `GET /openapi.json`.
    pub openapi: bool,
    /// Serve HTTP/2 without TLS (prior knowledge) on the plain listener.
    pub h2c: bool,
    /// Bytes per second a request body must average once it has taken `client_timeout`
    /// (0: no minimum).
    pub min_body_rate: u64,
    /// A tunnel with no traffic either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// A tunnel lives on past its access token's expiry while its session does.
    pub tunnel_outlives_token: bool,
    /// Where the running gateway writes its process id (for `authgate reload`).
    pub pid_file: Option<std::path::PathBuf>,
    /// The Unix socket a new binary started with `--upgrade` takes the listening sockets
    /// over on (set, or derived for this instance).
    pub upgrade_socket: std::path::PathBuf,
    /// After a graceful stop or upgrade begins, how long tunnels and slow requests may go
    /// on before they are cut.
    pub drain_timeout: Duration,
    /// Client connections open at once; past it a new one is refused.
    pub max_connections: usize,
    /// How long an HTTP/1 keep-alive connection may idle between requests (whole seconds;
    /// also the idle limit of an HTTP/2 connection).
    pub keepalive_timeout: Duration,
    /// The listener's read buffer per client connection, in bytes.
    pub read_buffer_size: usize,
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
    /// `None`: HS256 with the shared secret (the original contract). Otherwise the kind of
    /// key `authgate keys rotate` makes; the database decides which key signs.
    pub algorithm: Option<KeyAlgorithm>,
    /// Seals the private signing keys in the database; needed with an asymmetric algorithm.
    pub key_encryption_secret: Option<Vec<u8>>,
    /// Automatic rotation period; `None`: rotation on command only.
    pub key_rotation: Option<Duration>,
    /// How long a new key is published before it signs.
    pub key_publish_delay: Duration,
}

impl TokenConfig {
    /// The `[tokens] algorithm` name.
    pub fn algorithm_name(&self) -> &'static str {
        self.algorithm.map_or("HS256", KeyAlgorithm::as_str)
    }
}

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub user_id_header: String,
    pub username_header: String,
    /// The verified roles, comma-separated.
    pub roles_header: String,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub hash_threads: usize,
    pub hash_queue: usize,
    /// Niceness of the hashing threads, 0..=19.
    pub hash_nice: i32,
    /// The longest a login or registration waits for a hashing thread before a 503.
    pub hash_wait: Duration,
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
    /// The self-service endpoints (`[account]`), per client IP.
    pub account: RateSpec,
}

/// The forward-auth endpoint for other proxies (nginx `auth_request` and the like).
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// `None`: disabled.
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where access lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stderr,
    /// Appended to; reopened on SIGUSR1.
    File(std::path::PathBuf),
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub access: AccessLogTarget,
}

impl TryFrom<FileConfig> for Config {
    type Error = ConfigError;

    fn try_from(file: FileConfig) -> Result<Self, ConfigError> {
        let s = file.server;
        if s.threads == 0 {
            return Err(ConfigError::invalid("server.threads", "must be at least 1"));
        }
        if s.upstream_keepalive_pool_size == 0 {
            return Err(ConfigError::invalid(
                "server.upstream_keepalive_pool_size",
                "must be at least 1",
            ));
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
            listen: match s.listen.as_str() {
                "off" => None,
                listen => Some(socket_addr("server.listen", listen)?),
            },
            threads: s.threads,
            work_stealing: s.work_stealing,
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
            upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
            client_timeout: duration("server.client_timeout", &s.client_timeout)?,
            openapi: s.openapi,
            h2c: s.h2c,
            min_body_rate: s.min_body_rate,
            tunnel_idle_timeout: duration("server.tunnel_idle_timeout", &s.tunnel_idle_timeout)?,
            tunnel_outlives_token: s.tunnel_outlives_token,
            pid_file: match s.pid_file.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(path) => Some(std::path::PathBuf::from(path)),
            },
            // Derived below, once the `[tls]` listener is known.
            upgrade_socket: std::path::PathBuf::new(),
            drain_timeout: super::upgrade::drain_timeout(&s.drain_timeout)?,
            max_connections: super::connections::max_connections(s.max_connections)?,
            keepalive_timeout: super::connections::keepalive_timeout(&s.keepalive_timeout)?,
            read_buffer_size: super::connections::read_buffer_size(s.read_buffer_size)?,
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
            algorithm: match t.algorithm.as_str() {
                "HS256" => None,
                other => Some(KeyAlgorithm::parse(other).ok_or_else(|| {
                    ConfigError::invalid(
                        "tokens.algorithm",
                        format!("{other:?} is not one of \"HS256\", \"EdDSA\", \"ES256\""),
                    )
                })?),
            },
            key_encryption_secret: match t.key_encryption_secret.as_bytes() {
                [] => None,
                s if s.len() < 32 => {
                    return Err(ConfigError::invalid(
                        "tokens.key_encryption_secret",
                        format!("is {} bytes; at least 32 are needed", s.len()),
                    ))
                }
                s => Some(s.to_vec()),
            },
            key_rotation: match t.key_rotation.as_str() {
                "" => None,
                r => Some(duration("tokens.key_rotation", r)?),
            },
            key_publish_delay: duration("tokens.key_publish_delay", &t.key_publish_delay)?,
        };
        if tokens.algorithm.is_some() && tokens.key_encryption_secret.is_none() {
            return Err(ConfigError::invalid(
                "tokens.key_encryption_secret",
                format!(
                    "must be set (or AUTHGATE_KEY_ENCRYPTION_SECRET) with algorithm {}: it seals \
                     the private signing keys in the database",
                    tokens.algorithm_name()
                ),
            ));
        }
        if let Some(every) = tokens.key_rotation {
            if every <= tokens.key_publish_delay {
                return Err(ConfigError::invalid(
                    "tokens.key_rotation",
                    "must be longer than tokens.key_publish_delay",
                ));
            }
        }
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
            roles_header: header_name("identity.roles_header", &file.identity.roles_header)?,
        };
        // Compared the way they are stripped: any case, `_` for `-`.
        let fold = |h: &str| h.to_ascii_lowercase().replace('_', "-");
        if fold(&identity.roles_header) == fold(&identity.user_id_header)
            || fold(&identity.roles_header) == fold(&identity.username_header)
            || fold(&identity.user_id_header) == fold(&identity.username_header)
        {
            return Err(ConfigError::invalid(
                "identity.roles_header",
                "the identity headers must have three different names",
            ));
        }

        let l = file.limits;
        if l.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.max_body_bytes",
                "must be above zero",
            ));
        }
        if !(0..=19).contains(&l.hash_nice) {
            return Err(ConfigError::invalid(
                "limits.hash_nice",
                "must be between 0 (the gateway's own priority) and 19 (the lowest)",
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
            hash_nice: l.hash_nice,
            hash_wait: duration("limits.hash_wait", &l.hash_wait)?,
        };

        let r = file.rate_limits;
        let rate_limits = RateLimitsConfig {
            register: parse_rate("rate_limits.register", &r.register)?,
            login: parse_rate("rate_limits.login", &r.login)?,
            refresh: parse_rate("rate_limits.refresh", &r.refresh)?,
            login_failures: parse_rate("rate_limits.login_failures", &r.login_failures)?,
            authenticated: parse_rate("rate_limits.authenticated", &r.authenticated)?,
            public: parse_rate("rate_limits.public", &r.public)?,
            account: parse_rate("rate_limits.account", &r.account)?,
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
            access: match file.log.access.as_str() {
                "off" => AccessLogTarget::Off,
                "stderr" => AccessLogTarget::Stderr,
                "" => {
                    return Err(ConfigError::invalid(
                        "log.access",
                        "is empty; use \"stderr\", \"off\" or a file path",
                    ))
                }
                path => AccessLogTarget::File(path.into()),
            },
        };

        let cors = cors(file.cors)?;
        let forward_auth = ForwardAuthConfig {
            path: endpoint_path("forward_auth.path", &file.forward_auth.path)?,
        };
        let account = account(file.account, forward_auth.path.as_deref())?;

        let tls = file.tls.map(tls).transpose()?;
        check_listeners(&server, tls.as_ref())?;
        let mut server = server;
        server.upgrade_socket = super::upgrade::upgrade_socket(
            s.upgrade_socket.as_deref(),
            server.pid_file.as_deref(),
            &[
                server.listen,
                tls.as_ref().map(|t| t.listen),
                server.metrics_listen,
            ],
        )?;

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
            account,
            tls,
            upstreams,
            routes,
        })
    }
}
