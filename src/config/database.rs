//! `[database]`: which backend holds the accounts and revocations (an SQLite file, or a
//! PostgreSQL server shared by a fleet of gateways) and how the revocation cache follows it.
//! A PostgreSQL URL carries a password, so nothing here prints one: errors and `Debug`
//! show the URL redacted.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::error::ConfigError;
use super::file::DatabaseFile;

/// The validated `[database]` section.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub backend: DatabaseBackend,
    /// How often revocations are re-read from the database (the catch-up behind
    /// PostgreSQL's pushed notifications; the only way SQLite processes learn of them).
    pub sync_interval: Duration,
    /// How long the revocation state may go unconfirmed before required routes fail closed.
    pub max_staleness: Duration,
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// The embedded default: one SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server, for several gateways sharing accounts and revocations.
    Postgres(PostgresConfig),
}

impl DatabaseBackend {
    /// The SQLite file, when that is the backend.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match self {
            DatabaseBackend::Sqlite(path) => Some(path),
            DatabaseBackend::Postgres(_) => None,
        }
    }
}

impl fmt::Display for DatabaseBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Relative paths are resolved against the working directory: say which file.
            DatabaseBackend::Sqlite(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                write!(f, "SQLite file {}", absolute.display())
            }
            DatabaseBackend::Postgres(pg) => write!(f, "PostgreSQL {}", redact_url(&pg.url)),
        }
    }
}

/// Connection settings of the PostgreSQL backend.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`; secret, never printed as is.
    pub url: String,
    /// Most connections a gateway keeps open (one more is used for LISTEN).
    pub pool_size: usize,
    /// How long opening a connection (or waiting for a free one) may take.
    pub connect_timeout: Duration,
    /// How long one database operation may take before it counts as failed.
    pub query_timeout: Duration,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

/// What a database URL names, before the pool settings are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL that parses.
    Postgres(String),
}

/// Accepts SQLAlchemy-style `sqlite:///relative.db`, `sqlite:////abs.db`, a plain path, or
/// `postgres://user:pass@host:5432/db` (also `postgresql://`), with libpq's `sslmode` and
/// `sslrootcert` (see `postgres_tls`).
pub fn parse_database_url(value: &str) -> Result<DatabaseUrl, ConfigError> {
    if let Some(rest) = value.strip_prefix("sqlite:///") {
        if rest.is_empty() {
            return Err(ConfigError::invalid(
                "database.url",
                "the SQLite URL names no file",
            ));
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(rest)));
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        let (plain, tls) = super::postgres_tls::split_tls_options(value)
            .map_err(|reason| ConfigError::invalid("database.url", reason))?;
        if let Some(path) = &tls.root_cert {
            super::postgres_tls::read_root_certs(path)
                .map_err(|reason| ConfigError::invalid("database.url", reason))?;
        }
        // tokio-postgres' own parser decides; its messages name the option, not the value.
        tokio_postgres::Config::from_str(&plain).map_err(|e| {
            ConfigError::invalid(
                "database.url",
                format!("{:?} is not a PostgreSQL URL: {e}", redact_url(value)),
            )
        })?;
        return Ok(DatabaseUrl::Postgres(value.to_string()));
    }
    if value.contains("://") {
        return Err(ConfigError::invalid(
            "database.url",
            format!(
                "unsupported database URL scheme in {:?}; use sqlite:///path.db, a file path or postgres://user:pass@host:5432/db",
                redact_url(value)
            ),
        ));
    }
    if value.is_empty() {
        return Err(ConfigError::invalid("database.url", "must not be empty"));
    }
    Ok(DatabaseUrl::Sqlite(PathBuf::from(value)))
}

/// Keeps a password in a URL out of messages: `postgres://***@host:5432/db`.
pub fn redact_url(value: &str) -> String {
    match (value.find("://"), value.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &value[..s], &value[at..]),
        _ => value.to_string(),
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value)
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a duration: {e}")))
}

fn positive(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, value)?;
    if d.is_zero() {
        return Err(ConfigError::invalid(key, "must be above zero"));
    }
    Ok(d)
}

impl TryFrom<DatabaseFile> for DatabaseConfig {
    type Error = ConfigError;

    fn try_from(file: DatabaseFile) -> Result<Self, ConfigError> {
        let backend = match parse_database_url(&file.url)? {
            DatabaseUrl::Sqlite(path) => DatabaseBackend::Sqlite(path),
            DatabaseUrl::Postgres(url) => {
                if file.pool_size == 0 {
                    return Err(ConfigError::invalid(
                        "database.pool_size",
                        "must be at least 1",
                    ));
                }
                DatabaseBackend::Postgres(PostgresConfig {
                    url,
                    pool_size: file.pool_size,
                    connect_timeout: positive("database.connect_timeout", &file.connect_timeout)?,
                    query_timeout: positive("database.query_timeout", &file.query_timeout)?,
                })
            }
        };
        // Checked for SQLite too, so a typo is caught before anyone switches backends.
        positive("database.connect_timeout", &file.connect_timeout)?;
        positive("database.query_timeout", &file.query_timeout)?;
        Ok(DatabaseConfig {
            backend,
            sync_interval: positive("database.sync_interval", &file.sync_interval)?,
            max_staleness: duration("database.max_staleness", &file.max_staleness)?,
        })
    }
}
