//! The database behind a test gateway: a temporary SQLite file, or — when
//! `AUTHGATE_TEST_BACKEND=postgres` — a fresh PostgreSQL database created on the server
//! named by `AUTHGATE_TEST_POSTGRES` and dropped when the last gateway using it is gone.
//! Tests that look into the database go through [`TestDatabase`], so they run on both.

use std::path::{Path, PathBuf};

use postgres::NoTls;

/// `postgres://user:pass@127.0.0.1:PORT/postgres`: a server where the tests may create
/// databases. Set by `.ci/run` (`.ci/postgres start DIR` starts one).
pub const POSTGRES_ENV: &str = "AUTHGATE_TEST_POSTGRES";
/// `postgres` runs every gateway of the harness on PostgreSQL instead of SQLite.
pub const BACKEND_ENV: &str = "AUTHGATE_TEST_BACKEND";

/// The server URL, when one is configured.
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())
}

/// The server for a test that needs PostgreSQL whatever the harness runs on. Without one,
/// CI (`CI` set) fails the test with the reason; a developer's run says so and skips it.
pub fn require_postgres(test: &str) -> Option<String> {
    if let Some(server) = postgres_server() {
        return Some(server);
    }
    let why = format!(
        "{test} needs a PostgreSQL server: set {POSTGRES_ENV}=postgres://user:pass@127.0.0.1:PORT/postgres \
         (`.ci/postgres start DIR` starts a throwaway one)"
    );
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("{why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// True when the harness runs gateways on PostgreSQL.
pub fn harness_on_postgres() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|b| b == "postgres")
}

/// `url` with its database name replaced by `name`.
pub fn with_database_name(url: &str, name: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('/') {
        Some(slash) => format!("{}/{name}", &url[..start + slash]),
        None => format!("{url}/{name}"),
    }
}

/// One database for one or more test gateways.
pub enum TestDatabase {
    Sqlite(PathBuf),
    Postgres {
        /// The server's maintenance database, where this one is created and dropped.
        server: String,
        name: String,
    },
}

impl TestDatabase {
    /// What the harness uses by default: SQLite in `dir`, or a fresh PostgreSQL database.
    pub fn fresh(dir: &Path) -> Self {
        if harness_on_postgres() {
            let server = postgres_server().unwrap_or_else(|| {
                panic!("{BACKEND_ENV}=postgres needs {POSTGRES_ENV}=postgres://user:pass@host:port/postgres")
            });
            Self::create_postgres(&server)
        } else {
            Self::Sqlite(dir.join("authgate.db"))
        }
    }

    /// A new, empty database on the PostgreSQL server at `server`.
    pub fn create_postgres(server: &str) -> Self {
        let name = format!("authgate_test_{}", uuid::Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(server, NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        Self::Postgres {
            server: server.to_string(),
            name,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// The `[database] url` of a gateway on this database.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres { server, name } => with_database_name(server, name),
        }
    }

    /// Runs one statement; returns the number of rows it changed. Write it in the SQL both
    /// backends speak (`active = false`, not `active = 0`).
    pub fn execute(&self, sql: &str) -> u64 {
        match self {
            Self::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|c| c.execute(sql, []))
                .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64,
            Self::Postgres { .. } => self
                .pg()
                .execute(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The one integer `sql` selects (cast it to a 64-bit integer on PostgreSQL if needed:
    /// `count(*)` already is one).
    pub fn query_i64(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Self::Postgres { .. } => self
                .pg()
                .query_one(sql, &[])
                .and_then(|r| r.try_get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The one text value `sql` selects.
    pub fn query_string(&self, sql: &str) -> String {
        match self {
            Self::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Self::Postgres { .. } => self
                .pg()
                .query_one(sql, &[])
                .and_then(|r| r.try_get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    fn pg(&self) -> postgres::Client {
        let url = self.url();
        postgres::Client::connect(&url, NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres { server, name } = self {
            // FORCE: a gateway that has just stopped may still hold a connection or two.
            let dropped = postgres::Client::connect(server, NoTls).and_then(|mut c| {
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            });
            if let Err(e) = dropped {
                eprintln!("cannot drop test database {name}: {e}");
            }
        }
    }
}
