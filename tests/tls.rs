//! The HTTPS listener, seen from outside: curl over HTTP/2 and HTTP/1.1 through a required
//! route with HSTS, openssl's client refused below TLS 1.2 and resuming sessions at 1.2,
//! certificates picked by SNI, the plain listener's 308 to HTTPS, the `[tls]` config
//! errors that name their key, sessions resumed for hundreds of returning clients, and a
//! handshake that never finishes cut off by `client_timeout`.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::gateway::{free_addr, wait_for_port};
use common::metrics::{self, metric};
use common::tls::{get_request, https_exchange, serial, CertFiles, TestCa};
use common::{raw, send, tokens_for, GatewayBuilder, TestGateway, Upstream};

/// A gateway with `/api` required and a `[tls]` listener serving `localhost` (serial 1).
struct TlsGateway {
    gw: TestGateway,
    upstream: Upstream,
    tls_addr: SocketAddr,
    ca: TestCa,
    _dir: tempfile::TempDir,
}

fn start_tls(extra: &str, names: &[(&str, &[&str], u8)]) -> TlsGateway {
    start_tls_with_server(None, extra, names)
}

/// As [`start_tls`], with `server` as the body of `[server]` when given.
fn start_tls_with_server(
    server: Option<&str>,
    extra: &str,
    names: &[(&str, &[&str], u8)],
) -> TlsGateway {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let default = ca.issue_files(dir.path(), "default", &["localhost"], 1);
    let mut tls = format!(
        "listen = \"{{tls_addr}}\"\n{}watch_interval = \"100ms\"\n{extra}\n",
        default.toml()
    );
    for (stem, server_names, n) in names {
        let files = ca.issue_files(dir.path(), stem, server_names, *n);
        let list: Vec<String> = server_names.iter().map(|s| format!("\"{s}\"")).collect();
        tls.push_str(&format!(
            "[[tls.certificates]]\nserver_names = [{}]\n{}",
            list.join(", "),
            files.toml()
        ));
    }
    let tls_addr = free_addr();
    let upstream = Upstream::start();
    let mut builder = GatewayBuilder::new(upstream.addr)
        .route("/api", "required")
        .section("tls", &tls.replace("{tls_addr}", &tls_addr.to_string()));
    if let Some(server) = server {
        builder = builder.section("server", server);
    }
    let gw = builder.start();
    wait_for_port(tls_addr);
    TlsGateway {
        gw,
        upstream,
        tls_addr,
        ca,
        _dir: dir,
    }
}

/// curl against `https://localhost:<port>/<path>`, trusting only the test CA; returns the
/// response header block and body as curl printed them.
fn curl(t: &TlsGateway, version: &str, path: &str, token: Option<&str>) -> String {
    let port = t.tls_addr.port();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", version, "--cacert"])
        .arg(&t.ca.pem_path)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}{path}"));
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.output().expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn curl_gets_a_required_route_over_http2_and_http1_with_hsts() {
    let t = start_tls("", &[]);
    let (token, _) = tokens_for(&t.gw, "tls_alice");

    let h2 = curl(&t, "--http2", "/api/hello", Some(&token));
    assert!(h2.starts_with("HTTP/2 200"), "{h2}");
    assert!(
        h2.contains("strict-transport-security: max-age=63072000\r\n"),
        "{h2}"
    );
    assert!(h2.contains("x-content-type-options: nosniff"), "{h2}");
    let seen = t.upstream.last();
    assert_eq!(seen.target, "/api/hello");
    assert_eq!(seen.header_values("X-User-Id").len(), 1);
    assert_eq!(seen.header_values("X-User-Name"), vec!["tls_alice"]);

    let h1 = curl(&t, "--http1.1", "/api/again", Some(&token));
    assert!(h1.starts_with("HTTP/1.1 200"), "{h1}");
    assert!(h1
        .to_ascii_lowercase()
        .contains("strict-transport-security: max-age=63072000\r\n"));
    assert_eq!(t.upstream.last().target, "/api/again");

    // The gateway's own answers carry it too, and no token reaches nothing upstream.
    let before = t.upstream.count();
    let refused = curl(&t, "--http2", "/api/hello", None);
    assert!(refused.starts_with("HTTP/2 401"), "{refused}");
    assert!(refused.contains("strict-transport-security: max-age=63072000"));
    assert!(refused.contains("content-type: application/json"));
    assert_eq!(t.upstream.count(), before);

    // The plain listener is not HTTPS: no HSTS there.
    let plain = send(
        t.gw.addr,
        "GET",
        "/api/hello",
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    );
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("strict-transport-security"), None);
}

