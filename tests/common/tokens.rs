//! Hand-made JWTs for the tests: whatever header and claims a test wants, signed with any
//! key and algorithm, so forged and malformed tokens can be sent at the gateway.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};

pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims like the gateway's own access tokens for user 1.
pub fn access_claims() -> Value {
    let now = now();
    json!({
        "sub": "1", "username": "alice", "type": "access",
        "jti": uuid::Uuid::new_v4().to_string(), "sid": uuid::Uuid::new_v4().to_string(),
        "iat": now, "nbf": now, "exp": now + 3600, "iss": "authgate", "aud": "authgate", "fresh": true
    })
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
    let mut m = <M as Mac>::new_from_slice(key).unwrap();
    m.update(input);
    m.finalize().into_bytes().to_vec()
}

/// Signs `header.claims` with HMAC, picking the hash from the header's `alg`
/// (HS256/HS384/HS512); `none` gets an empty signature.
pub fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = match header["alg"].as_str().unwrap_or("HS256") {
        "HS384" => mac::<Hmac<Sha384>>(key, input.as_bytes()),
        "HS512" => mac::<Hmac<Sha512>>(key, input.as_bytes()),
        "none" => Vec::new(),
        _ => mac::<Hmac<Sha256>>(key, input.as_bytes()),
    };
    format!("{input}.{}", b64(&sig))
}

/// HS256 with the test secret and `typ: JWT`.
pub fn forge(claims: &Value) -> String {
    sign(
        &json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        super::SECRET.as_bytes(),
    )
}
