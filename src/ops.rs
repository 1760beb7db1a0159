//! The operations listener (`[server] metrics_listen`): `GET /metrics` in the Prometheus
//! text format, `GET /healthz` (the process runs) and `GET /readyz` (the database answers,
//! the revocation state is current, and every route has a healthy upstream server).

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::auth::revocation::RevocationCache;
use crate::gateway::live::SharedLiveConfig;
use crate::metrics::Metrics;
use crate::store::Store;

pub struct OpsService {
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn Store>,
    pub revocations: Arc<RevocationCache>,
    /// The routes and upstreams of the configuration of the moment.
    pub live: SharedLiveConfig,
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .body(body)
        .unwrap_or_default()
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string().into_bytes())
}

impl OpsService {
    /// The reason the gateway is not ready, if any.
    async fn not_ready(&self) -> Option<String> {
        if let Err(e) = self.store.ping().await {
            tracing::warn!(error = %e, "readiness: database does not answer");
            return Some("database unavailable".into());
        }
        if !self.revocations.is_current() {
            return Some("revocation state is stale".into());
        }
        let live = self.live.load();
        live.route_upstreams
            .iter()
            .find(|&&u| !live.upstreams.has_healthy(u))
            .map(|&u| {
                format!(
                    "upstream {} has no healthy server",
                    live.upstreams.pools[u].name
                )
            })
    }
}

impl OpsService {
    /// Sets the gauges that describe state rather than count events.
    fn refresh_scrape_time_gauges(&self) {
        let m = &self.metrics;
        m.revocation_cache_entries
            .set(self.revocations.len() as i64);
        m.revocation_sync_age_seconds
            .set(self.revocations.sync_age_ms() as f64 / 1000.0);
        m.revocation_max_staleness_seconds
            .set(self.revocations.max_staleness_ms() as f64 / 1000.0);
        let live = self.live.load();
        for (index, pool) in live.upstreams.pools.iter().enumerate() {
            let (servers, healthy) = live.upstreams.server_counts(index);
            m.upstream_servers
                .with_label_values(&[&pool.name])
                .set(servers as i64);
            m.upstream_healthy_servers
                .with_label_values(&[&pool.name])
                .set(healthy as i64);
        }
    }
}

#[async_trait]
impl ServeHttp for OpsService {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.method != http::Method::GET {
            return json_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"msg": "Method not allowed"}),
            );
        }
        match req.uri.path() {
            "/metrics" => {
                self.refresh_scrape_time_gauges();
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            "/healthz" => json_reply(StatusCode::OK, json!({"status": "ok"})),
            "/readyz" => match self.not_ready().await {
                None => json_reply(StatusCode::OK, json!({"status": "ready"})),
                Some(reason) => json_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "not ready", "msg": reason}),
                ),
            },
            _ => json_reply(StatusCode::NOT_FOUND, json!({"msg": "Resource not found"})),
        }
    }
}
