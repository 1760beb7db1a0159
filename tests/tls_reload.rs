//! Certificates replaced on disk while clients keep connecting: the new certificate is
//! served with no failed handshake or request, a broken replacement keeps the running one,
//! and both show in the metrics.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::gateway::{free_addr, wait_for_port};
use common::tls::{get_request, https_exchange, serial, CertFiles, HttpsExchange, TestCa};
use common::{send, tokens_for, GatewayBuilder, TestGateway, Upstream};

struct Fixture {
    gw: TestGateway,
    _upstream: Upstream,
    tls_addr: SocketAddr,
    ca: TestCa,
    files: CertFiles,
    _dir: tempfile::TempDir,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let files = ca.issue_files(dir.path(), "server", &["localhost"], 1);
    let tls_addr = free_addr();
    let upstream = Upstream::start();
    let gw = GatewayBuilder::new(upstream.addr)
        .route("/api", "required")
        .section(
            "tls",
            &format!(
                "listen = \"{tls_addr}\"\n{}watch_interval = \"100ms\"\n",
                files.toml()
            ),
        )
        .start();
    wait_for_port(tls_addr);
    Fixture {
        gw,
        _upstream: upstream,
        tls_addr,
        ca,
        files,
        _dir: dir,
    }
}

impl Fixture {
    fn get(&self, token: Option<&str>) -> Result<HttpsExchange, String> {
        https_exchange(
            self.ca.client_config(&[b"http/1.1"]),
            self.tls_addr,
            "localhost",
            &get_request("localhost", "/api/x", token),
        )
    }

    fn metric(&self, series: &str) -> Option<i64> {
        let text = send(self.gw.ops_addr, "GET", "/metrics", &[], None).text();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .map(|v| v as i64)
    }

