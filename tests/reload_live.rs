//! What else a reload (SIGHUP) of the real binary changes in the running process: the log
//! level, and the open tunnels, which are checked against the new routes and closed when
//! their route is gone or would refuse them now. Each gateway here runs on its own SQLite
//! file; `.ci/run` runs this file once.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::gateway::{free_addr, wait_for_port};
use common::metrics::metric;
use common::process::GatewayProcess;
use common::ws_upstream::WsUpstream;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Setup {
    dir: tempfile::TempDir,
    listen: SocketAddr,
    ops: SocketAddr,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            listen: free_addr(),
            ops: free_addr(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("authgate.toml")
    }

    /// Writes the config whole, then renames it into place, as a deploy tool would.
    fn write(&self, level: &str, rest: &str) {
        let text = format!(
            "[server]\nlisten = \"{}\"\nmetrics_listen = \"{}\"\nthreads = 1\n\n\
             [database]\nurl = \"{}\"\nsync_interval = \"200ms\"\n\n\
             [tokens]\nsecret = \"{SECRET}\"\n\n[limits]\nhash_threads = 1\n\n\
             [log]\nlevel = \"{level}\"\n\n{rest}",
            self.listen,
            self.ops,
            self.dir.path().join("authgate.db").display(),
        );
        let tmp = self.dir.path().join("authgate.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.config()).unwrap();
    }

    fn start(&self) -> GatewayProcess {
        let gw = GatewayProcess::spawn(&self.config(), &[], self.dir.path().join("gw.log"));
        wait_for_port(self.listen);
        wait_for_port(self.ops);
        gw
    }

    /// Sends SIGHUP and waits until the gateway counts the `n`th successful reload.
    fn reload(&self, gw: &GatewayProcess, n: u32) {
        gw.signal("HUP");
        let series = "authgate_config_reloads_total{result=\"success\"}";
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(self.ops, series) != Some(f64::from(n)) {
            assert!(
                Instant::now() < deadline,
                "reload {n} not applied:\n{}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_log_level_changes_on_reload() {
    let up = Upstream::start();
    let setup = Setup::new();
    let routes = format!(
        "[[upstreams]]\nname = \"backend\"\nservers = [\"{}\"]\n\n\
         [[routes]]\nprefix = \"/public\"\nupstream = \"backend\"\nauth = \"public\"\n",
        up.addr
    );
    setup.write("warn", &routes);
    let gw = setup.start();
    assert_eq!(
        send(setup.listen, "GET", "/public/x", &[], None).status,
        200
    );
    assert!(
        !gw.log().contains(" INFO "),
        "info lines at level warn:\n{}",
        gw.log()
    );

    setup.write("info", &routes);
    setup.reload(&gw, 1);
    gw.wait_for_log("configuration reloaded", Duration::from_secs(5));
    assert!(
        gw.log()
            .lines()
            .any(|l| l.contains("configuration change applied") && l.contains("log.level")),
        "{}",
        gw.log()
    );
    assert!(
        !gw.log().contains("needs a restart"),
        "log.level applies live:\n{}",
        gw.log()
    );

    setup.write("warn", &routes);
    setup.reload(&gw, 2);
    // A third reload at warn: its info line must not be written.
    setup.reload(&gw, 3);
    assert_eq!(
        send(setup.listen, "GET", "/public/x", &[], None).status,
        200
    );
    let reloaded = gw.log().matches("configuration reloaded").count();
    assert_eq!(
        reloaded,
        1,
        "only the reload at level info logs:\n{}",
        gw.log()
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: SocketAddr, path: &str, token: Option<&str>) -> Ws {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(token) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let mut ws = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .0;
    round_trip(&mut ws, path).await.unwrap();
    ws
}

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

fn routes(ws: SocketAddr, with_gone: bool, admin_roles: &str) -> String {
    let mut out = format!(
        "[[upstreams]]\nname = \"ws\"\nservers = [\"{ws}\"]\n\n\
         [[routes]]\nprefix = \"/kept\"\nupstream = \"ws\"\nauth = \"public\"\n\n\
         [[routes]]\nprefix = \"/admin\"\nupstream = \"ws\"\nauth = \"required\"\n\
         roles = [{admin_roles}]\n\n"
    );
    if with_gone {
        out.push_str("[[routes]]\nprefix = \"/gone\"\nupstream = \"ws\"\nauth = \"public\"\n");
    }
    out
}

#[test]
fn a_reload_closes_the_tunnels_whose_route_is_gone_or_refuses_them_now() {
    let up = WsUpstream::start();
    let setup = Setup::new();
    setup.write("info", &routes(up.addr, true, ""));
    let gw = setup.start();
    let registered = post_json(
        setup.listen,
        "/register",
        &json!({"username": "alice", "email": "alice@example.com", "password": "Password123"}),
    );
    assert_eq!(registered.status, 201, "{}", registered.text());
    let token = registered.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut kept, mut gone, mut admin) = rt.block_on(async {
        (
            open(setup.listen, "/kept/chat", None).await,
            open(setup.listen, "/gone/chat", None).await,
            open(setup.listen, "/admin/chat", Some(&token)).await,
        )
    });
    assert_eq!(
        metric(setup.ops, "authgate_open_tunnels"),
        Some(3.0),
        "three tunnels open"
    );

    // A reload that changes nothing these tunnels depend on leaves them all open.
    setup.write("info", &format!("{}\n", routes(up.addr, true, "")));
    setup.reload(&gw, 1);
    rt.block_on(async {
        round_trip(&mut kept, "one").await.unwrap();
        round_trip(&mut gone, "one").await.unwrap();
        round_trip(&mut admin, "one").await.unwrap();
    });

    // `/gone` removed, `/admin` now needs a role alice does not hold.
    setup.write("info", &routes(up.addr, false, "\"admin\""));
    setup.reload(&gw, 2);
    rt.block_on(async {
        assert!(
            closes_within(&mut gone, Duration::from_secs(3)).await,
            "the tunnel on the removed route is still open"
        );
        assert!(
            closes_within(&mut admin, Duration::from_secs(3)).await,
            "the tunnel whose route now needs a role is still open"
        );
        round_trip(&mut kept, "two")
            .await
            .expect("the tunnel on the unchanged route stays open");
    });
    assert_eq!(metric(setup.ops, "authgate_open_tunnels"), Some(1.0));
    assert!(
        gw.log()
            .contains("tunnel closed: a reload removed its route"),
        "{}",
        gw.log()
    );
}

#[test]
fn sighup_rereads_the_certificates_all_or_nothing_with_the_rest_of_the_file() {
    use common::tls::{get_request, https_exchange, serial, TestCa};
    let up = Upstream::start();
    let setup = Setup::new();
    let ca = TestCa::new(setup.dir.path());
    let files = ca.issue_files(setup.dir.path(), "server", &["localhost"], 1);
    let tls_addr = free_addr();
    // The file watch is an hour away: only the reload rereads the files here.
    let tls = format!(
        "[tls]\nlisten = \"{tls_addr}\"\n{}watch_interval = \"1h\"\n\n",
        files.toml()
    );
    let routes = |prefixes: &[&str]| {
        let mut out = format!(
            "{tls}[[upstreams]]\nname = \"backend\"\nservers = [\"{}\"]\n\n",
            up.addr
        );
        for p in prefixes {
            out.push_str(&format!(
                "[[routes]]\nprefix = \"{p}\"\nupstream = \"backend\"\nauth = \"public\"\n\n"
            ));
        }
        out
    };
    setup.write("info", &routes(&["/first"]));
    let gw = setup.start();
    wait_for_port(tls_addr);
    let get = |path: &str| {
        https_exchange(
            ca.client_config(&[b"http/1.1"]),
            tls_addr,
            "localhost",
            &get_request("localhost", path, None),
        )
        .map(|e| (e.serial, e.response.status))
    };
    assert_eq!(get("/first/x"), Ok((serial(1), 200)));

    // New certificate files and a new route: both applied by one SIGHUP.
    let (cert, key) = ca.issue(&["localhost"], 2);
    files.replace_with(&cert, &key);
    setup.write("info", &routes(&["/first", "/second"]));
    setup.reload(&gw, 1);
    assert_eq!(get("/second/x"), Ok((serial(2), 200)));

    // A broken certificate refuses the whole reload: the route it came with is not added.
    files.replace_with("not a certificate", &key);
    setup.write("info", &routes(&["/first", "/second", "/third"]));
    gw.signal("HUP");
    let failures = "authgate_config_reloads_total{result=\"failure\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(setup.ops, failures) != Some(1.0) {
        assert!(Instant::now() < deadline, "not refused:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get("/second/x"), Ok((serial(2), 200)));
    assert_eq!(get("/third/x"), Ok((serial(2), 404)));
    assert_eq!(
        metric(setup.ops, "authgate_config_last_reload_successful"),
        Some(0.0)
    );
}
