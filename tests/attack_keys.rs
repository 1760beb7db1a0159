//! Attacks on a gateway that signs with stored keys (RFC 8725): a key the gateway does not
//! hold, the gateway's public key used as an HMAC secret (raw, PEM or JWK JSON), an `alg`
//! that is not the key's, key-location headers, and `kid` values made to be paths or
//! queries. Each is a 401 and the upstream never sees the request.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use authgate::auth::keys::material::{self, KeyAlgorithm};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::signing::*;
use common::tokens::{access_claims, b64, sign};
use common::*;
use jsonwebtoken::{encode, Algorithm, Header};
use serde_json::{json, Value};

const SIGNATURE_FAILED: &str = "Invalid token: Signature verification failed";
const ALG_NOT_ALLOWED: &str = "Invalid token: The specified alg value is not allowed";
const UNKNOWN_KID: &str = "Invalid token: Unknown key id (kid)";

struct Target {
    gw: TestGateway,
    up: Upstream,
    kid: String,
    jwk: Value,
}

fn eddsa_gateway() -> Target {
    let up = Upstream::start();
    let gw = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "")
        .route("/protected", "required")
        .start();
    let jwk = jwks(&gw)["keys"][0].clone();
    let kid = jwk["kid"].as_str().unwrap().to_string();
    Target { gw, up, kid, jwk }
}

fn refused(t: &Target, token: &str, msg: &str) {
    let before = t.up.count();
    let resp = with_token(t.gw.addr, "GET", "/protected/x", token);
    assert_eq!((resp.status, resp.msg().as_str()), (401, msg), "{token}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(t.up.count(), before, "forwarded: {:?}", t.up.last());
}

/// Signs with a key pair the gateway never saw.
fn attacker_token(algorithm: KeyAlgorithm, header: Header) -> (String, String) {
    let key = material::generate(algorithm);
    let kid = material::thumbprint(algorithm, &key.public_key);
    let enc = material::encoding_key(algorithm, &key.private_key).unwrap();
    (encode(&header, &access_claims(), &enc).unwrap(), kid)
}

#[test]
fn a_key_the_gateway_does_not_hold_is_refused_whatever_kid_it_claims() {
    let t = eddsa_gateway();
    // Its own thumbprint as kid: unknown here.
    let mut header = Header::new(Algorithm::EdDSA);
    let key = material::generate(KeyAlgorithm::EdDSA);
    header.kid = Some(material::thumbprint(KeyAlgorithm::EdDSA, &key.public_key));
    let enc = material::encoding_key(KeyAlgorithm::EdDSA, &key.private_key).unwrap();
    refused(
        &t,
        &encode(&header, &access_claims(), &enc).unwrap(),
        UNKNOWN_KID,
    );
    // The gateway's kid, the attacker's signature.
    header.kid = Some(t.kid.clone());
    refused(
        &t,
        &encode(&header, &access_claims(), &enc).unwrap(),
        SIGNATURE_FAILED,
    );
    // No kid at all.
    header.kid = None;
    refused(
        &t,
        &encode(&header, &access_claims(), &enc).unwrap(),
        "Invalid token: Missing key id (kid)",
    );
    // A genuine token passes: the refusals are about the key alone.
    let (access, _) = tokens_for(&t.gw, "alice");
    assert_eq!(
        with_token(t.gw.addr, "GET", "/protected/x", &access).status,
        200
    );
}

#[test]
fn the_public_key_as_an_hmac_secret_is_refused_in_every_form() {
    let t = eddsa_gateway();
    let raw = URL_SAFE_NO_PAD
        .decode(t.jwk["x"].as_str().unwrap())
        .unwrap();
    // SubjectPublicKeyInfo of an Ed25519 key (RFC 8410), then PEM.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&raw);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    let jwk_json = t.jwk.to_string();
    let jwks_json = jwks(&t.gw).to_string();
    for secret in [
        raw.as_slice(),
        spki.as_slice(),
        pem.as_bytes(),
        pem.trim().as_bytes(),
        jwk_json.as_bytes(),
        jwks_json.as_bytes(),
    ] {
        for header in [
            json!({"alg": "HS256", "typ": "JWT", "kid": t.kid}),
            json!({"alg": "HS256", "typ": "JWT"}),
        ] {
            refused(
                &t,
                &sign(&header, &access_claims(), secret),
                SIGNATURE_FAILED,
            );
        }
    }
}

#[test]
fn an_alg_other_than_the_keys_own_is_refused() {
    let t = eddsa_gateway();
    // A real ES256 signature by some P-256 key, naming the gateway's EdDSA key.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(t.kid.clone());
    let (token, _) = attacker_token(KeyAlgorithm::ES256, header);
    refused(&t, &token, ALG_NOT_ALLOWED);
    for alg in ["none", "RS256", "PS256", "HS512"] {
        let unsigned = format!(
            "{}.{}.{}",
            b64(json!({"alg": alg, "typ": "JWT", "kid": t.kid})
                .to_string()
                .as_bytes()),
            b64(access_claims().to_string().as_bytes()),
            b64(&[1u8; 64])
        );
        let resp = with_token(t.gw.addr, "GET", "/protected/x", &unsigned);
        assert_eq!(resp.status, 401, "{alg}: {}", resp.text());
        assert!(
            resp.msg().starts_with("Invalid token: "),
            "{alg}: {}",
            resp.msg()
        );
    }
    assert_eq!(t.up.count(), 0);
}

/// A server that counts the connections it is sent, as an attacker's JWKS host would.
fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (url, hits)
}

