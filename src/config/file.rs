//! The TOML file format, exactly as users write it. Every table denies unknown keys so a
//! typo is refused at start-up instead of silently ignored. These structs are never used
//! past start-up: `validated.rs` turns them into [`crate::config::Config`].

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub database: DatabaseFile,
    #[serde(default)]
    pub tokens: TokensFile,
    #[serde(default)]
    pub identity: IdentityFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub rate_limits: RateLimitsFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub cors: CorsFile,
    #[serde(default)]
    pub forward_auth: ForwardAuthFile,
    #[serde(default)]
    pub account: AccountFile,
    /// `[tls]`: the HTTPS listener; absent, the gateway speaks plain HTTP only.
    pub tls: Option<super::tls::TlsFile>,
    #[serde(default)]
    pub upstreams: Vec<UpstreamFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub listen: String,
    pub threads: usize,
    pub work_stealing: bool,
    pub metrics_listen: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub upstream_connect_timeout: String,
    pub upstream_read_timeout: String,
    pub upstream_keepalive_pool_size: usize,
    pub client_timeout: String,
    pub openapi: bool,
    pub h2c: bool,
    pub min_body_rate: u64,
    pub tunnel_idle_timeout: String,
    pub tunnel_outlives_token: bool,
    pub pid_file: Option<String>,
    pub upgrade_socket: Option<String>,
    pub drain_timeout: String,
    pub max_connections: usize,
    pub keepalive_timeout: String,
    pub read_buffer_size: usize,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5000".into(),
            threads: 2,
            work_stealing: false,
            metrics_listen: None,
            trusted_proxies: Vec::new(),
            upstream_connect_timeout: "5s".into(),
            upstream_read_timeout: "30s".into(),
            upstream_keepalive_pool_size: 128,
            client_timeout: "30s".into(),
            openapi: false,
            h2c: false,
            min_body_rate: 1024,
            tunnel_idle_timeout: "10m".into(),
            tunnel_outlives_token: true,
            pid_file: None,
            upgrade_socket: None,
            drain_timeout: "30s".into(),
            max_connections: super::connections::DEFAULT_MAX_CONNECTIONS,
            keepalive_timeout: "75s".into(),
            read_buffer_size: super::connections::DEFAULT_READ_BUFFER_SIZE,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseFile {
    pub url: String,
    pub sync_interval: String,
    pub max_staleness: String,
    pub pool_size: usize,
    pub connect_timeout: String,
    pub query_timeout: String,
}

impl Default for DatabaseFile {
    fn default() -> Self {
        Self {
            url: "sqlite:///data/authgate.db".into(),
            sync_interval: "1s".into(),
            max_staleness: "30s".into(),
            pool_size: 16,
            connect_timeout: "5s".into(),
            query_timeout: "5s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensFile {
    pub secret: String,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: String,
    pub refresh_ttl: String,
    pub leeway: String,
    pub rotate_refresh: bool,
    pub reuse_grace: String,
    pub algorithm: String,
    pub key_encryption_secret: String,
    pub key_rotation: String,
    pub key_publish_delay: String,
}

impl Default for TokensFile {
    fn default() -> Self {
        Self {
            secret: String::new(),
            issuer: "authgate".into(),
            audience: "authgate".into(),
            access_ttl: "1h".into(),
            refresh_ttl: "30d".into(),
            leeway: "5s".into(),
            rotate_refresh: true,
            reuse_grace: "0s".into(),
            algorithm: "HS256".into(),
            key_encryption_secret: String::new(),
            key_rotation: String::new(),
            key_publish_delay: "10m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityFile {
    pub user_id_header: String,
    pub username_header: String,
    pub roles_header: String,
}

impl Default for IdentityFile {
    fn default() -> Self {
        Self {
            user_id_header: "X-User-Id".into(),
            username_header: "X-User-Name".into(),
            roles_header: "X-User-Roles".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub max_body_bytes: usize,
    pub hash_threads: usize,
    pub hash_queue: usize,
    pub hash_nice: i32,
    pub hash_wait: String,
}

impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            hash_threads: 0,
            hash_queue: 64,
            hash_nice: 10,
            hash_wait: "2s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsFile {
    pub register: String,
    pub login: String,
    pub refresh: String,
    pub login_failures: String,
    pub authenticated: String,
    pub public: String,
    pub account: String,
}

impl Default for RateLimitsFile {
    fn default() -> Self {
        Self {
            register: "10/5m".into(),
            login: "20/5m".into(),
            refresh: "60/5m".into(),
            login_failures: "5/15m".into(),
            authenticated: "6000/1m".into(),
            public: "3000/1m".into(),
            account: "60/5m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsFile {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub max_age: String,
    pub allow_credentials: bool,
}

impl Default for CorsFile {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: ["Authorization", "Content-Type"].map(String::from).to_vec(),
            max_age: "10m".into(),
            allow_credentials: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthFile {
    pub path: String,
}

impl Default for ForwardAuthFile {
    fn default() -> Self {
        Self {
            path: "/auth/verify".into(),
        }
    }
}

/// `[account]`: the self-service endpoints, each path empty to turn it off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountFile {
    pub me_path: String,
    pub password_path: String,
}

impl Default for AccountFile {
    fn default() -> Self {
        Self {
            me_path: "/me".into(),
            password_path: "/password".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    pub format: String,
    pub level: String,
    pub access: String,
}

impl Default for LogFile {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
            access: "stderr".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub name: String,
    pub servers: Vec<String>,
    #[serde(default = "default_health_interval")]
    pub health_check_interval: String,
    /// HTTPS to the servers.
    #[serde(default)]
    pub tls: bool,
    /// The name sent as SNI and checked in the certificate (needed with `tls`).
    pub sni: Option<String>,
    /// PEM roots trusted instead of the system's.
    pub ca_file: Option<String>,
    /// Verify the upstream's certificate (default true).
    pub verify: Option<bool>,
    /// The servers speak HTTP/2: over TLS by ALPN, otherwise prior-knowledge h2c.
    #[serde(default)]
    pub http2: bool,
}

fn default_health_interval() -> String {
    "5s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub prefix: String,
    pub upstream: String,
    #[serde(default = "default_auth")]
    pub auth: String,
    pub rate_limit: Option<String>,
    /// Any one of these roles lets a request through (auth = "required" only).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Overrides `[server] upstream_read_timeout` for this route (quiet streams).
    pub upstream_read_timeout: Option<String>,
}

fn default_auth() -> String {
    "required".into()
}
