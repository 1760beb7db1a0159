//! The example protected service: the Flask seed's `GET /protected`, as an upstream that
//! trusts the identity headers authgate injects.
//!
//! Run it alone with `cargo run --example protected_api` (listens on 127.0.0.1:8000, or
//! the address given as the first argument), or with the gateway via `cargo run --example demo`.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::server::Server;
use pingora::services::listening::Service;
use serde_json::json;

/// Answers from the `X-User-Id` header the gateway set.
pub struct ProtectedApi;

#[async_trait]
impl ServeHttp for ProtectedApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let user_id = session
            .req_header()
            .headers
            .get("x-user-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let (status, body) = match (session.req_header().uri.path(), user_id) {
            ("/protected", Some(id)) => (
                StatusCode::OK,
                json!({"msg": "This is a protected endpoint", "user_id": id}),
            ),
            ("/protected", None) => (
                StatusCode::UNAUTHORIZED,
                json!({"msg": "No verified identity"}),
            ),
            _ => (StatusCode::NOT_FOUND, json!({"msg": "Resource not found"})),
        };
        let body = body.to_string().into_bytes();
        Response::builder()
            .status(status)
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len())
            .body(body)
            .expect("static response parts are valid")
    }
}

/// The service, listening on `addr`.
pub fn service(addr: &str) -> Service<HttpServer<ProtectedApi>> {
    let mut service = Service::new(
        "protected api".to_string(),
        HttpServer::new_app(ProtectedApi),
    );
    service.add_tcp(addr);
    service
}

#[allow(dead_code)] // unused when the demo includes this file as a module
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_string());
    // Stops within a second of SIGTERM or Ctrl-C, idle keep-alive clients or not.
    let conf = pingora::server::configuration::ServerConf {
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    server.add_service(service(&addr));
    println!("protected api listening on {addr}");
    server.run(authgate::shutdown::run_args());
}