#[test]
fn key_location_headers_are_never_followed() {
    let t = eddsa_gateway();
    let (url, hits) = counting_server();
    let attacker = material::generate(KeyAlgorithm::EdDSA);
    let attacker_kid = material::thumbprint(KeyAlgorithm::EdDSA, &attacker.public_key);
    let attacker_jwk =
        material::public_jwk(KeyAlgorithm::EdDSA, &attacker.public_key, &attacker_kid);
    let enc = material::encoding_key(KeyAlgorithm::EdDSA, &attacker.private_key).unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(attacker_jwk).unwrap();
    for kid in [attacker_kid.clone(), t.kid.clone()] {
        let expected = if kid == t.kid {
            SIGNATURE_FAILED
        } else {
            UNKNOWN_KID
        };
        let mut with_jwk = Header::new(Algorithm::EdDSA);
        with_jwk.kid = Some(kid.clone());
        with_jwk.jwk = Some(jwk.clone());
        refused(
            &t,
            &encode(&with_jwk, &access_claims(), &enc).unwrap(),
            expected,
        );
        let mut with_jku = Header::new(Algorithm::EdDSA);
        with_jku.kid = Some(kid.clone());
        with_jku.jku = Some(url.clone());
        refused(
            &t,
            &encode(&with_jku, &access_claims(), &enc).unwrap(),
            expected,
        );
        let mut with_x5u = Header::new(Algorithm::EdDSA);
        with_x5u.kid = Some(kid);
        with_x5u.x5u = Some(url.clone());
        refused(
            &t,
            &encode(&with_x5u, &access_claims(), &enc).unwrap(),
            expected,
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the gateway fetched a key URL"
    );
}

#[test]
fn kid_is_length_capped_and_never_a_path_or_a_query() {
    let t = eddsa_gateway();
    let key = material::generate(KeyAlgorithm::EdDSA);
    let enc = material::encoding_key(KeyAlgorithm::EdDSA, &key.private_key).unwrap();
    let long = format!("{}{}", t.kid, "A".repeat(2000));
    for kid in [
        "../../../../dev/null",
        "/etc/passwd",
        "' OR '1'='1",
        "x' UNION SELECT sealed_private_key FROM signing_keys --",
        "%00",
        &long,
        &t.kid[..t.kid.len() - 1],
    ] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_string());
        refused(
            &t,
            &encode(&header, &access_claims(), &enc).unwrap(),
            UNKNOWN_KID,
        );
    }
}
