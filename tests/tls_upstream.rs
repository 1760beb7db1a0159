//! HTTPS to upstreams (`[[upstreams]] tls = true`): the gateway verifies the upstream's
//! certificate against `sni` and the `ca_file` roots, sends `sni` as SNI, forwards the
//! verified identity over the encrypted link, and refuses (502, nothing sent) an upstream
//! whose certificate is not trusted or not for that name, unless `verify = false`.

mod common;

use std::path::Path;

use common::tls::{TestCa, TlsUpstream};
use common::{tokens_for, with_token, GatewayBuilder, TestGateway};

/// A gateway whose required `/secure` route goes to the HTTPS upstream `secure`, with
/// `keys` added to that upstream's table.
fn gateway_to(upstream: &TlsUpstream, keys: &str) -> TestGateway {
    // The builder's own upstream is never routed to here.
    GatewayBuilder::new("127.0.0.1:9".parse().unwrap())
        .route_with("prefix = \"/secure\"\nupstream = \"secure\"\nauth = \"required\"")
        .upstream_with(
            "secure",
            vec![upstream.addr],
            &format!("tls = true\n{keys}"),
        )
        .start()
}

/// A CA in `dir` and an upstream serving its certificate for `upstream.test`.
fn tls_upstream(dir: &Path) -> (TestCa, TlsUpstream) {
    let ca = TestCa::new(dir);
    let (cert, key) = ca.issue(&["upstream.test"], 7);
    (ca, TlsUpstream::start(&cert, &key))
}

#[test]
fn a_verified_tls_upstream_gets_the_request_and_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, upstream) = tls_upstream(dir.path());
    let gw = gateway_to(
        &upstream,
        &format!(
            "sni = \"upstream.test\"\nca_file = \"{}\"",
            ca.pem_path.display()
        ),
    );
    let (token, _) = tokens_for(&gw, "tls_upstream_user");
    let resp = with_token(gw.addr, "GET", "/secure/data", &token);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["tls"], true);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].server_name.as_deref(), Some("upstream.test"));
    assert!(
        seen[0].head.starts_with("GET /secure/data HTTP/1.1\r\n"),
        "{}",
        seen[0].head
    );
    assert!(
        seen[0]
            .head
            .to_ascii_lowercase()
            .contains("x-user-name: tls_upstream_user\r\n"),
        "{}",
        seen[0].head
    );
}

#[test]
fn an_untrusted_or_misnamed_upstream_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, upstream) = tls_upstream(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = TestCa::new(other_dir.path());
    // Signed by a CA the gateway does not trust.
    let gw = gateway_to(
        &upstream,
        &format!(
            "sni = \"upstream.test\"\nca_file = \"{}\"",
            other_ca.pem_path.display()
        ),
    );
    let (token, _) = tokens_for(&gw, "untrusted_user");
    let resp = with_token(gw.addr, "GET", "/secure/data", &token);
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(upstream.requests().is_empty(), "nothing may be sent to it");

    // Without ca_file the system roots are used, which do not include the test CA.
    let system_roots = gateway_to(&upstream, "sni = \"upstream.test\"");
    let (token, _) = tokens_for(&system_roots, "system_roots_user");
    assert_eq!(
        with_token(system_roots.addr, "GET", "/secure/data", &token).status,
        502
    );
    assert!(upstream.requests().is_empty());

    // verify = false: the same upstream is accepted (and warned about at start).
    let lax = gateway_to(
        &upstream,
        &format!(
            "sni = \"upstream.test\"\nca_file = \"{}\"\nverify = false",
            other_ca.pem_path.display()
        ),
    );
    let (token, _) = tokens_for(&lax, "lax_user");
    assert_eq!(
        with_token(lax.addr, "GET", "/secure/data", &token).status,
        200
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, upstream) = tls_upstream(dir.path());
    let gw = gateway_to(
        &upstream,
        &format!(
            "sni = \"elsewhere.test\"\nca_file = \"{}\"",
            ca.pem_path.display()
        ),
    );
    let (token, _) = tokens_for(&gw, "misnamed_user");
    let resp = with_token(gw.addr, "GET", "/secure/data", &token);
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert!(upstream.requests().is_empty());
}

/// Validates a config with one upstream of `keys`.
fn upstream_error(keys: &str) -> Option<String> {
    let text = format!(
        "[tokens]\nsecret = \"{}\"\n[[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8443\"]\n{keys}\n",
        common::SECRET
    );
    let file = authgate::config::parse(Path::new("t.toml"), &text).unwrap();
    authgate::config::Config::try_from(file)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn upstream_tls_config_errors_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let ca_file = format!("ca_file = \"{}\"", ca.pem_path.display());
    assert_eq!(
        upstream_error(&format!("tls = true\nsni = \"api.test\"\n{ca_file}")),
        None
    );
    assert_eq!(upstream_error("tls = true\nsni = \"api.test\""), None);

    let err = upstream_error("tls = true").unwrap();
    assert!(
        err.contains("`upstreams[0].sni`") && err.contains("IP addresses"),
        "{err}"
    );
    let err = upstream_error("sni = \"api.test\"").unwrap();
    assert!(
        err.contains("`upstreams[0].sni`") && err.contains("tls = true"),
        "{err}"
    );
    let err = upstream_error("verify = false").unwrap();
    assert!(err.contains("`upstreams[0].verify`"), "{err}");
    let err = upstream_error("tls = true\nsni = \"not a name\"").unwrap();
    assert!(err.contains("`upstreams[0].sni`"), "{err}");
    let err = upstream_error("tls = true\nsni = \"api.test\"\nca_file = \"/nonexistent/ca.pem\"")
        .unwrap();
    assert!(
        err.contains("`upstreams[0].ca_file`") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "no certificates here").unwrap();
    let err = upstream_error(&format!(
        "tls = true\nsni = \"api.test\"\nca_file = \"{}\"",
        garbage.display()
    ))
    .unwrap();
    assert!(
        err.contains("`upstreams[0].ca_file`") && err.contains("no PEM certificate"),
        "{err}"
    );
}