/// `[tls] read_buffer_size = 0`: no L4 read buffer under rustls; a required route is still
/// served over HTTP/2 and HTTP/1.1 (a 10 KB header included), and the key is validated.
#[test]
fn the_https_listener_serves_without_a_read_buffer() {
    let t = start_tls("read_buffer_size = 0", &[]);
    let (token, _) = tokens_for(&t.gw, "tls_nobuf");
    let h2 = curl(&t, "--http2", "/api/nobuf", Some(&token));
    assert!(h2.starts_with("HTTP/2 200"), "{h2}");
    assert_eq!(t.upstream.last().target, "/api/nobuf");

    let port = t.tls_addr.port();
    let big = "v".repeat(10_000);
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http1.1", "--cacert"])
        .arg(&t.ca.pem_path)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("X-Big: {big}")])
        .arg(format!("https://localhost:{port}/api/big"))
        .output()
        .expect("curl runs");
    let h1 = String::from_utf8_lossy(&out.stdout);
    assert!(h1.starts_with("HTTP/1.1 200"), "{h1}");
    let seen = t.upstream.last();
    assert_eq!(seen.target, "/api/big");
    assert_eq!(seen.header_values("X-Big"), vec![big.as_str()]);

    let dir = tempfile::tempdir().unwrap();
    let files = TestCa::new(dir.path()).issue_files(dir.path(), "k", &["localhost"], 1);
    for bad in [1, 1023, 4 * 1024 * 1024] {
        let table = format!("{}read_buffer_size = {bad}\n", tls_table(&files));
        let err = config_error("", &table).expect("refused");
        assert!(err.contains("`tls.read_buffer_size`"), "{bad}: {err}");
    }
    let table = format!("{}read_buffer_size = 16384\n", tls_table(&files));
    assert_eq!(config_error("", &table), None);
}

