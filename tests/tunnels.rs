//! Upgraded connections (WebSocket) through a required route: the upgrade is checked and
//! carries the verified identity, the tunnel carries messages both ways for as long as
//! both sides keep it open (idle gaps longer than `client_timeout` included), a tunnel
//! silent for `tunnel_idle_timeout` is closed, and so is one whose session ends.

mod common;

use std::time::{Duration, Instant};

use common::ws_upstream::WsUpstream;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn gateway(up: &WsUpstream, server: &str) -> TestGateway {
    GatewayBuilder::new(up.addr)
        .section("server", &format!("threads = 1\n{server}"))
        .route("/ws", "required")
        .start()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(gw: &TestGateway, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let mut req = format!("ws://{}/ws/chat", gw.addr)
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        let name = ::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().append(name, v.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Sends `text` and waits (at most 5 s) for the upstream's echo.
async fn round_trip(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer within 5 s")
        .expect("the tunnel is open")
        .expect("a message");
    assert_eq!(reply, Message::text(format!("echo: {text}")));
}

fn open_tunnels(gw: &TestGateway) -> String {
    let metrics = send(gw.ops_addr, "GET", "/metrics", &[], None).text();
    metrics
        .lines()
        .find(|l| l.starts_with("authgate_open_tunnels "))
        .unwrap_or("authgate_open_tunnels missing")
        .to_string()
}

/// Polls the open-tunnel gauge until it reads `want`, for at most 5 s.
fn wait_for_open_tunnels(gw: &TestGateway, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = format!("authgate_open_tunnels {want}");
    while open_tunnels(gw) != want {
        assert!(Instant::now() < deadline, "{} != {want}", open_tunnels(gw));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_websocket_upgrade_carries_the_verified_identity_and_never_the_spoofed_one() {
    let up = WsUpstream::start();
    let gw = gateway(&up, "");
    let body = register(&gw, "alice");
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let user_id = body["user"]["id"].to_string();
    runtime().block_on(async {
        let mut ws = connect(
            &gw,
            &[
                ("Authorization", &bearer),
                ("X-User-Id", "999"),
                ("X_User_Id", "998"),
                ("X-User-Name", "root"),
            ],
        )
        .await
        .expect("the upgrade succeeds");
        round_trip(&mut ws, "hello").await;
        ws.close(None).await.unwrap();
    });
    let handshakes = up.handshakes();
    assert_eq!(handshakes.len(), 1);
    let values = |name: &str| -> Vec<&str> {
        handshakes[0]
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("x-user-id"), vec![user_id.as_str()]);
    assert_eq!(values("x-user-name"), vec!["alice"]);
    assert!(
        !handshakes[0].iter().any(|(k, _)| k.contains('_')),
        "{:?}",
        handshakes[0]
    );
    assert_eq!(values("upgrade"), vec!["websocket"]);
}

#[test]
fn a_websocket_upgrade_without_a_token_gets_401_json_and_no_upstream_connection() {
    let up = WsUpstream::start();
    let gw = gateway(&up, "");
    let refused = runtime().block_on(connect(&gw, &[]));
    let Err(WsError::Http(resp)) = refused else {
        panic!("the upgrade was not refused with an HTTP answer");
    };
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value =
        serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["msg"], "Unauthorized: Missing Authorization Header");
    assert_eq!(up.connections(), 0);
}

/// `client_timeout` is 1 s; the tunnel lives 4 s with silences of 1.2 s, messages going
/// both ways, and the gauge counts it while it is open.
#[test]
fn a_websocket_outlives_client_timeout_with_idle_gaps_longer_than_it() {
    let up = WsUpstream::start();
    let gw = gateway(&up, "client_timeout = \"1s\"");
    let (access, _) = tokens_for(&gw, "alice");
    let bearer = format!("Bearer {access}");
    runtime().block_on(async {
        let mut ws = connect(&gw, &[("Authorization", &bearer)]).await.unwrap();
        let opened = Instant::now();
        round_trip(&mut ws, "first").await;
        wait_for_open_tunnels(&gw, 1);
        for n in 0..3 {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            round_trip(&mut ws, &format!("after gap {n}")).await;
        }
        assert!(opened.elapsed() > Duration::from_secs(3));
        ws.close(None).await.unwrap();
    });
    wait_for_open_tunnels(&gw, 0);
}

#[test]
fn a_silent_tunnel_is_closed_after_tunnel_idle_timeout() {
    let up = WsUpstream::start();
    let gw = gateway(&up, "client_timeout = \"5s\"\ntunnel_idle_timeout = \"1s\"");
    let (access, _) = tokens_for(&gw, "alice");
    let bearer = format!("Bearer {access}");
    runtime().block_on(async {
        let mut ws = connect(&gw, &[("Authorization", &bearer)]).await.unwrap();
        round_trip(&mut ws, "hello").await;
        let silent = Instant::now();
        let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the gateway closes the silent tunnel within 5 s");
        assert!(
            !matches!(end, Some(Ok(Message::Text(_)))),
            "unexpected message {end:?}"
        );
        let lasted = silent.elapsed();
        assert!(
            lasted >= Duration::from_millis(900) && lasted < Duration::from_secs(3),
            "closed after {lasted:?}"
        );
    });
    wait_for_open_tunnels(&gw, 0);
}

/// Waits (at most `limit`) for the tunnel to end; returns how long it took.
async fn closed_within(ws: &mut Ws, limit: Duration) -> Duration {
    let started = Instant::now();
    let end = tokio::time::timeout(limit, ws.next())
        .await
        .unwrap_or_else(|_| panic!("the tunnel was still open after {limit:?}"));
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "unexpected message {end:?}"
    );
    started.elapsed()
}

/// Two gateways share a database (`sync_interval = 500ms`); the tunnel is open on the
/// first, the session logs out on the second, and the first closes the tunnel within
/// two sync intervals.
#[test]
fn a_tunnel_is_closed_within_two_sync_intervals_after_its_session_logs_out_elsewhere() {
    let up = WsUpstream::start();
    let sync = "sync_interval = \"500ms\"";
    let first = GatewayBuilder::new(up.addr)
        .section("database", sync)
        .route("/ws", "required")
        .start();
    let second = GatewayBuilder::new(up.addr)
        .section("database", sync)
        .route("/ws", "required")
        .database_of(&first)
        .start();
    let (access, _) = tokens_for(&first, "alice");
    let (other_access, _) = tokens_for(&first, "bob");
    let bearer = format!("Bearer {access}");
    let other_bearer = format!("Bearer {other_access}");
    runtime().block_on(async {
        let mut ws = connect(&first, &[("Authorization", &bearer)])
            .await
            .unwrap();
        let mut other = connect(&first, &[("Authorization", &other_bearer)])
            .await
            .unwrap();
        round_trip(&mut ws, "before").await;
        let logout = with_token(second.addr, "POST", "/logout", &access);
        assert_eq!(logout.status, 200, "{}", logout.text());
        let lasted = closed_within(&mut ws, Duration::from_secs(5)).await;
        assert!(
            lasted < Duration::from_millis(1000),
            "closed {lasted:?} after the logout"
        );
        // Another session's tunnel is untouched.
        round_trip(&mut other, "still here").await;
    });
}

/// `tunnel_outlives_token = false`: the tunnel closes when its access token expires
/// (a 2 s token), though traffic keeps flowing.
#[test]
fn a_tunnel_can_be_bound_to_its_access_token_expiry() {
    let up = WsUpstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section("server", "threads = 1\ntunnel_outlives_token = false")
        .section(
            "tokens",
            &format!("secret = \"{SECRET}\"\naccess_ttl = \"2s\"\nleeway = \"0s\""),
        )
        .route("/ws", "required")
        .start();
    let (access, _) = tokens_for(&gw, "alice");
    let bearer = format!("Bearer {access}");
    runtime().block_on(async {
        let mut ws = connect(&gw, &[("Authorization", &bearer)]).await.unwrap();
        let opened = Instant::now();
        round_trip(&mut ws, "fresh").await;
        closed_within(&mut ws, Duration::from_secs(6)).await;
        let lasted = opened.elapsed();
        assert!(
            lasted > Duration::from_millis(900) && lasted < Duration::from_secs(4),
            "closed {lasted:?} after opening"
        );
    });
}