    /// Polls until `series` reaches `value`, for at most 10 s.
    fn wait_metric(&self, series: &str, value: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metric(series) != Some(value) {
            assert!(
                Instant::now() < deadline,
                "{series} is {:?}, not {value}, after 10 s",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn not_after(pem: &str) -> i64 {
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.validity().not_after.timestamp()
}

#[test]
fn a_replaced_certificate_is_served_with_no_failed_handshake() {
    let f = start();
    let (token, _) = tokens_for(&f.gw, "reload_alice");
    let first = f.get(Some(&token)).unwrap();
    assert_eq!(first.serial, serial(1));
    assert_eq!(first.response.status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, token) = (stop.clone(), token.clone());
        let (ca, addr) = (f.ca.client_config(&[b"http/1.1"]), f.tls_addr);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let result = https_exchange(
                    ca.clone(),
                    addr,
                    "localhost",
                    &get_request("localhost", "/api/x", Some(&token)),
                )
                .map(|e| (e.serial, e.response.status));
                seen.push(result);
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (cert, key) = f.ca.issue(&["localhost"], 2);
    f.files.replace_with(&cert, &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.get(Some(&token)).map(|e| e.serial) != Ok(serial(2)) {
        assert!(Instant::now() < deadline, "serial 2 not served after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen = client.join().unwrap();

    let failures: Vec<_> = seen.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "failed exchanges: {failures:?}");
    let seen: Vec<_> = seen.into_iter().map(Result::unwrap).collect();
    assert!(seen.iter().all(|(_, status)| *status == 200));
    let switch = seen
        .iter()
        .position(|(s, _)| *s == serial(2))
        .expect("loop saw serial 2");
    assert!(switch > 0, "the loop saw serial 1 first");
    assert!(seen[..switch].iter().all(|(s, _)| *s == serial(1)));
    assert!(
        seen[switch..].iter().all(|(s, _)| *s == serial(2)),
        "no way back to the old one"
    );

    assert!(
        f.metric("authgate_tls_reloads_total{result=\"success\"}")
            .unwrap()
            >= 1
    );
    assert_eq!(
        f.metric("authgate_tls_certificate_expiry_timestamp_seconds{name=\"default\"}"),
        Some(not_after(&cert))
    );
}

#[test]
fn a_broken_replacement_keeps_the_running_certificate() {
    let f = start();
    let failures = "authgate_tls_reloads_total{result=\"failure\"}";
    assert_eq!(f.metric(failures), Some(0));

    // Not PEM at all.
    f.files.replace_with(
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        &std::fs::read_to_string(&f.files.private_key).unwrap(),
    );
    f.wait_metric(failures, 1);
    assert_eq!(f.get(None).unwrap().serial, serial(1));

    // A valid certificate with somebody else's key.
    let (cert, _) = f.ca.issue(&["localhost"], 3);
    let (_, other_key) = f.ca.issue(&["localhost"], 4);
    f.files.replace_with(&cert, &other_key);
    f.wait_metric(failures, 2);
    let still = f.get(None).unwrap();
    assert_eq!(still.serial, serial(1));
    assert_eq!(still.response.status, 401);
    assert_eq!(
        f.metric("authgate_tls_reloads_total{result=\"success\"}"),
        Some(0)
    );

    // A removed key file fails too, and a good pair afterwards is served.
    std::fs::remove_file(&f.files.private_key).unwrap();
    f.wait_metric(failures, 3);
    assert_eq!(f.get(None).unwrap().serial, serial(1));
    let (cert, key) = f.ca.issue(&["localhost"], 5);
    f.files.replace_with(&cert, &key);
    f.wait_metric("authgate_tls_reloads_total{result=\"success\"}", 1);
    assert_eq!(f.get(None).unwrap().serial, serial(5));
}

/// The serial of the certificate `set` serves to `name`.
fn served_serial(
    resolver: &authgate::tls::resolver::CertificateResolver,
    name: Option<&str>,
) -> Vec<u8> {
    let certified = resolver.current().pick(name);
    let (_, cert) = x509_parser::parse_x509_certificate(&certified.cert[0]).unwrap();
    cert.raw_serial().to_vec()
}

#[test]
fn reload_swaps_every_certificate_or_none() {
    use authgate::tls::reload::{CertificateReloader, ReloadOutcome};
    use authgate::tls::resolver::{CertificateResolver, CertificateSet};

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let default = ca.issue_files(dir.path(), "default", &["localhost"], 1);
    let api = ca.issue_files(dir.path(), "api", &["api.example.test"], 2);
    let text = format!(
        "[tls]\nlisten = \"127.0.0.1:5443\"\n{}[[tls.certificates]]\nserver_names = [\"api.example.test\"]\n{}\
         [[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:9\"]\n",
        default.toml(),
        api.toml()
    );
    let config = authgate::config::Config::try_from(
        authgate::config::parse(std::path::Path::new("t.toml"), &text).unwrap(),
    )
    .unwrap();
    let tls = config.tls.unwrap();
    let resolver = Arc::new(CertificateResolver::new(
        CertificateSet::load(&tls).unwrap(),
    ));
    let metrics = Arc::new(authgate::metrics::Metrics::new());
    let reloader = CertificateReloader::new(tls, resolver.clone(), metrics.clone());
    let count = |result: &str| metrics.tls_reloads_total.with_label_values(&[result]).get();
    assert_eq!(reloader.reload().unwrap(), ReloadOutcome::Unchanged);

    // A good new default beside a named certificate whose key does not match: neither is
    // taken, and the error names the broken one.
    let (cert, key) = ca.issue(&["localhost"], 3);
    default.replace_with(&cert, &key);
    let (named_cert, _) = ca.issue(&["api.example.test"], 4);
    let (_, stray_key) = ca.issue(&["api.example.test"], 5);
    api.replace_with(&named_cert, &stray_key);
    let err = reloader.reload().unwrap_err();
    assert_eq!(err.key, "tls.certificates[0].private_key");
    assert_eq!(served_serial(&resolver, Some("localhost")), serial(1));
    assert_eq!(
        served_serial(&resolver, Some("api.example.test")),
        serial(2)
    );
    assert_eq!((count("success"), count("failure")), (0, 1));
    // The same broken files again: reported once.
    assert_eq!(reloader.reload().unwrap(), ReloadOutcome::Unchanged);
    assert_eq!(count("failure"), 1);

    // Fixed: both are taken at once.
    let (named_cert, named_key) = ca.issue(&["api.example.test"], 6);
    api.replace_with(&named_cert, &named_key);
    assert_eq!(reloader.reload().unwrap(), ReloadOutcome::Replaced);
    assert_eq!(served_serial(&resolver, Some("localhost")), serial(3));
    assert_eq!(served_serial(&resolver, None), serial(3));
    assert_eq!(
        served_serial(&resolver, Some("api.example.test")),
        serial(6)
    );
    assert_eq!((count("success"), count("failure")), (1, 1));
    assert_eq!(reloader.reload().unwrap(), ReloadOutcome::Unchanged);
}

#[test]
fn the_built_server_hands_out_its_certificate_reloader() {
    use authgate::tls::reload::ReloadOutcome;

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let files = ca.issue_files(dir.path(), "server", &["localhost"], 1);
    let config = |tls: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"{}\"\n[tokens]\nsecret = \"{}\"\n{tls}\n\
             [[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:9\"]\n",
            dir.path().join("authgate.db").display(),
            common::SECRET
        );
        authgate::config::Config::try_from(
            authgate::config::parse(std::path::Path::new("t.toml"), &text).unwrap(),
        )
        .unwrap()
    };
    let with_tls = config(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\n{}",
        files.toml()
    ));
    let (_server, handles) = authgate::build_server_with_handles(&with_tls).unwrap();
    let reloader = handles.tls_reloader.expect("a [tls] server has a reloader");
    assert_eq!(reloader.reload().unwrap(), ReloadOutcome::Unchanged);
    let (cert, key) = ca.issue(&["localhost"], 2);
    files.replace_with(&cert, &key);
    assert_eq!(reloader.reload().unwrap(), ReloadOutcome::Replaced);

    let (_server, handles) = authgate::build_server_with_handles(&config("")).unwrap();
    assert!(handles.tls_reloader.is_none());
}
