//! A WebSocket upstream (tokio-tungstenite) on an ephemeral port: it records each
//! handshake's request headers, counts the connections that sent it anything (the
//! gateway's TCP health checks connect and send nothing), and answers every text message
//! `m` with `echo: m`. Its guard stops it on drop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// One handshake's request headers, lower-cased names.
pub type Handshake = Vec<(String, String)>;

/// The running WebSocket upstream.
pub struct WsUpstream {
    pub addr: SocketAddr,
    /// Every handshake's headers, lower-cased names.
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
}

impl WsUpstream {
    // The handshake callback's error type is tungstenite's (a whole HTTP response).
    #[allow(clippy::result_large_err)]
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel();
        let (h, c) = (handshakes.clone(), connections.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let (h, c) = (h.clone(), c.clone());
                        tokio::spawn(async move {
                            let mut first = [0u8; 1];
                            if !matches!(stream.peek(&mut first).await, Ok(1)) {
                                return;
                            }
                            c.fetch_add(1, Ordering::SeqCst);
                            let record = |req: &Request, resp: Response| {
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect();
                                h.lock().unwrap().push(headers);
                                Ok(resp)
                            };
                            let Ok(mut ws) =
                                tokio_tungstenite::accept_hdr_async(stream, record).await
                            else {
                                return;
                            };
                            while let Some(Ok(msg)) = ws.next().await {
                                if let Message::Text(text) = msg {
                                    let reply = format!("echo: {}", text.as_str());
                                    if ws.send(Message::text(reply)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            addr,
            handshakes,
            connections,
            stop: Some(stop),
        }
    }

    /// The headers of every handshake so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }

    /// Connections that sent at least one byte so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
