//! Tells the test suite which PostgreSQL setup it runs with, so a test that cannot run is
//! reported as `ignored` (with its reason) in the summary a developer sees, instead of
//! passing without having run.
//!
//! - `authgate_test_postgres`: `AUTHGATE_TEST_POSTGRES` names a server, so the
//!   PostgreSQL-only tests (fleet, fault, migrate) run.
//! - `authgate_test_on_postgres`: `AUTHGATE_TEST_BACKEND=postgres`, so the tests about the
//!   SQLite file itself do not apply.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(authgate_test_postgres)");
    println!("cargo::rustc-check-cfg=cfg(authgate_test_on_postgres)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=AUTHGATE_TEST_POSTGRES");
    println!("cargo::rerun-if-env-changed=AUTHGATE_TEST_BACKEND");
    if std::env::var("AUTHGATE_TEST_POSTGRES").is_ok_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=authgate_test_postgres");
    }
    if std::env::var("AUTHGATE_TEST_BACKEND").is_ok_and(|v| v == "postgres") {
        println!("cargo::rustc-cfg=authgate_test_on_postgres");
    }
}
