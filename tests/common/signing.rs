//! Helpers for gateways that sign with stored keys (EdDSA, ES256): their config, the JWK
//! Set they publish, the `authgate keys` command, and the rows of the key table read
//! through authgate's own store (so the same code works on SQLite and PostgreSQL).

use std::process::Command;
use std::time::{Duration, Instant};

use authgate::store::StoredSigningKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::gateway::{GatewayBuilder, TestGateway, SECRET};
use super::http::send;

/// The key-encryption secret the tests seal private keys with.
pub const KEK: &str = "integration-test-key-encryption-secret-0123";

/// A gateway signing with `algorithm` (`EdDSA`, `ES256`), with `extra` lines in `[tokens]`.
pub fn signing_gateway(builder: GatewayBuilder, algorithm: &str, extra: &str) -> GatewayBuilder {
    builder.section(
        "tokens",
        &format!(
            "secret = \"{SECRET}\"\nalgorithm = \"{algorithm}\"\nkey_encryption_secret = \"{KEK}\"\n{extra}"
        ),
    )
}

/// The decoded JOSE header of `token`.
pub fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The decoded claims of `token`.
pub fn claims_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// `GET /.well-known/jwks.json`: asserts 200 and returns the body.
pub fn jwks(gw: &TestGateway) -> Value {
    let resp = send(gw.addr, "GET", "/.well-known/jwks.json", &[], None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// The kids the JWK Set lists.
pub fn published_kids(gw: &TestGateway) -> Vec<String> {
    jwks(gw)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `authgate keys <args> --json` against the gateway's config; asserts success and
/// returns the JSON it printed.
pub fn keys_command(gw: &TestGateway, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(&gw.config_path)
        .arg("keys")
        .args(args)
        .arg("--json")
        .output()
        .expect("run authgate keys");
    assert!(
        out.status.success(),
        "authgate keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Every row of the key table, through authgate's store for the gateway's database.
pub fn stored_keys(gw: &TestGateway) -> Vec<StoredSigningKey> {
    let config = authgate::config::load(&gw.config_path).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = authgate::store::open(&config.database.backend)
            .await
            .unwrap();
        store.signing_keys().await.unwrap()
    })
}

/// Polls `check` every 50 ms until it holds, for at most `limit`; panics with `what`.
pub fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
