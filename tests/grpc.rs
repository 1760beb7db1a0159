//! gRPC through a required route, and HTTP/2 to upstreams (`[[upstreams]] http2 = true`),
//! seen from outside: Python's grpcio client calls a grpcio echo service behind the
//! gateway over h2c and over TLS (ALPN h2), unary and server-streaming; the service reports
//! the identity metadata it saw and sets trailers, which must come back intact. Calls the
//! gateway refuses get the gRPC status a gRPC client expects. curl speaks plain HTTP/2 and
//! HTTP/1.1 to an HTTP/2-only upstream (the h2 crate's server).
//!
//! Needs the virtualenv `.ci/run` creates (`.ci/venv`, from `.ci/requirements.txt`), or
//! `AUTHGATE_TEST_PYTHON` naming a Python that has grpcio. Without one the tests fail and
//! say how to make it: they never pass without having run grpcio.

mod common;

use common::python::python;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::gateway::{free_addr, wait_for_port};
use common::tls::{CertFiles, TestCa};
use common::{register, GatewayBuilder, TestGateway};
use serde_json::{json, Value};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/echo.py")
}

/// The grpcio echo service on an ephemeral port; stopped (stdin closed, then killed) on
/// drop.
struct EchoService {
    addr: SocketAddr,
    calls_file: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl EchoService {
    /// h2c, or TLS with `cert` when given.
    fn start(dir: &Path, name: &str, cert: Option<&CertFiles>) -> Self {
        let calls_file = dir.join(format!("{name}-calls.jsonl"));
        let mut cmd = Command::new(python());
        cmd.arg(script()).arg("server").arg(&calls_file);
        if let Some(cert) = cert {
            cmd.arg(&cert.certificate).arg(&cert.private_key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the grpcio echo service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the echo service printed no port: {line:?}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_port(addr);
        Self {
            addr,
            calls_file,
            stdin: child.stdin.take(),
            child,
        }
    }

    /// Every call the service got, in order: `{"method", "metadata"}`.
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.calls_file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for EchoService {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the grpcio client reaches the gateway.
enum Channel<'a> {
    H2c(SocketAddr),
    /// TLS to `addr`, trusting `ca`, the server's name `localhost`.
    Tls(SocketAddr, &'a Path),
}

/// One call through the grpcio client: `{"code", "details", "replies",
/// "trailing_metadata"}`.
fn call(
    channel: &Channel,
    method: &str,
    request: &str,
    token: Option<&str>,
    spoof: Option<&str>,
) -> Value {
    let mut cmd = Command::new(python());
    let (Channel::H2c(addr) | Channel::Tls(addr, _)) = channel;
    cmd.arg(script())
        .arg("client")
        .arg(addr.to_string())
        .arg(method)
        .arg(request);
    if let Channel::Tls(_, ca) = channel {
        cmd.arg("--ca").arg(ca).args(["--authority", "localhost"]);
    }
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    if let Some(spoof) = spoof {
        cmd.args(["--spoof-user-id", spoof]);
    }
    let out = cmd.output().expect("run the grpcio client");
    assert!(
        out.status.success(),
        "grpcio client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("client output: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A gateway with h2c on its plain listener and a TLS listener for `localhost`; the
/// required route `/authgate.test.Echo` goes to the echo service (h2c), others as named.
struct Setup {
    gw: TestGateway,
    echo: EchoService,
    tls_addr: SocketAddr,
    ca: TestCa,
    dir: tempfile::TempDir,
}

fn start(extra_upstreams: &[(&str, SocketAddr, &str)], extra_routes: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let cert = ca.issue_files(dir.path(), "gateway", &["localhost"], 1);
    let echo = EchoService::start(dir.path(), "echo", None);
    let tls_addr = free_addr();
    let mut builder = GatewayBuilder::new(echo.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nh2c = true",
        )
        .section("tls", &format!("listen = \"{tls_addr}\"\n{}", cert.toml()))
        .upstream_with("grpc", vec![echo.addr], "http2 = true")
        .route_with("prefix = \"/authgate.test.Echo\"\nupstream = \"grpc\"\nauth = \"required\"");
    for (name, addr, keys) in extra_upstreams {
        builder = builder.upstream_with(name, vec![*addr], keys);
    }
    for route in extra_routes {
        builder = builder.route_with(route);
    }
    let gw = builder.start();
    wait_for_port(tls_addr);
    Setup {
        gw,
        echo,
        tls_addr,
        ca,
        dir,
    }
}

/// Registers `username`: `(access token, user id)`.
fn account(gw: &TestGateway, username: &str) -> (String, String) {
    let body = register(gw, username);
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["user"]["id"].to_string(),
    )
}

/// Unary, server-streaming and an upstream-failed call over `channel`, as `username`.
fn calls_carry_identity_and_trailers(s: &Setup, channel: &Channel, username: &str) {
    let (token, id) = account(&s.gw, username);
    let before = s.echo.calls().len();

    let unary = call(channel, "Say", "hello", Some(&token), Some("999"));
    assert_eq!(unary["code"], "OK", "{unary}");
    assert_eq!(unary["replies"][0]["echo"], "hello");
    let seen = &unary["replies"][0]["metadata"];
    assert_eq!(seen["x-user-id"], json!([id]), "{unary}");
    assert_eq!(seen["x-user-name"], json!([username]), "{unary}");
    assert_eq!(unary["trailing_metadata"]["x-echo-trailer"], "kept");

    let stream = call(channel, "Count", "3", Some(&token), Some("999"));
    assert_eq!(stream["code"], "OK", "{stream}");
    let replies = stream["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 3, "{stream}");
    for (n, reply) in replies.iter().enumerate() {
        assert_eq!(reply["n"], n);
        assert_eq!(reply["metadata"]["x-user-id"], json!([id]));
    }

    // A status the service sets travels in its trailers, past the gateway.
    let failed = call(channel, "Fail", "x", Some(&token), None);
    assert_eq!(failed["code"], "NOT_FOUND", "{failed}");
    assert_eq!(failed["details"], "no such record");

    let calls = s.echo.calls();
    assert_eq!(calls.len(), before + 3, "{calls:?}");
    for c in &calls[before..] {
        assert_eq!(c["metadata"]["x-user-id"], json!([id]), "{c}");
    }
}

#[test]
fn unary_and_streaming_calls_over_h2c_carry_the_verified_identity_and_trailers() {
    let s = start(&[], &[]);
    calls_carry_identity_and_trailers(&s, &Channel::H2c(s.gw.addr), "grpc_h2c");
}

#[test]
fn unary_and_streaming_calls_over_tls_h2_carry_the_verified_identity_and_trailers() {
    let s = start(&[], &[]);
    let channel = Channel::Tls(s.tls_addr, &s.ca.pem_path);
    calls_carry_identity_and_trailers(&s, &channel, "grpc_tls");
}

#[test]
fn a_call_without_a_valid_token_or_with_a_revoked_one_is_unauthenticated_and_never_reaches_the_service(
) {
    let s = start(&[], &[]);
    for channel in [
        Channel::H2c(s.gw.addr),
        Channel::Tls(s.tls_addr, &s.ca.pem_path),
    ] {
        let none = call(&channel, "Say", "hello", None, Some("1"));
        assert_eq!(none["code"], "UNAUTHENTICATED", "{none}");
        assert_eq!(
            none["details"],
            "Unauthorized: Missing Authorization Header"
        );
        let bad = call(&channel, "Count", "2", Some("not-a-token"), None);
        assert_eq!(bad["code"], "UNAUTHENTICATED", "{bad}");
        assert_eq!(bad["details"], "Invalid token: Not enough segments");
        assert_eq!(bad["replies"], json!([]));
    }
    // A token whose session was ended (logout) is refused the same way.
    let (token, _) = account(&s.gw, "grpc_revoked");
    let logout = common::with_token(s.gw.addr, "POST", "/logout", &token);
    assert_eq!(logout.status, 200, "{}", logout.text());
    let revoked = call(&Channel::H2c(s.gw.addr), "Say", "x", Some(&token), None);
    assert_eq!(revoked["code"], "UNAUTHENTICATED", "{revoked}");
    assert_eq!(revoked["details"], "Token has been revoked");
    assert_eq!(s.echo.calls(), Vec::<Value>::new());
}

/// The gateway's own refusals, each as the gRPC status its HTTP status stands for, with
/// the contract's message; a request that is not gRPC still gets the JSON error.
#[test]
fn gateway_errors_reach_grpc_clients_as_grpc_statuses() {
    let dead = free_addr();
    let s = start(
        &[("dead", dead, "http2 = true")],
        &[
            "prefix = \"/authgate.test.Dead\"\nupstream = \"dead\"\nauth = \"required\"",
            "prefix = \"/authgate.test.Admin\"\nupstream = \"grpc\"\nauth = \"required\"\nroles = [\"admin\"]",
            "prefix = \"/authgate.test.Limited\"\nupstream = \"grpc\"\nauth = \"required\"\nrate_limit = \"1/1m\"",
        ],
    );
    let (token, _) = account(&s.gw, "grpc_errors");
    let h2c = Channel::H2c(s.gw.addr);
    let status = |method: &str| {
        let out = call(&h2c, method, "x", Some(&token), None);
        (
            out["code"].as_str().unwrap().to_string(),
            out["details"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(
        status("/nowhere.Service/Say"),
        ("UNIMPLEMENTED".into(), "Resource not found".into())
    );
    let (code, details) = status("/authgate.test.Dead/Say");
    assert_eq!(code, "UNAVAILABLE", "{details}");
    assert!(details.starts_with("Bad gateway"), "{details}");
    assert_eq!(
        status("/authgate.test.Admin/Say"),
        (
            "PERMISSION_DENIED".into(),
            "Forbidden: insufficient role".into()
        )
    );
    // The first call passes the limit, the next not.
    assert_eq!(status("/authgate.test.Limited/Say").0, "OK");
    let (code, details) = status("/authgate.test.Limited/Say");
    assert_eq!(code, "RESOURCE_EXHAUSTED", "{details}");
    assert!(details.starts_with("Rate limit exceeded"), "{details}");

    // What went over the wire: HTTP 200, application/grpc, the status in the header block,
    // the message percent-encoded; the same refusal without a gRPC content type is JSON.
    let out = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        "",
        &format!("http://{}/authgate.test.Echo/Say", s.gw.addr),
    ]);
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    let lower = out.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/grpc\r\n"),
        "{out}"
    );
    assert!(lower.contains("grpc-status: 16\r\n"), "{out}");
    assert!(
        out.contains("grpc-message: Unauthorized: Missing Authorization Header\r\n"),
        "{out}"
    );
    assert!(lower.contains("x-content-type-options: nosniff"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "no body, no trailers: {out}");
    let out = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/authgate.test.Echo/Say", s.gw.addr),
    ]);
    assert!(out.starts_with("HTTP/2 401"), "{out}");
    assert!(
        out.ends_with("{\"msg\":\"Unauthorized: Missing Authorization Header\"}\n"),
        "{out}"
    );
    assert_eq!(
        s.echo.calls().len(),
        1,
        "only the first Limited call got through"
    );
}

/// curl's output with the response header block (`-i`), failing the test if curl fails.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-i", "-m", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An upstream that speaks HTTP/2 only (prior knowledge), built on the h2 crate: it
/// answers every request with 200 and a JSON body saying what it saw, and a trailer.
struct H2Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl H2Upstream {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve_h2(socket, record.clone()));
                }
            });
        });
        Self { addr, seen }
    }

    fn requests(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve_h2(socket: tokio::net::TcpStream, seen: Arc<Mutex<Vec<Value>>>) {
    let Ok(mut conn) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        let seen = seen.clone();
        tokio::spawn(async move {
            let (parts, mut body) = req.into_parts();
            let mut data = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            let values = |name: &str| -> Vec<String> {
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect()
            };
            let report = json!({
                "version": format!("{:?}", parts.version),
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "x-user-id": values("x-user-id"),
                "host": values("host"),
                "body": if data.len() <= 64 { String::from_utf8_lossy(&data).into_owned() } else { String::new() },
                "body_len": data.len(),
            });
            seen.lock().unwrap().push(report.clone());
            let resp = http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(())
                .unwrap();
            let Ok(mut send) = respond.send_response(resp, false) else {
                return;
            };
            let _ = send.send_data(bytes::Bytes::from(report.to_string()), false);
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-upstream-trailer", "kept".parse().unwrap());
            let _ = send.send_trailers(trailers);
        });
    }
}

