//! Shared test harness: the real gateway on ephemeral ports, a recording upstream, a raw
//! HTTP client, and helpers for accounts and tokens.
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod db;
pub mod gateway;
pub mod h2_client;
pub mod http;
pub mod metrics;
pub mod process;
pub mod python;
pub mod raw_upstream;
pub mod scripted;
pub mod signing;
pub mod tcp_relay;
pub mod tls;
pub mod tokens;
pub mod upstream;
pub mod ws_upstream;

pub use db::TestDatabase;
pub use gateway::{GatewayBuilder, TestGateway, SECRET};
pub use http::{post_json, raw, send, with_token, Resp};
pub use upstream::{Behavior, Recorded, Upstream};

use serde_json::{json, Value};

/// A gateway with `/protected` required and `/public` public, in front of a fresh upstream.
pub fn standard() -> (TestGateway, Upstream) {
    let upstream = Upstream::start();
    let gw = GatewayBuilder::new(upstream.addr)
        .route("/protected", "required")
        .route("/public", "public")
        .start();
    (gw, upstream)
}

/// Registers `username` with a valid email and password; returns the 201 body.
pub fn register(gw: &TestGateway, username: &str) -> Value {
    let resp = post_json(
        gw.addr,
        "/register",
        &json!({"username": username, "email": format!("{username}@example.com"), "password": "Password123"}),
    );
    assert_eq!(resp.status, 201, "register {username}: {}", resp.text());
    resp.json()
}

/// Registers and returns `(access_token, refresh_token)`.
pub fn tokens_for(gw: &TestGateway, username: &str) -> (String, String) {
    let body = register(gw, username);
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}
