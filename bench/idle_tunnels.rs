//! Idle WebSocket tunnels for `bench/tunnels`. Two roles:
//!
//!   idle_tunnels upstream ADDR
//!       a WebSocket echo server on ADDR (the gateway's upstream)
//!   idle_tunnels clients URL COUNT TOKEN
//!       opens COUNT WebSockets to URL (ws://...) with `Authorization: Bearer TOKEN`,
//!       checks each with one echoed message, prints `open COUNT`, and holds them idle
//!       until its standard input closes

use std::io::BufRead;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn upstream(addr: &str) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn clients(url: &str, count: usize, token: &str) {
    let mut open = Vec::with_capacity(count);
    for n in 0..count {
        let mut req = url.into_client_request().expect("a ws:// URL");
        let bearer = format!("Bearer {token}").parse().expect("a header value");
        req.headers_mut().insert("Authorization", bearer);
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .unwrap_or_else(|e| panic!("tunnel {n}: {e}"));
        ws.send(Message::text("hello")).await.expect("send");
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "hello" => {}
            other => panic!("tunnel {n}: no echo ({other:?})"),
        }
        open.push(ws);
    }
    println!("open {}", open.len());
    // Hold the tunnels, idle, until stdin closes.
    tokio::task::spawn_blocking(|| for _ in std::io::stdin().lock().lines() {})
        .await
        .ok();
    drop(open);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.get(1).map(String::as_str) {
        Some("upstream") => runtime.block_on(upstream(&args[2])),
        Some("clients") => {
            runtime.block_on(clients(&args[2], args[3].parse().expect("COUNT"), &args[4]))
        }
        _ => eprintln!("usage: idle_tunnels upstream ADDR | clients URL COUNT TOKEN"),
    }
}
