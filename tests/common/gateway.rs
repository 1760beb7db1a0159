//! Starts the real gateway (the same `build_server` the binary uses) on ephemeral ports
//! with a temporary database (SQLite, or PostgreSQL: see `db.rs`), in a thread, and stops
//! it on drop.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::Notify;

use super::db::TestDatabase;

/// The signing secret the tests use, so they can forge and inspect tokens.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// The ports `free_addr` hands out: below Linux's ephemeral range (32768–60999), so no
/// outgoing connection of a concurrent test can take a port between its check here and the
/// gateway's bind (a port from `bind(0)` could, and did).
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free port on loopback (the listener is closed again before the gateway binds it).
/// Each call in a process gets a different port, starting from one spread by process id.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let base = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let offset = (base + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = TEST_PORTS.start + offset as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().unwrap();
        }
    }
    panic!("no free port in {TEST_PORTS:?}")
}

/// Polls until something accepts connections on `addr`, for at most 10 s.
pub fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The config, section by section, so a test replaces only what it is about.
#[derive(Clone)]
pub struct GatewayBuilder {
    sections: BTreeMap<String, String>,
    routes: Vec<String>,
    /// Name, servers, and any further keys of each `[[upstreams]]`.
    upstreams: Vec<(String, Vec<SocketAddr>, String)>,
    dir: Option<Arc<tempfile::TempDir>>,
    db: Option<Arc<TestDatabase>>,
    /// Overrides the database's own URL (e.g. to reach it through a proxy).
    db_url: Option<String>,
    health_check_interval: &'static str,
    /// `[server] listen = "off"`: the gateway listens only on this (`[tls]`) address.
    only_tls: Option<SocketAddr>,
}

impl GatewayBuilder {
    /// One upstream `backend` at `upstream`; no routes yet.
    pub fn new(upstream: SocketAddr) -> Self {
        let mut sections = BTreeMap::new();
        sections.insert(
            "server".into(),
            "threads = 1\nupstream_read_timeout = \"5s\"".into(),
        );
        sections.insert("database".into(), "sync_interval = \"200ms\"".into());
        sections.insert("tokens".into(), format!("secret = \"{SECRET}\""));
        sections.insert("limits".into(), "hash_threads = 2".into());
        sections.insert(
            "rate_limits".into(),
            "register = \"10000/1m\"\nlogin = \"10000/1m\"\nrefresh = \"10000/1m\"".into(),
        );
        sections.insert(
            "log".into(),
            std::env::var("AUTHGATE_TEST_LOG")
                .map(|l| format!("level = \"{l}\""))
                .unwrap_or_else(|_| "level = \"warn\"".into()),
        );
        Self {
            sections,
            routes: Vec::new(),
            upstreams: vec![("backend".into(), vec![upstream], String::new())],
            dir: None,
            db: None,
            db_url: None,
            health_check_interval: "200ms",
            only_tls: None,
        }
    }

    /// Replaces the body of `[name]`.
    pub fn section(mut self, name: &str, body: &str) -> Self {
        self.sections.insert(name.into(), body.into());
        self
    }

    /// Adds a route to `backend`.
    pub fn route(mut self, prefix: &str, auth: &str) -> Self {
        self.routes.push(format!(
            "prefix = \"{prefix}\"\nupstream = \"backend\"\nauth = \"{auth}\""
        ));
        self
    }

    /// Adds a route with extra keys.
    pub fn route_with(mut self, body: &str) -> Self {
        self.routes.push(body.into());
        self
    }

    pub fn upstream(mut self, name: &str, servers: Vec<SocketAddr>) -> Self {
        self.upstreams.push((name.into(), servers, String::new()));
        self
    }

    /// Adds an upstream with further keys (`tls = true`...).
    pub fn upstream_with(mut self, name: &str, servers: Vec<SocketAddr>, keys: &str) -> Self {
        self.upstreams.push((name.into(), servers, keys.into()));
        self
    }

