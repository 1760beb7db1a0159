//! TLS to PostgreSQL: a throwaway server started by `.ci/postgres` with a certificate made
//! here; a gateway with `sslmode=verify-full&sslrootcert=<the test CA>` works (register and
//! log in) and every one of its connections is encrypted, as the server itself reports in
//! `pg_stat_ssl`; a CA that did not sign the server's certificate stops the gateway from
//! starting.
//!
//! Needs Debian's PostgreSQL (`/usr/lib/postgresql/*/bin`), which `.ci/postgres` runs: like
//! the other PostgreSQL tests it runs when `AUTHGATE_TEST_POSTGRES` is set (a machine that
//! runs that server) and is reported as ignored otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::db::with_database_name;
use common::tls::TestCa;
use common::{post_json, GatewayBuilder, TestDatabase, Upstream};
use serde_json::json;

/// A PostgreSQL server with TLS, stopped on drop.
struct TlsPostgres {
    dir: tempfile::TempDir,
    url: String,
}

impl TlsPostgres {
    fn start(cert: &Path, key: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .arg(cert)
            .arg(key)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            ".ci/postgres start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Self { dir, url }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres")
}

#[test]
#[cfg_attr(
    not(authgate_test_postgres),
    ignore = "needs PostgreSQL: set AUTHGATE_TEST_POSTGRES (`bash .ci/postgres start DIR` prints one)"
)]
fn a_gateway_reaches_postgres_over_verified_tls_only() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs.path());
    let server = ca.issue_files(certs.path(), "postgres", &["localhost", "127.0.0.1"], 9);
    let pg = TlsPostgres::start(&server.certificate, &server.private_key);

    let db = Arc::new(TestDatabase::create_postgres(&pg.url));
    let TestDatabase::Postgres { name, .. } = db.as_ref() else {
        unreachable!()
    };
    let tls_url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        with_database_name(&pg.url, name),
        ca.pem_path.display()
    );
    let upstream = Upstream::start();
    let gw = GatewayBuilder::new(upstream.addr)
        .route("/api", "required")
        .database(db.clone())
        .database_url(&tls_url)
        .start();

    let body =
        json!({"username": "pg_tls", "email": "pg_tls@example.com", "password": "Password123"});
    assert_eq!(post_json(gw.addr, "/register", &body).status, 201);
    let login = post_json(
        gw.addr,
        "/login",
        &json!({"username": "pg_tls", "password": "Password123"}),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    assert_eq!(
        db.query_i64("SELECT count(*) FROM users WHERE username = 'pg_tls'"),
        1
    );

    // The server's own account of the gateway's connections (the pool and LISTEN).
    let sessions = |ssl: bool| {
        db.query_i64(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'authgate' AND s.ssl = {ssl}"
        ))
    };
    assert!(sessions(true) >= 1, "no encrypted gateway connection");
    assert_eq!(sessions(false), 0, "a gateway connection is in clear");
    drop(gw);

    // A CA that did not sign the server's certificate: the gateway refuses to start.
    let other = tempfile::tempdir().unwrap();
    let other_ca = TestCa::new(other.path());
    let text = format!(
        "[tokens]\nsecret = \"{}\"\n[database]\nurl = \"{}?sslmode=verify-ca&sslrootcert={}\"\n\
         [[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:9\"]\n",
        common::SECRET,
        with_database_name(&pg.url, name),
        other_ca.pem_path.display()
    );
    let config = authgate::config::Config::try_from(
        authgate::config::parse(Path::new("t.toml"), &text).unwrap(),
    )
    .unwrap();
    let err = authgate::build_server(&config)
        .err()
        .expect("an untrusted database certificate must stop the start")
        .to_string();
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(
        !err.contains(":authgate@"),
        "the password is never shown: {err}"
    );
}

#[test]
fn tls_options_in_the_database_url_are_checked_at_start() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs.path());
    let check = |url: &str| {
        let text = format!(
            "[tokens]\nsecret = \"{}\"\n[database]\nurl = \"{url}\"\n\
             [[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:9\"]\n",
            common::SECRET
        );
        authgate::config::Config::try_from(
            authgate::config::parse(Path::new("t.toml"), &text).unwrap(),
        )
        .err()
        .map(|e| e.to_string())
    };
    let base = "postgres://u:secret@db.example.com:5432/authgate";
    let root = ca.pem_path.display();
    assert_eq!(
        check(&format!("{base}?sslmode=verify-full&sslrootcert={root}")),
        None
    );
    assert_eq!(check(&format!("{base}?sslmode=require")), None);
    for (url, expected) in [
        (format!("{base}?sslmode=verify-full"), "need sslrootcert"),
        (
            format!("{base}?sslmode=verify-ca&sslrootcert=/nonexistent.pem"),
            "/nonexistent.pem",
        ),
        (format!("{base}?sslmode=sometimes"), "sslmode=\"sometimes\""),
        (
            format!("{base}?sslrootcert={root}"),
            "sslrootcert needs sslmode",
        ),
    ] {
        let err = check(&url).unwrap_or_else(|| panic!("{url} accepted"));
        assert!(
            err.contains("`database.url`") && err.contains(expected),
            "{err}"
        );
        assert!(
            !err.contains("secret"),
            "the password is never shown: {err}"
        );
    }
}