/// curl speaks plain HTTP/2 (h2c, and TLS with ALPN) and HTTP/1.1 to the gateway, which
/// forwards each request as an HTTP/2 stream to an upstream that speaks nothing else.
#[test]
fn plain_http2_and_http11_requests_reach_an_http2_only_upstream() {
    let up = H2Upstream::start();
    let s = start(
        &[("h2only", up.addr, "http2 = true")],
        &["prefix = \"/h2api\"\nupstream = \"h2only\"\nauth = \"required\""],
    );
    let (token, id) = account(&s.gw, "h2_plain");
    let auth = format!("Authorization: Bearer {token}");
    let tls_url = format!("https://localhost:{}/h2api/tls", s.tls_addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", s.tls_addr.port());
    let ca = s.ca.pem_path.display().to_string();
    let cases: [(&str, Vec<String>); 3] = [
        (
            "HTTP/2 200",
            vec![
                "--http2-prior-knowledge".into(),
                format!("http://{}/h2api/h2c?x=1", s.gw.addr),
            ],
        ),
        (
            "HTTP/1.1 200",
            vec!["--http1.1".into(), format!("http://{}/h2api/h1", s.gw.addr)],
        ),
        (
            "HTTP/2 200",
            vec![
                "--http2".into(),
                "--cacert".into(),
                ca,
                "--resolve".into(),
                resolve,
                tls_url,
            ],
        ),
    ];
    for (status_line, args) in &cases {
        let mut all: Vec<&str> = vec!["-H", &auth, "-H", "X-User-Id: 999"];
        all.extend(["--data-binary", "ping"]);
        all.extend(args.iter().map(String::as_str));
        let out = curl(&all);
        assert!(out.starts_with(status_line), "{out}");
        // After the header block: the JSON body, then (curl -i prints them) the trailers.
        let after_header = out.split_once("\r\n\r\n").unwrap().1;
        let mut values = serde_json::Deserializer::from_str(after_header).into_iter::<Value>();
        let body = values.next().unwrap().unwrap_or_else(|_| panic!("{out}"));
        let trailers = &after_header[values.byte_offset()..];
        assert_eq!(body["version"], "HTTP/2.0", "{out}");
        assert_eq!(body["x-user-id"], json!([id]), "{out}");
        assert_eq!(body["body"], "ping");
        if status_line.starts_with("HTTP/2") {
            assert!(trailers.contains("x-upstream-trailer: kept"), "{out}");
        }
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0]["method"], "POST");
    assert_eq!(
        seen[0]["uri"],
        format!("http://{}/h2api/h2c?x=1", s.gw.addr)
    );
    assert_eq!(seen[0]["host"], json!([]), "the authority is :authority");
    assert_eq!(seen[1]["uri"], format!("http://{}/h2api/h1", s.gw.addr));
    assert_eq!(
        seen[2]["uri"],
        format!("http://localhost:{}/h2api/tls", s.tls_addr.port())
    );
    // A body larger than every flow-control window on the way (the upstream's first
    // stream window is h2's default 64 KiB), streamed up from an HTTP/1.1 client.
    let upload = s.dir.path().join("upload.bin");
    std::fs::write(&upload, vec![b'u'; 3_000_000]).unwrap();
    let out = curl(&[
        "-H",
        &auth,
        "--http1.1",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Expect:",
        "--data-binary",
        &format!("@{}", upload.display()),
        &format!("http://{}/h2api/upload", s.gw.addr),
    ]);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(up.requests()[3]["body_len"], 3_000_000, "{out}");
    // Without a token the upstream is never reached.
    let out = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/h2api/h2c", s.gw.addr),
    ]);
    assert!(out.starts_with("HTTP/2 401"), "{out}");
    assert_eq!(up.requests().len(), 4);
    drop(s.dir);
}

