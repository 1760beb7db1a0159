//! authgate: a reverse-proxy authentication gateway on pingora. It serves the auth API
//! (`/register`, `/login`, `/logout`, `/refresh`, and the self-service `/me` and
//! `/password`), checks Bearer tokens (and a route's required roles) on every other route
//! against a revocation list, injects the verified identity as headers and forwards to
//! upstream services.
//!
//! [`build_server`] turns a validated [`config::Config`] into a ready pingora server; the
//! binary and the integration tests share it.
#![deny(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod connections;
pub mod drain;
pub mod gateway;
pub mod key_admin;
pub mod limits;
mod maintenance;
pub mod metrics;
pub mod open_files;
pub mod openapi;
pub mod ops;
pub mod pid_file;
pub mod reload;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod tls;

use std::sync::Arc;

use arc_swap::ArcSwap;

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::auth::login_throttle::LoginThrottle;
use crate::auth::password::PasswordHasher;
use crate::auth::revocation::{now_ms, RevocationCache};
use crate::auth::verified_cache::VerifiedCache;
use crate::auth::TokenError;
use crate::auth::{AuthService, TokenService};
use crate::config::{Config, ServerConfig};
use crate::connections::{
    gateway_listener, gateway_tls_listener, ConnectionLimit, ConnectionSlots,
};
use crate::gateway::access_sink::{AccessLogService, AccessSink};
use crate::gateway::endpoints::FORBIDDEN_REASON;
use crate::gateway::header_deadline::HeaderDeadline;
use crate::gateway::live::{LiveConfig, SharedLiveConfig};
use crate::gateway::upstream_pool::PoolTimer;
use crate::gateway::Gateway;
use crate::limits::RateLimits;
use crate::metrics::{KnownLabels, Metrics};
use crate::store::StoreError;

/// Access tokens kept verified at most (about 30 MB at 400-byte tokens).
const VERIFIED_TOKEN_CACHE_CAPACITY: usize = 65_536;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database ({database}): {source}")]
    Database {
        database: String,
        source: StoreError,
    },
    #[error("cannot read or create the token secret: {0}")]
    Secret(std::io::Error),
    #[error("cannot set up upstream {0}")]
    Upstream(std::io::Error),
    #[error("cannot load revocations: {0}")]
    Revocations(StoreError),
    #[error("cannot load the signing keys: {0}")]
    Keys(crate::auth::keys::KeyError),
    #[error("cannot load the TLS certificates: {0}")]
    Tls(tls::resolver::SetError),
    #[error("cannot set up the TLS listener: {0}")]
    TlsListener(rustls::Error),
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
}

/// Builds the server: opens and migrates the database (SQLite or PostgreSQL, as the config
/// names), loads the revocation list, and wires the proxy, the health checks, the
/// operations listener and the maintenance loop.
pub fn build_server(config: &Config) -> Result<Server, StartError> {
    build_server_from(config, Launch::default()).map(|(server, _)| server)
}

/// What a running server can be asked to do from outside its services (a signal handler).
#[derive(Default)]
pub struct ServerHandles {
    /// Rereads the `[tls]` certificate files now (`None`: no `[tls]`).
    pub tls_reloader: Option<Arc<tls::reload::CertificateReloader>>,
    /// The access log: [`AccessSink::flush`] once the server has stopped writes the lines
    /// of requests that finished during the shutdown.
    pub access_log: AccessSink,
    /// Says when a graceful stop or upgrade has drained every client connection.
    pub drained: Option<drain::Drained>,
}

/// How the process starts.
#[derive(Clone, Default)]
pub struct Launch<'a> {
    /// Reload this file on SIGHUP.
    pub config_path: Option<&'a std::path::Path>,
    /// Changes the running log level when a reload changes `[log] level`.
    pub log_level: Option<telemetry::LiveLogLevel>,
    /// Take the listening sockets from the running process over `[server] upgrade_socket`
    /// (`authgate --upgrade`) instead of binding them.
    pub upgrade: bool,
}

/// [`build_server`], also returning the handles to the running server.
pub fn build_server_with_handles(config: &Config) -> Result<(Server, ServerHandles), StartError> {
    build_server_from(config, Launch::default())
}

