//! The lean floor: the least a proxy on pingora-core can do, to measure authgate's own
//! request loop against. An `HttpServerApp` that reads the request (body included),
//! forwards it through pingora-core's `Connector` (its pool), reads the whole response and
//! writes it back. No routing, auth, headers, limits, metrics or logs.
//!
//!   LEAN_LISTEN    address to listen on  (default 127.0.0.1:8094)
//!   LEAN_UPSTREAM  upstream address      (default 127.0.0.1:8081)
//!   LEAN_H2C       1: HTTP/2 without TLS (prior knowledge) beside HTTP/1 (default 0)
//!   LEAN_TLS_CERT, LEAN_TLS_KEY  PEM files: listen with TLS (ALPN h2 then http/1.1)
//!                  instead of plain TCP (default plain)
//!   LEAN_READ_BUFFER  the listener's L4 read buffer per connection in bytes, 0 for none
//!                  (default pingora's, 65536)
//!
//! One worker thread on pingora's no-steal runtime and mimalloc, as authgate runs.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::connectors::http::Connector;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::upstreams::peer::HttpPeer;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Lean {
    connector: Connector,
    peer: HttpPeer,
    options: HttpServerOptions,
}

impl Lean {
    /// One exchange; None when anything failed (the connection is then closed).
    async fn exchange(&self, session: &mut ServerSession) -> Option<()> {
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await.ok()? {
            body.extend_from_slice(&chunk);
        }
        let (mut up, _reused) = self.connector.get_http_session(&self.peer).await.ok()?;
        up.write_request_header(Box::new(session.req_header().clone()))
            .await
            .ok()?;
        if !body.is_empty() {
            up.write_request_body(body.freeze(), true).await.ok()?;
        }
        up.finish_request_body().await.ok()?;
        up.read_response_header().await.ok()?;
        let resp = up.response_header()?.clone();
        let mut resp_body = BytesMut::new();
        while let Some(chunk) = up.read_response_body().await.ok()? {
            resp_body.extend_from_slice(&chunk);
        }
        self.connector
            .release_http_session(up, &self.peer, None)
            .await;
        session.write_response_header(Box::new(resp)).await.ok()?;
        session
            .write_response_body(resp_body.freeze(), true)
            .await
            .ok()?;
        Some(())
    }
}

#[async_trait]
impl HttpServerApp for Lean {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !session.read_request().await.ok()? {
            return None;
        }
        self.exchange(&mut session).await?;
        let settings = HttpPersistentSettings::for_session(&session);
        let stream = session.finish().await.ok()??;
        Some(ReusedHttpStream::from_reusable_stream(stream, settings))
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

fn main() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let listen = env("LEAN_LISTEN", "127.0.0.1:8094");
    let upstream = env("LEAN_UPSTREAM", "127.0.0.1:8081");
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut options = HttpServerOptions::default();
    options.h2c = env("LEAN_H2C", "0") == "1";
    let lean = Lean {
        connector: Connector::new(None),
        peer: HttpPeer::new(upstream, false, String::new()),
        options,
    };
    let mut service = Service::new("lean".to_string(), lean);
    let tls = (
        std::env::var("LEAN_TLS_CERT"),
        std::env::var("LEAN_TLS_KEY"),
    );
    if let (Ok(cert), Ok(key)) = tls {
        let mut tls = TlsSettings::intermediate(&cert, &key)
            .expect("LEAN_TLS_CERT and LEAN_TLS_KEY must be a PEM certificate and key");
        tls.enable_h2();
        service.add_tls_with_settings(&listen, None, tls);
    } else {
        match std::env::var("LEAN_READ_BUFFER") {
            Ok(bytes) => {
                let bytes = bytes
                    .parse()
                    .expect("LEAN_READ_BUFFER must be a number of bytes");
                service.add_listener(
                    ListenerConfig::tcp(listen).l4_buffer(L4BufferSettings::default().read(bytes)),
                );
            }
            Err(_) => service.add_tcp(&listen),
        }
    }
    server.add_service(service);
    server.run_forever();
}