/// `tls = true` with `http2 = true`: the gateway offers ALPN h2 alone to a gRPC service
/// that serves TLS, and verifies its certificate.
#[test]
fn a_grpc_service_behind_tls_is_reached_over_h2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let cert = ca.issue_files(dir.path(), "upstream", &["upstream.test"], 2);
    let service = EchoService::start(dir.path(), "tls-echo", Some(&cert));
    let gw = GatewayBuilder::new(service.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nh2c = true",
        )
        .upstream_with(
            "grpc_tls",
            vec![service.addr],
            &format!(
                "tls = true\nhttp2 = true\nsni = \"upstream.test\"\nca_file = \"{}\"",
                ca.pem_path.display()
            ),
        )
        .route_with(
            "prefix = \"/authgate.test.Echo\"\nupstream = \"grpc_tls\"\nauth = \"required\"",
        )
        .start();
    let (token, id) = account(&gw, "grpc_tls_upstream");
    let h2c = Channel::H2c(gw.addr);
    let unary = call(&h2c, "Say", "over tls", Some(&token), None);
    assert_eq!(unary["code"], "OK", "{unary}");
    assert_eq!(unary["replies"][0]["metadata"]["x-user-id"], json!([id]));
    let stream = call(&h2c, "Count", "2", Some(&token), None);
    assert_eq!(stream["code"], "OK", "{stream}");
    assert_eq!(stream["replies"].as_array().unwrap().len(), 2);
    assert_eq!(service.calls().len(), 2);
}

