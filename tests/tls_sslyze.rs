//! sslyze (PyPI), a TLS scanner nobody here wrote, checks the HTTPS listener against
//! Mozilla's "intermediate" configuration: protocol versions, cipher suites, key exchange
//! groups, the certificate (trusted through the test CA, valid at most 366 days, matching
//! the host name).
//!
//! Needs the virtualenv `.ci/run` creates (`.ci/venv-sslyze`, from
//! `.ci/requirements-sslyze.txt`; sslyze pins an older `cryptography` than PyJWT, so it has
//! a virtualenv of its own), or `AUTHGATE_TEST_SSLYZE` naming an `sslyze` executable.
//! Without one the test fails and says how to make it: it never passes without a scan.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::gateway::{free_addr, wait_for_port};
use common::tls::TestCa;
use common::{GatewayBuilder, Upstream};

fn sslyze() -> PathBuf {
    let path = std::env::var_os("AUTHGATE_TEST_SSLYZE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/venv-sslyze/bin/sslyze")
        });
    assert!(
        path.exists(),
        "{} is missing: create it with `python3 -m venv .ci/venv-sslyze && \
         .ci/venv-sslyze/bin/pip install -r .ci/requirements-sslyze.txt` (as .ci/run does), \
         or set AUTHGATE_TEST_SSLYZE",
        path.display()
    );
    path
}

#[test]
fn sslyze_finds_the_listener_compliant_with_mozilla_intermediate() {
    let sslyze = sslyze();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let files = ca.issue_files(dir.path(), "server", &["localhost"], 1);
    let tls_addr = free_addr();
    let upstream = Upstream::start();
    let _gw = GatewayBuilder::new(upstream.addr)
        .route("/api", "required")
        .section("tls", &format!("listen = \"{tls_addr}\"\n{}", files.toml()))
        .start();
    wait_for_port(tls_addr);

    let out = Command::new(sslyze)
        .arg("--mozilla_config=intermediate")
        .arg("--certinfo_ca_file")
        .arg(&ca.pem_path)
        // The host name for SNI and the certificate check, then the address to connect to.
        .arg(format!(
            "localhost:{}{{{}}}",
            tls_addr.port(),
            tls_addr.ip()
        ))
        .output()
        .expect("sslyze runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sslyze found problems:\n{text}");
    let port = tls_addr.port();
    assert!(
        text.contains(&format!("localhost:{port}: OK - Compliant.")),
        "{text}"
    );
    // The scan really reached the server: the certificate was seen and trusted through the
    // test CA, and TLS 1.1 was tried and refused.
    assert!(
        text.contains("Supplied CA file CA Store (N/A):   OK - Certificate is trusted"),
        "{text}"
    );
    assert!(
        text.contains("Common Name:                       localhost"),
        "{text}"
    );
}