#[test]
fn identity_headers_cannot_be_spoofed_over_http2() {
    let t = start_tls("", &[]);
    let body = common::register(&t.gw, "h2_bob");
    let id = body["user"]["id"].as_i64().unwrap().to_string();
    let token = body["access_token"].as_str().unwrap();
    let port = t.tls_addr.port();
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http2", "--cacert"])
        .arg(&t.ca.pem_path)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "-H",
            "X-User-Id: 999",
            "-H",
            "x-user-name: admin",
            "-H",
            "X-User-Roles: admin",
        ])
        .arg(format!("https://localhost:{port}/api/me"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    let seen = t.upstream.last();
    assert_eq!(seen.header_values("X-User-Id"), vec![id.as_str()]);
    assert_eq!(seen.header_values("X-User-Name"), vec!["h2_bob"]);
    assert!(seen
        .header_values("X-User-Roles")
        .iter()
        .all(|r| !r.contains("admin")));
}

#[test]
fn hsts_empty_turns_it_off() {
    let t = start_tls("hsts = \"\"", &[]);
    let out = curl(&t, "--http2", "/api/hello", None);
    assert!(out.starts_with("HTTP/2 401"), "{out}");
    assert!(!out.contains("strict-transport-security"), "{out}");
}

/// Runs `openssl s_client` against the listener with `args`; returns (succeeded, output).
fn s_client(t: &TlsGateway, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &t.tls_addr.to_string(),
            "-servername",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(&t.ca.pem_path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tls_below_1_2_is_refused_and_1_2_sessions_resume() {
    let t = start_tls("", &[]);
    // SECLEVEL=0 so that the client itself offers TLS 1.1 and 1.0: the refusal is the server's.
    for old in ["-tls1_1", "-tls1"] {
        let (ok, out) = s_client(&t, &[old, "-cipher", "DEFAULT@SECLEVEL=0"]);
        assert!(!ok, "{old} was accepted:\n{out}");
        // No session; rustls answers with a handshake_failure (40) or protocol_version (70) alert.
        assert!(out.contains("Cipher is (NONE)"), "{old}:\n{out}");
        assert!(
            out.contains("SSL alert number 40") || out.contains("SSL alert number 70"),
            "{old}:\n{out}"
        );
    }
    let (ok, out) = s_client(&t, &["-tls1_2"]);
    assert!(ok, "{out}");
    assert!(out.contains("New, TLSv1.2, Cipher is ECDHE-"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let (ok, out) = s_client(&t, &["-tls1_3"]);
    assert!(ok && out.contains("New, TLSv1.3, Cipher is TLS_"), "{out}");

    // Session resumption: openssl reconnects five times with the first session.
    let (ok, out) = s_client(&t, &["-tls1_2", "-reconnect"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("Reused, TLSv1.2").count(), 5, "{out}");
}

#[test]
fn sni_picks_the_named_certificate_and_falls_back_to_the_default() {
    let t = start_tls(
        "",
        &[("api", &["api.example.test", "*.wild.example.test"], 2)],
    );
    let client = t.ca.client_config(&[b"http/1.1"]);
    for (name, expected) in [
        ("api.example.test", serial(2)),
        ("API.Example.Test", serial(2)),
        ("x.wild.example.test", serial(2)),
        ("localhost", serial(1)),
    ] {
        let seen = https_exchange(
            client.clone(),
            t.tls_addr,
            name,
            &get_request(name, "/api/x", None),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(seen.serial, expected, "{name}");
        assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(seen.response.status, 401, "{name}");
    }
}

#[test]
fn redirect_http_answers_308_to_https_and_forwards_nothing() {
    let t = start_tls("redirect_http = true", &[]);
    let resp = raw(
        t.gw.addr,
        b"GET /api/items?page=2 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 308);
    assert_eq!(
        resp.header("location"),
        Some(format!("https://example.com:{}/api/items?page=2", t.tls_addr.port()).as_str())
    );
    assert_eq!(resp.header("x-frame-options"), Some("SAMEORIGIN"));
    let no_host = raw(t.gw.addr, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(no_host.status, 400);
    assert_eq!(no_host.msg(), "Missing or invalid Host header");
    assert_eq!(t.upstream.count(), 0);

    // The HTTPS listener serves the routes.
    let client = t.ca.client_config(&[b"http/1.1"]);
    let seen = https_exchange(
        client,
        t.tls_addr,
        "localhost",
        &get_request("localhost", "/api/x", None),
    )
    .unwrap();
    assert_eq!(seen.response.status, 401);
}

/// Validates a config whose `[tls]` table is `tls` (and `[server]` is `server`).
fn config_error(server: &str, tls: &str) -> Option<String> {
    let text = format!(
        "[server]\n{server}\n[tokens]\nsecret = \"{}\"\n{tls}\n\
         [[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:9\"]\n",
        common::SECRET
    );
    let file = authgate::config::parse(Path::new("t.toml"), &text).unwrap();
    authgate::config::Config::try_from(file)
        .err()
        .map(|e| e.to_string())
}

fn tls_table(files: &CertFiles) -> String {
    format!("[tls]\nlisten = \"127.0.0.1:5443\"\n{}", files.toml())
}

#[test]
fn bad_certificate_files_are_config_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let good = ca.issue_files(dir.path(), "good", &["localhost"], 1);
    let other = ca.issue_files(dir.path(), "other", &["localhost"], 2);
    assert_eq!(config_error("", &tls_table(&good)), None);

    let missing = CertFiles {
        certificate: dir.path().join("absent.crt"),
        private_key: good.private_key.clone(),
    };
    let err = config_error("", &tls_table(&missing)).unwrap();
    assert!(
        err.contains("`tls.certificate`") && err.contains("absent.crt"),
        "{err}"
    );

    let mismatched = CertFiles {
        certificate: good.certificate.clone(),
        private_key: other.private_key.clone(),
    };
    let err = config_error("", &tls_table(&mismatched)).unwrap();
    assert!(
        err.contains("`tls.private_key`") && err.contains("is not the key"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let err = config_error(
        "",
        &tls_table(&CertFiles {
            certificate: garbage,
            private_key: good.private_key.clone(),
        }),
    )
    .unwrap();
    assert!(
        err.contains("`tls.certificate`") && err.contains("no PEM certificate"),
        "{err}"
    );

    let named = format!(
        "{}[[tls.certificates]]\nserver_names = [\"api.example.test\"]\n{}",
        tls_table(&good),
        mismatched.toml()
    );
    let err = config_error("", &named).unwrap();
    assert!(err.contains("`tls.certificates[0].private_key`"), "{err}");

    // Two listeners on one address.
    let err = config_error("listen = \"127.0.0.1:5443\"", &tls_table(&good)).unwrap();
    assert!(err.contains("`tls.listen`"), "{err}");

    // The plain listener may be off only when there is an HTTPS one.
    let err = config_error("listen = \"off\"", "").unwrap();
    assert!(err.contains("`server.listen`"), "{err}");
    assert_eq!(config_error("listen = \"off\"", &tls_table(&good)), None);
    let err = config_error(
        "listen = \"off\"",
        &format!("{}redirect_http = true\n", tls_table(&good)),
    )
    .unwrap();
    assert!(err.contains("`tls.redirect_http`"), "{err}");
}

#[test]
fn the_documented_tls_example_is_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let default = ca.issue_files(dir.path(), "default", &["localhost"], 1);
    let api = ca.issue_files(dir.path(), "api", &["api.example.com"], 2);
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/authgate.toml"))
            .unwrap();
    // The commented-out [tls] example, uncommented, with the test's certificate files.
    let start = shipped
        .find("# [tls]\n")
        .expect("config/authgate.toml documents [tls]");
    let end = start + shipped[start..].find("\n[database]").unwrap();
    let example: String = shipped[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "/etc/authgate/fullchain.pem",
            &default.certificate.display().to_string(),
        )
        .replace(
            "/etc/authgate/privkey.pem",
            &default.private_key.display().to_string(),
        )
        .replace(
            "/etc/authgate/api-fullchain.pem",
            &api.certificate.display().to_string(),
        )
        .replace(
            "/etc/authgate/api-privkey.pem",
            &api.private_key.display().to_string(),
        );
    assert!(example.contains("[[tls.certificates]]"), "{example}");
    assert_eq!(config_error("", &example), None, "{example}");
}

#[test]
fn with_the_plain_listener_off_the_gateway_serves_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let files = ca.issue_files(dir.path(), "default", &["localhost"], 1);
    let tls_addr = free_addr();
    let upstream = Upstream::start();
    let gw = GatewayBuilder::new(upstream.addr)
        .route("/api", "required")
        .section("tls", &format!("listen = \"{tls_addr}\"\n{}", files.toml()))
        .only_tls(tls_addr)
        .start();
    assert!(std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .contains("listen = \"off\""));

    let client = ca.client_config(&[b"http/1.1"]);
    let register = "{\"username\":\"tls_only\",\"email\":\"tls_only@example.com\",\"password\":\"Password123\"}";
    let request = format!(
        "POST /register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{register}",
        register.len()
    );
    let created = https_exchange(client.clone(), tls_addr, "localhost", &request).unwrap();
    assert_eq!(created.response.status, 201);
    let token = created.response.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = https_exchange(
        client,
        tls_addr,
        "localhost",
        &get_request("localhost", "/api/only", Some(&token)),
    )
    .unwrap();
    assert_eq!(seen.response.status, 200);
    assert_eq!(
        upstream.last().header_values("X-User-Name"),
        vec!["tls_only"]
    );
    // The operations listener is there as usual.
    assert_eq!(send(gw.ops_addr, "GET", "/healthz", &[], None).status, 200);
}

/// One HTTPS request (answered 401: `/api` needs a token) on a new connection made with
/// `client`; whether the handshake resumed an earlier session.
fn resumed(client: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> bool {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(get_request("localhost", "/api/x", None).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => panic!("read: {e}"),
    }
    assert!(
        raw.starts_with(b"HTTP/1.1 401 "),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

/// 600 distinct clients each connect once, then each reconnects: at least 99% of the
/// reconnections resume (pingora's own listener config resumed none of 500, its session
/// cache holding 256 sessions and no tickets), at TLS 1.3 and at TLS 1.2.
#[test]
fn six_hundred_returning_clients_resume_at_tls_1_2_and_1_3() {
    const CLIENTS: usize = 600;
    let t = start_tls("", &[]);
    for (label, version) in [
        ("TLS 1.3", &rustls::version::TLS13),
        ("TLS 1.2", &rustls::version::TLS12),
    ] {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| t.ca.resuming_client_config(version))
            .collect();
        for client in &clients {
            assert!(
                !resumed(client, t.tls_addr),
                "{label}: a first visit resumed"
            );
        }
        let resumed_count = clients
            .iter()
            .filter(|client| resumed(client, t.tls_addr))
            .count();
        assert!(
            resumed_count * 100 >= CLIENTS * 99,
            "{label}: {resumed_count} of {CLIENTS} returning clients resumed"
        );
    }
    // openssl's client at TLS 1.2 too (session ids or tickets, as it offers).
    let (ok, out) = s_client(&t, &["-tls1_2", "-reconnect"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("Reused, TLSv1.2").count(), 5, "{out}");
}

/// Waits (at most `limit`) for the gateway to close `stream`.
fn wait_closed(stream: &mut TcpStream, limit: Duration) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the connection is still open: {other:?}"),
    }
}

/// A TCP connection to the HTTPS listener that sends nothing, and one that sends only the
/// start of a ClientHello, are closed once `client_timeout` (1 s) has passed, not after
/// pingora's own 60 s handshake timeout; a full client is still served afterwards.
#[test]
fn a_handshake_that_never_finishes_is_closed_after_client_timeout() {
    let t = start_tls_with_server(
        Some("client_timeout = \"1s\"\nkeepalive_timeout = \"30s\""),
        "",
        &[],
    );
    let start = Instant::now();
    let mut silent = TcpStream::connect(t.tls_addr).unwrap();
    let mut partial = TcpStream::connect(t.tls_addr).unwrap();
    // A handshake record announcing 512 bytes, then the first 4 of a ClientHello.
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
        .unwrap();
    for (name, stream) in [("silent", &mut silent), ("partial", &mut partial)] {
        wait_closed(stream, Duration::from_secs(10));
        let after = start.elapsed();
        assert!(
            after >= Duration::from_millis(500) && after < Duration::from_secs(4),
            "{name} connection closed after {after:?}, client_timeout is 1 s"
        );
    }
    let exchange = https_exchange(
        t.ca.client_config(&[b"http/1.1"]),
        t.tls_addr,
        "localhost",
        &get_request("localhost", "/api/x", None),
    )
    .unwrap();
    assert_eq!(exchange.response.status, 401);
    assert_eq!(t.upstream.count(), 0);
}

/// Polls the metrics (at most 30 s: the 600-client resumption test may hold the CPU) until
/// `line` is among them.
fn wait_for_metric(t: &TlsGateway, line: &str) {
    metrics::wait_for_metric(t.gw.ops_addr, line, Duration::from_secs(30));
}

/// The handshake runs after the connection has its slot: with `max_connections = 1` taken
/// by a connection still in its handshake, an HTTPS client is refused with the same JSON
/// `503` (over TLS) as a plain one, and is served once the slot is free.
#[test]
fn past_max_connections_an_https_client_gets_a_503_over_tls() {
    let t = start_tls_with_server(
        Some("max_connections = 1\nclient_timeout = \"10s\""),
        "",
        &[],
    );
    // The harness's readiness probes were connections too: wait until they are gone. The
    // probe of the HTTPS port may itself have been refused while the plain listener's
    // probe still held the one slot, so the refusals are counted from here.
    wait_for_metric(&t, "authgate_open_connections 0");
    let refused_before = metric(t.gw.ops_addr, "authgate_connections_refused_total")
        .expect("the refusal counter is scraped");
    let holder = TcpStream::connect(t.tls_addr).unwrap();
    wait_for_metric(&t, "authgate_open_connections 1");
    let client = t.ca.client_config(&[b"http/1.1"]);
    let request = get_request("localhost", "/api/x", None);
    let refused = https_exchange(client.clone(), t.tls_addr, "localhost", &request).unwrap();
    assert_eq!(refused.response.status, 503);
    assert_eq!(refused.response.header("retry-after"), Some("1"));
    assert!(
        refused.response.text().contains("Too many connections"),
        "{}",
        refused.response.text()
    );
    wait_for_metric(
        &t,
        &format!(
            "authgate_connections_refused_total {}",
            refused_before + 1.0
        ),
    );
    drop(holder);
    wait_for_metric(&t, "authgate_open_connections 0");
    let served = https_exchange(client, t.tls_addr, "localhost", &request).unwrap();
    assert_eq!(served.response.status, 401);
    assert_eq!(t.upstream.count(), 0);
}
