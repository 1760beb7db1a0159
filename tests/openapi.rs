//! `GET /openapi.json`: served by the gateway only with `[server] openapi = true`;
//! otherwise the path belongs to the routes like any other.

mod common;

use common::*;

#[test]
fn the_document_is_served_when_enabled() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nopenapi = true",
        )
        .route("/", "public")
        .start();
    let resp = send(gw.addr, "GET", "/openapi.json", &[], None);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    let doc = resp.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/login"]["post"]["responses"]["401"].is_object());
    assert_eq!(up.requests().len(), 0, "the upstream saw the request");

    let resp = send(gw.addr, "POST", "/openapi.json", &[], Some("{}"));
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD"));
}

#[test]
fn without_the_setting_the_path_is_routed_upstream() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr).route("/", "public").start();
    let resp = send(gw.addr, "GET", "/openapi.json", &[], None);
    assert_eq!(resp.status, 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/openapi.json");
}
