//! The binary upgrade of the real binary: a new process started with `--upgrade` takes
//! the listening sockets (gateway and operations listeners) over the per-instance upgrade
//! socket when the old one gets SIGQUIT (and the `[tls]` listener, in the tunnel test); the old one drains (keep-alive clients told
//! `Connection: close`, tunnels and slow requests given `drain_timeout`) and exits by
//! itself. Under a loop of keep-alive clients on a required route, no request fails.
//! Each gateway here runs on its own SQLite file; `.ci/run` runs this file once.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{free_addr, wait_for_port};
use common::metrics::metric;
use common::process::GatewayProcess;
use common::tls::{get_request, https_exchange, TestCa};
use common::ws_upstream::WsUpstream;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// `[server] drain_timeout` of these gateways.
const DRAIN: Duration = Duration::from_secs(3);
/// pingora's wait after SIGQUIT, for the new process to take the sockets, before the old
/// one stops accepting (`CLOSE_TIMEOUT` in pingora-core's server).
const HAND_OVER: Duration = Duration::from_secs(5);

struct Setup {
    dir: tempfile::TempDir,
    listen: SocketAddr,
    ops: SocketAddr,
}

impl Setup {
    /// A config with a pid file, so the upgrade socket is derived beside it.
    fn new(routes: &str) -> Self {
        let setup = Self {
            dir: tempfile::tempdir().unwrap(),
            listen: free_addr(),
            ops: free_addr(),
        };
        let text = format!(
            "[server]\nlisten = \"{}\"\nmetrics_listen = \"{}\"\nthreads = 2\n\
             pid_file = \"{}\"\ndrain_timeout = \"{}s\"\n\n\
             [database]\nurl = \"{}\"\n\n\
             [tokens]\nsecret = \"{SECRET}\"\n\n[limits]\nhash_threads = 1\n\n\
             [rate_limits]\nregister = \"10000/1m\"\nauthenticated = \"1000000/1m\"\n\n\
             [log]\nlevel = \"info\"\n\n{routes}",
            setup.listen,
            setup.ops,
            setup.pid_file().display(),
            DRAIN.as_secs(),
            setup.dir.path().join("authgate.db").display(),
        );
        std::fs::write(setup.config(), text).unwrap();
        setup
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("authgate.toml")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("authgate.pid")
    }

    /// `[server] upgrade_socket` as derived from the pid file.
    fn upgrade_socket(&self) -> PathBuf {
        self.dir.path().join("authgate.upgrade.sock")
    }

    fn start_old(&self) -> GatewayProcess {
        let old = GatewayProcess::spawn(&self.config(), &[], self.dir.path().join("old.log"));
        wait_for_port(self.listen);
        wait_for_port(self.ops);
        old
    }

    /// Starts the new binary with `--upgrade`; returns once it waits on the upgrade socket.
    fn start_new(&self) -> GatewayProcess {
        let new = GatewayProcess::spawn(
            &self.config(),
            &["--upgrade"],
            self.dir.path().join("new.log"),
        );
        wait_for_path(&self.upgrade_socket());
        new
    }
}