    /// How often every upstream's servers are health-checked (200 ms unless set).
    pub fn health_check_interval(mut self, interval: &'static str) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// Reuses another gateway's database and directory (a restart, or a second process).
    pub fn database_of(mut self, other: &TestGateway) -> Self {
        self.dir = Some(other.dir.clone());
        self.db = Some(other.db.clone());
        self
    }

    /// Runs on `db` (shared by every gateway given it).
    pub fn database(mut self, db: Arc<TestDatabase>) -> Self {
        self.db = Some(db);
        self
    }

    /// Connects to the database at `url` instead of the database's own URL.
    pub fn database_url(mut self, url: &str) -> Self {
        self.db_url = Some(url.into());
        self
    }

    /// No plain listener: the gateway serves only its `[tls] listen = tls_addr`, which
    /// becomes [`TestGateway::addr`].
    pub fn only_tls(mut self, tls_addr: SocketAddr) -> Self {
        self.only_tls = Some(tls_addr);
        self
    }

    fn render(&self, listen: SocketAddr, ops: SocketAddr, db: &str) -> String {
        let mut out = String::new();
        for (name, body) in &self.sections {
            out.push_str(&format!("[{name}]\n"));
            match name.as_str() {
                // Work stealing: pingora's single-threaded runtimes keep their handles in a
                // process-wide thread-local keyed by thread id, and a later server in the
                // same process whose thread reuses an id finds a dead runtime there. One
                // gateway per process (the binary, tests/logs.rs) runs the default.
                "server" => out.push_str(&format!(
                    "listen = \"{}\"\nmetrics_listen = \"{ops}\"\nwork_stealing = true\n",
                    if self.only_tls.is_some() {
                        "off".to_string()
                    } else {
                        listen.to_string()
                    }
                )),
                "database" => out.push_str(&format!("url = \"{db}\"\n")),
                _ => {}
            }
            out.push_str(body);
            out.push_str("\n\n");
        }
        for (name, servers, keys) in &self.upstreams {
            let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
            out.push_str(&format!(
                "[[upstreams]]\nname = \"{name}\"\nservers = [{}]\nhealth_check_interval = \"{}\"\n{keys}\n\n",
                list.join(", "),
                self.health_check_interval
            ));
        }
        for r in &self.routes {
            out.push_str(&format!("[[routes]]\n{r}\n\n"));
        }
        out
    }

    pub fn start(self) -> TestGateway {
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("temp dir")));
        let db = self
            .db
            .clone()
            .unwrap_or_else(|| Arc::new(TestDatabase::fresh(dir.path())));
        let (addr, ops_addr) = (self.only_tls.unwrap_or_else(free_addr), free_addr());
        let url = self.db_url.clone().unwrap_or_else(|| db.url());
        let toml = self.render(addr, ops_addr, &url);
        let config_path = dir.path().join(format!("authgate-{}.toml", addr.port()));
        std::fs::write(&config_path, &toml).unwrap();
        let config = authgate::config::load(&config_path)
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{toml}"));
        // The first gateway of a test binary installs the subscriber; its writer thread
        // lives as long as the binary.
        std::mem::forget(authgate::telemetry::init(&config.log));
        let server = authgate::build_server(&config).expect("gateway builds");
        let stop = Arc::new(Notify::new());
        let watch = StopWatch(stop.clone());
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(watch),
            })
        });
        wait_for_port(addr);
        wait_for_port(ops_addr);
        TestGateway {
            addr,
            ops_addr,
            dir,
            db,
            config_path,
            stop,
            thread: Some(thread),
        }
    }
}

struct StopWatch(Arc<Notify>);

#[async_trait]
impl ShutdownSignalWatch for StopWatch {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// A running gateway; dropped, it shuts down and its thread is joined.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
    /// Dropped after the gateway has stopped (fields drop after `Drop::drop`).
    pub db: Arc<TestDatabase>,
    pub config_path: PathBuf,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Where an SQLite database lives (and its generated secret beside it).
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("authgate.db")
    }

    /// The gateway's database, to look into it whichever backend it is.
    pub fn db(&self) -> &TestDatabase {
        &self.db
    }

    /// Stops the gateway and waits for it to be gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}