/// Validates a config with one upstream of `keys`.
fn upstream_config(keys: &str) -> Result<authgate::config::Config, String> {
    let text = format!(
        "[tokens]\nsecret = \"{}\"\n[[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8443\"]\n{keys}\n",
        common::SECRET
    );
    authgate::config::parse(Path::new("t.toml"), &text)
        .map_err(|e| e.to_string())
        .and_then(|file| authgate::config::Config::try_from(file).map_err(|e| e.to_string()))
}

#[test]
fn http2_is_off_by_default_and_must_be_a_boolean() {
    assert!(!upstream_config("").unwrap().upstreams[0].http2);
    assert!(upstream_config("http2 = true").unwrap().upstreams[0].http2);
    let err = upstream_config("http2 = \"yes\"").err().unwrap();
    assert!(err.contains("http2"), "{err}");
}

/// nginx in the foreground on a temporary prefix (removed after it); killed on drop.
struct Nginx(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's nginx serving h2c (prior knowledge) that closes each connection with a
/// graceful GOAWAY after `per_connection` requests, refusing the streams above it.
fn nginx_h2c(per_connection: u32) -> (Nginx, SocketAddr) {
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is required for this test (apt-get install -y nginx; .ci/run does it)");
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log;\n\
         pid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen {listen} http2;\n    keepalive_requests {per_connection};\n\
             location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let nginx = Nginx(child, dir);
    wait_for_port(listen);
    (nginx, listen)
}

/// Streams that an HTTP/2 upstream refuses unprocessed (above its GOAWAY's last stream id)
/// are sent again on a new connection: 120 requests, 30 at once (HTTP/1.1 clients, their
/// requests multiplexed upstream), to an upstream that takes 3 requests per connection,
/// all answered 200.
#[test]
fn streams_refused_by_a_goaway_are_sent_again_on_a_new_connection() {
    let (_nginx, nginx_addr) = nginx_h2c(3);
    let gw = GatewayBuilder::new(nginx_addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nh2c = true",
        )
        .section("rate_limits", "public = \"100000/1s\"")
        .upstream_with("goaway", vec![nginx_addr], "http2 = true")
        .route_with("prefix = \"/goaway\"\nupstream = \"goaway\"\nauth = \"public\"")
        .start();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("urls.txt");
    let urls: String = (0..120)
        .map(|i| {
            format!(
                "url = \"http://{}/goaway/{i}\"\noutput = \"/dev/null\"\n",
                gw.addr
            )
        })
        .collect();
    std::fs::write(&list, urls).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "--parallel"])
        .args([
            "--parallel-max",
            "30",
            "-m",
            "30",
            "-w",
            "%{http_code}\\n",
            "-K",
        ])
        .arg(&list)
        .output()
        .expect("curl runs");
    let codes = String::from_utf8_lossy(&out.stdout);
    let ok = codes.lines().filter(|c| *c == "200").count();
    assert_eq!(ok, 120, "{codes} {}", String::from_utf8_lossy(&out.stderr));
}
