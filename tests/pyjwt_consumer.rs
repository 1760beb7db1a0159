//! A consumer nobody here wrote verifies authgate's tokens on its own: Python's PyJWT,
//! with its `PyJWKClient` fetching `/.well-known/jwks.json` over HTTP, checks the
//! signature, `exp`, `iss` and `aud` of access tokens from `/login`, for EdDSA and ES256.
//!
//! Needs the virtualenv `.ci/run` creates (`.ci/venv`, from `.ci/requirements.txt`), or
//! `AUTHGATE_TEST_PYTHON` naming a Python that has PyJWT[crypto]. Without one the test
//! fails and says how to make it: it never passes without having run PyJWT.

mod common;

use common::python::python;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use authgate::auth::keys::material::{self, KeyAlgorithm};
use authgate::auth::keys::KeyEncryptionKey;
use common::signing::*;
use common::tokens::{access_claims, now};
use common::*;
use serde_json::{json, Value};

/// Runs the PyJWT consumer on `cases`; returns its results, one per case.
fn pyjwt_verify(gw: &TestGateway, algorithm: &str, cases: &[Value]) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pyjwt/verify_with_jwks.py");
    let url = format!("http://{}/.well-known/jwks.json", gw.addr);
    let mut child = Command::new(python())
        .arg(script)
        .arg(url)
        .arg(algorithm)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the PyJWT consumer");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(cases.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "PyJWT consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), cases.len());
    results
}

/// A token past its `exp`, signed with the gateway's own stored key.
fn expired_token(gw: &TestGateway, algorithm: KeyAlgorithm, kid: &str) -> String {
    let row = stored_keys(gw).into_iter().find(|r| r.kid == kid).unwrap();
    let private = KeyEncryptionKey::from_secret(KEK.as_bytes())
        .open(kid, &row.sealed_private_key)
        .unwrap();
    let mut claims = access_claims();
    claims["iss"] = json!("https://auth.example.com");
    claims["iat"] = json!(now() - 7200);
    claims["nbf"] = json!(now() - 7200);
    claims["exp"] = json!(now() - 3600);
    let mut header = jsonwebtoken::Header::new(algorithm.jwt_algorithm());
    header.kid = Some(kid.to_string());
    let key = material::encoding_key(algorithm, &private).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[test]
fn pyjwt_verifies_eddsa_and_es256_tokens_from_the_published_jwks() {
    for (alg, algorithm) in [
        ("EdDSA", KeyAlgorithm::EdDSA),
        ("ES256", KeyAlgorithm::ES256),
    ] {
        let up = Upstream::start();
        let gw = signing_gateway(
            GatewayBuilder::new(up.addr),
            alg,
            "issuer = \"https://auth.example.com\"\naudience = \"orders-api\"",
        )
        .start();
        register(&gw, "alice");
        let resp = post_json(
            gw.addr,
            "/login",
            &json!({"username": "alice", "password": "Password123"}),
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
        let access = resp.json()["access_token"].as_str().unwrap().to_string();
        let kid = header_of(&access)["kid"].as_str().unwrap().to_string();
        let parts: Vec<&str> = access.split('.').collect();
        let mut sig = parts[2].as_bytes().to_vec();
        sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            String::from_utf8(sig).unwrap()
        );
        let case = |token: &str, issuer: &str, audience: &str| json!({"token": token, "issuer": issuer, "audience": audience});
        let results = pyjwt_verify(
            &gw,
            alg,
            &[
                case(&access, "https://auth.example.com", "orders-api"),
                case(&access, "https://someone-else.example.com", "orders-api"),
                case(&access, "https://auth.example.com", "billing-api"),
                case(
                    &expired_token(&gw, algorithm, &kid),
                    "https://auth.example.com",
                    "orders-api",
                ),
                case(&tampered, "https://auth.example.com", "orders-api"),
            ],
        );
        assert_eq!(results[0]["ok"], true, "{alg}: {}", results[0]);
        assert_eq!(results[0]["kid"], kid.as_str());
        assert_eq!(results[0]["claims"]["username"], "alice");
        assert_eq!(results[0]["claims"]["type"], "access");
        let errors: Vec<&str> = results[1..]
            .iter()
            .map(|r| r["error"].as_str().unwrap_or("accepted"))
            .collect();
        assert_eq!(
            errors,
            vec![
                "InvalidIssuerError",
                "InvalidAudienceError",
                "ExpiredSignatureError",
                "InvalidSignatureError"
            ],
            "{alg}"
        );
    }
}