/// [`build_server_with_handles`], started as `launch` says.
pub fn build_server_from(
    config: &Config,
    launch: Launch<'_>,
) -> Result<(Server, ServerHandles), StartError> {
    let config_path = launch.config_path;
    let mut handles = ServerHandles::default();
    tls::install_crypto_provider();
    let backend = &config.database.backend;
    let secret =
        secret::resolve(config.tokens.secret.as_deref(), backend).map_err(StartError::Secret)?;
    let loader = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let store = loader
        .block_on(store::open(backend))
        .map_err(|source| StartError::Database {
            database: backend.to_string(),
            source,
        })?;
    let revocations = Arc::new(RevocationCache::new(config.database.max_staleness));
    let loaded = loader
        .block_on(revocations.sync(store.as_ref(), now_ms() / 1000))
        .map_err(StartError::Revocations)?;
    let keys = loader
        .block_on(auth::keys::startup::load_key_set(
            store.as_ref(),
            &config.tokens,
            now_ms() / 1000,
        ))
        .map_err(StartError::Keys)?;
    tracing::info!(revocations = loaded, database = %backend, "revocation list loaded");

    let metrics = Arc::new(Metrics::new());
    metrics.initialise_known_series(&KnownLabels {
        auth_failure_reasons: &[&TokenError::REASONS[..], &[FORBIDDEN_REASON]].concat(),
        login_results: &AuthService::LOGIN_RESULTS,
        registration_results: &AuthService::REGISTRATION_RESULTS,
        rate_limit_scopes: &RateLimits::SCOPES,
        upstreams: config.upstreams.iter().map(|u| u.name.as_str()).collect(),
    });

    let auth = Arc::new(AuthService {
        store: store.clone(),
        tokens: TokenService::with_keys(&config.tokens, &secret, keys),
        revocations: revocations.clone(),
        hasher: PasswordHasher::new(&config.limits, metrics.clone()),
        login_throttle: LoginThrottle::new(config.rate_limits.login_failures),
        verified: VerifiedCache::new(VERIFIED_TOKEN_CACHE_CAPACITY),
        metrics: metrics.clone(),
    });
    let (live, health_checks) =
        LiveConfig::first(config, &metrics).map_err(StartError::Upstream)?;
    let live: SharedLiveConfig = Arc::new(ArcSwap::from_pointee(live));

    let options = Opt {
        upgrade: launch.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(options, server_conf(&config.server));
    // With --upgrade: waits (about 5 s, pingora's) for the running process's listening
    // sockets, which it sends on SIGQUIT; exits when none come.
    server.bootstrap();

    let access_sink = AccessSink::start(&config.log.access).map_err(StartError::AccessLog)?;
    handles.access_log = access_sink.clone();
    if access_sink.enabled() {
        server.add_service(background_service(
            "access log",
            AccessLogService(access_sink.clone()),
        ));
    }
    let gateway = || {
        Gateway::new(
            config,
            auth.clone(),
            live.clone(),
            metrics.clone(),
            access_sink.clone(),
        )
    };
    let mut services: Vec<Box<dyn pingora::services::ServiceWithDependents>> = Vec::new();
    // Each listener's gateway keeps its own idle upstream connections, closed on a timer.
    // Both listeners share one count of open connections ([server] max_connections).
    let slots = ConnectionSlots::new(config.server.max_connections, &metrics);
    let (drain_watch, drained) = drain::Drained::watch(slots.clone(), config.server.drain_timeout);
    handles.drained = Some(drained);
    services.push(Box::new(background_service("drain", drain_watch)));
    let mut gateway_service =
        |name: &str,
         gateway: Gateway,
         preface_deadline: Option<std::time::Duration>,
         tls: Option<Arc<tls::handshake::TlsHandshake>>| {
            services.push(Box::new(background_service(
                &format!("{name} upstream pool timer"),
                PoolTimer(gateway.upstream_pool.clone()),
            )));
            let mut limit = ConnectionLimit::new(gateway, slots.clone());
            if let Some(deadline) = preface_deadline {
                limit = limit.with_preface_deadline(deadline);
            }
            if let Some(handshake) = tls {
                limit = limit.with_tls(handshake, config.server.client_timeout);
            }
            Service::new(name.to_string(), limit)
        };
    let mut listeners: Vec<Box<dyn pingora::services::ServiceWithDependents>> = Vec::new();
    if let Some(tls_config) = &config.tls {
        let set = tls::resolver::CertificateSet::load(tls_config).map_err(StartError::Tls)?;
        let resolver = Arc::new(tls::resolver::CertificateResolver::new(set));
        let reloader = Arc::new(tls::reload::CertificateReloader::new(
            tls_config.clone(),
            resolver.clone(),
            metrics.clone(),
        ));
        let hsts = tls_config
            .hsts
            .as_deref()
            .and_then(tls::hsts::StrictTransportSecurity::new);
        // pingora accepts plain TCP; the wrapper does the handshake with our rustls config.
        let server_config =
            tls::listener::server_config(resolver).map_err(StartError::TlsListener)?;
        let handshake = Arc::new(tls::handshake::TlsHandshake::new(server_config));
        let mut https = gateway_service(
            "authgate https",
            gateway().with_hsts(hsts),
            None,
            Some(handshake),
        );
        https.add_listener(gateway_tls_listener(
            tls_config.listen,
            tls_config.read_buffer_size,
        ));
        listeners.push(Box::new(https));
        handles.tls_reloader = Some(reloader.clone());
        listeners.push(Box::new(background_service(
            "tls certificate watch",
            tls::reload::CertificateWatch(reloader.clone()),
        )));
    }
    if let Some(listen) = config.server.listen {
        match &config.tls {
            Some(t) if t.redirect_http => {
                let mut redirect = Service::new(
                    "authgate https redirect".to_string(),
                    HeaderDeadline::new(
                        pingora::apps::http_app::HttpServer::new_app(
                            tls::redirect::HttpsRedirect::new(t.listen.port()),
                        ),
                        config.server.client_timeout,
                        metrics.header_timeouts_total.clone(),
                    ),
                );
                redirect.add_tcp(&listen.to_string());
                listeners.push(Box::new(redirect));
            }
            _ => {
                // pingora peeks for the h2c preface with no deadline: bound it.
                let preface_deadline = config.server.h2c.then_some(config.server.client_timeout);
                let mut proxy = gateway_service("authgate", gateway(), preface_deadline, None);
                proxy.add_listener(gateway_listener(listen, config.server.read_buffer_size));
                listeners.push(Box::new(proxy));
            }
        }
    }
    services.extend(listeners);
    server.add_services(services);
    for check in health_checks {
        server.add_service(check);
    }

    if let Some(addr) = config.server.metrics_listen {
        let ops = ops::OpsService {
            metrics: metrics.clone(),
            store: store.clone(),
            revocations: revocations.clone(),
            live: live.clone(),
        };
        let mut service = Service::new(
            "authgate ops".to_string(),
            pingora::apps::http_app::HttpServer::new_app(ops),
        );
        service.add_tcp(&addr.to_string());
        server.add_service(service);
    }

    if let Some(path) = config_path {
        let _enter = loader.enter();
        let reloader = reload::ConfigReloader::new(
            path.to_path_buf(),
            config.clone(),
            live.clone(),
            metrics.clone(),
        )
        .with_log_level(launch.log_level.clone())
        .with_certificates(handles.tls_reloader.clone());
        server.add_service(background_service("config reload", reloader));
    }
    drop(loader);

    let maintenance = maintenance::Maintenance {
        auth,
        store,
        revocations,
        live,
        metrics,
        sync_interval: config.database.sync_interval,
        key_rotation: maintenance::KeyRotation::from_config(&config.tokens),
    };
    server.add_service(background_service("maintenance", maintenance));
    Ok((server, handles))
}

/// pingora's settings for the gateway's server.
fn server_conf(server: &ServerConfig) -> ServerConf {
    ServerConf {
        threads: server.threads,
        // Default false: one single-threaded runtime per worker thread, so a connection
        // stays on the thread that accepted it, with no cross-thread wake-ups on the proxied
        // path (BENCHMARKS.md: about a fifth less CPU per request than work stealing).
        work_stealing: server.work_stealing,
        // upstream_keepalive_pool_size bounds the gateway's own pool
        // (gateway/upstream_pool.rs), not pingora's.
        // After a stop or upgrade signal pingora sleeps this long before it stops the
        // runtimes (cancelling what still runs); the binary exits sooner, as soon as the
        // drain is over (drain.rs). A second more lets tunnels cut at drain_timeout close.
        grace_period_seconds: Some(server.drain_timeout.as_secs() + 1),
        graceful_shutdown_timeout_seconds: Some(1),
        // pingora-core 0.9 waits 5 s (five tries a second apart) on both sides of the
        // hand-over; its `upgrade_sock_connect_accept_max_retries` is not read there.
        upgrade_sock: server.upgrade_socket.to_string_lossy().into_owned(),
        ..ServerConf::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_settings_reach_pingora() {
        let text = "[server]\nthreads = 3\n\
                    [[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8000\"]\n\
                    [[routes]]\nprefix = \"/\"\nupstream = \"api\"\n";
        let file = config::parse(std::path::Path::new("test.toml"), text).unwrap();
        let config = Config::try_from(file).unwrap();
        let conf = server_conf(&config.server);
        assert_eq!(conf.threads, 3);
        assert!(!conf.work_stealing);
        assert_eq!(conf.upgrade_sock, "/tmp/authgate-5000.upgrade.sock");
        assert_eq!(conf.grace_period_seconds, Some(31));
    }
}