fn wait_for_path(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A keep-alive HTTP/1.1 client: reuses its connection until the gateway says
/// `Connection: close` (or closes it after a response), then opens a new one.
struct KeepAliveClient {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Connections opened so far.
    connections: usize,
}

impl KeepAliveClient {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            connections: 0,
        }
    }

    /// One GET; its status, or why there was none.
    fn get(&mut self, path: &str, token: &str) -> Result<u16, String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
                .map_err(|e| format!("connect: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            self.stream = Some(stream);
            self.connections += 1;
        }
        let stream = self.stream.as_mut().expect("connected");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            self.addr
        );
        let result = stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))
            .and_then(|()| read_response(stream));
        match result {
            Ok((status, close)) => {
                if close {
                    self.stream = None;
                }
                Ok(status)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

/// Reads one response with a `Content-Length` body; its status and whether the server
/// closes the connection after it.
fn read_response(stream: &mut TcpStream) -> Result<(u16, bool), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = parsed.parse(&buf) {
            let header = |name: &str| {
                parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or("a response without Content-Length")?;
            if buf.len() >= head + length {
                let close = header("connection").is_some_and(|v| v.contains("close"));
                return Ok((parsed.code.unwrap_or(0), close));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("closed after {} bytes of the response", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

fn register_token(addr: SocketAddr, name: &str) -> String {
    let registered = post_json(
        addr,
        "/register",
        &json!({"username": name, "email": format!("{name}@example.com"), "password": "Password123"}),
    );
    assert_eq!(registered.status, 201, "{}", registered.text());
    registered.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_binary_upgrade_under_keep_alive_load_drops_nothing_and_the_old_process_exits() {
    let up = Upstream::start();
    let setup = Setup::new(&format!(
        "[[upstreams]]\nname = \"backend\"\nservers = [\"{}\"]\n\n\
         [[routes]]\nprefix = \"/protected\"\nupstream = \"backend\"\nauth = \"required\"\n",
        up.addr
    ));
    let mut old = setup.start_old();
    let token = register_token(setup.listen, "loop");

    // Four keep-alive clients, bounded by a stop flag and a 2-minute ceiling.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, failures, connections) = (
                stop.clone(),
                served.clone(),
                failures.clone(),
                connections.clone(),
            );
            let (addr, token) = (setup.listen, token.clone());
            std::thread::spawn(move || {
                let mut client = KeepAliveClient::new(addr);
                let ceiling = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < ceiling {
                    match client.get("/protected/loop", &token) {
                        Ok(200) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
                connections.fetch_add(client.connections, Ordering::Relaxed);
            })
        })
        .collect();
    let wait_served = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let target = served.load(Ordering::Relaxed) + n;
        while served.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the loop stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_served(100);

    let mut new = setup.start_new();
    old.signal("QUIT");
    let quit = Instant::now();
    let status = old
        .exit_within(HAND_OVER + DRAIN + Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the old process still runs:\n{}", old.log()));
    let exited_after = quit.elapsed();
    assert!(status.success(), "old process: {status:?}\n{}", old.log());
    assert!(
        old.log().contains("drain complete"),
        "the old process did not drain:\n{}",
        old.log()
    );
    // Served by the new process alone from here on.
    let before = served.load(Ordering::Relaxed);
    wait_served(200);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }

    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        served.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
    assert!(new.exited().is_none(), "the new process runs");
    assert!(
        new.log().contains("upgrade=true"),
        "new process log:\n{}",
        new.log()
    );
    // The operations listener was handed over too: the new process answers it, having
    // counted the loop's requests since it took over.
    let counted = metric(
        setup.ops,
        "authgate_requests_total{route=\"/protected\",status_class=\"2xx\"}",
    )
    .expect("the new process's request counter");
    assert!(
        counted >= (served.load(Ordering::Relaxed) - before) as f64,
        "new process counted {counted}"
    );
    // The old process left the pid file to the new one.
    let pid = std::fs::read_to_string(setup.pid_file()).expect("the pid file stays");
    assert_eq!(pid.trim(), new.pid().to_string());
    println!(
        "served {} requests on {} connections; the old process exited {exited_after:?} after SIGQUIT",
        served.load(Ordering::Relaxed),
        connections.load(Ordering::Relaxed)
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn round_trip(ws: &mut Ws, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(reply))) if reply == Message::text(format!("echo: {text}")) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// Whether the tunnel ends (a close, an error or the end of the stream) within `limit`.
async fn closes_within(ws: &mut Ws, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[test]
fn a_tunnel_lives_until_drain_timeout_and_a_slow_request_finishes_during_the_drain() {
    let ws_up = WsUpstream::start();
    let slow_up = Upstream::start_with(Behavior::Delay(HAND_OVER + Duration::from_secs(2)));
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs.path());
    let files = ca.issue_files(certs.path(), "server", &["localhost"], 1);
    let tls_addr = free_addr();
    let setup = Setup::new(&format!(
        "[tls]\nlisten = \"{tls_addr}\"\n{}\n\
         [[upstreams]]\nname = \"ws\"\nservers = [\"{}\"]\n\n\
         [[upstreams]]\nname = \"slow\"\nservers = [\"{}\"]\n\n\
         [[routes]]\nprefix = \"/ws\"\nupstream = \"ws\"\nauth = \"public\"\n\n\
         [[routes]]\nprefix = \"/slow\"\nupstream = \"slow\"\nauth = \"public\"\n",
        files.toml(),
        ws_up.addr,
        slow_up.addr
    ));
    let mut old = setup.start_old();
    wait_for_port(tls_addr);
    let https = || {
        https_exchange(
            ca.client_config(&[b"http/1.1"]),
            tls_addr,
            "localhost",
            &get_request("localhost", "/elsewhere", None),
        )
        .map(|e| e.response.status)
    };
    assert_eq!(https(), Ok(404), "the old process answers HTTPS");
    let rt = runtime();
    let url = format!("ws://{}/ws/chat", setup.listen);
    let mut ws = rt
        .block_on(tokio_tungstenite::connect_async(url.as_str()))
        .expect("the tunnel opens")
        .0;
    rt.block_on(round_trip(&mut ws, "before")).unwrap();

    let new = setup.start_new();
    // In flight on the old process when it stops accepting, 5 s after SIGQUIT; its
    // upstream answers 2 s later, within drain_timeout.
    let listen = setup.listen;
    let slow = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(listen).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let req = format!("GET /slow/upload HTTP/1.1\r\nHost: {listen}\r\n\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let slow = read_response(&mut stream);
        // The next request on the same connection, during the drain.
        let req = format!("GET /elsewhere HTTP/1.1\r\nHost: {listen}\r\n\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        (slow, read_response(&mut stream))
    });
    std::thread::sleep(Duration::from_millis(300));
    old.signal("QUIT");
    let draining = old.wait_for_log("Graceful shutdown started", HAND_OVER * 3);

    rt.block_on(round_trip(&mut ws, "draining"))
        .expect("the tunnel works once the drain has begun");
    let (slow, next) = slow.join().unwrap();
    let (status, _) = slow.expect("the slow request is answered");
    assert_eq!(status, 200, "the slow request finished");
    let (status, close) = next.expect("the next request on that connection is answered");
    assert_eq!(status, 404);
    assert!(
        close,
        "a request during the drain is answered with Connection: close"
    );
    assert_eq!(slow_up.requests().len(), 1);

    let late =
        (draining + DRAIN - Duration::from_millis(700)).saturating_duration_since(Instant::now());
    std::thread::sleep(late);
    rt.block_on(round_trip(&mut ws, "late"))
        .expect("the tunnel works until drain_timeout");
    assert!(
        rt.block_on(closes_within(&mut ws, Duration::from_secs(3))),
        "the tunnel was not closed at drain_timeout"
    );
    let status = old
        .exit_within(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("the old process still runs:\n{}", old.log()));
    assert!(status.success());
    assert!(
        old.log().contains("closing a tunnel"),
        "old process log:\n{}",
        old.log()
    );

    // The new process serves HTTPS on the listening socket it was handed (binding the
    // address itself would have failed while the old process held it), and tunnels.
    assert_eq!(https(), Ok(404));
    let mut again = rt
        .block_on(tokio_tungstenite::connect_async(url.as_str()))
        .expect("a tunnel through the new process")
        .0;
    rt.block_on(round_trip(&mut again, "after")).unwrap();
    drop(new);
}
