//! Forged, confused and malformed tokens (RFC 8725, OWASP ASVS V9): each is refused with
//! 401 and a contract message, never a 500, and the upstream never sees the request.

mod common;

use common::tokens::{access_claims, b64, forge, now, sign};
use common::*;
use serde_json::{json, Value};

/// An RSA public key, as an attacker would fetch it from a JWKS endpoint: the classic
/// "RS256 key used as an HS256 secret" confusion signs with this text as the HMAC key.
const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2lbjraA0lljUX9bDFD/a
E23+LMu1i8XLN9JEykPB5P+7FG5+IwP2zlRCOktn2QishU0Iq3svlDKvGoQGE1vx
6V5oLacibG9gBbO2zD8WRNRPTuSI6PEGuHshMCfn0KCCy+zKLDPo12pXixblU/ZL
eDou8b5dv/DdU6O9ktzQPS8LgJ9RzBMD/MaPCdQxQZUWO3oRD4Ht0m+7T4c3asLV
AiEczkgfEn0pB95HuaNNMTN4PKlTzLOR/M1rWlpA1vYj9QjVdUoDFLjvKv5rSv1K
qTJfLrQi1sxEwMTMFvGfwTa+ZCi9a3u85dLTt848ic2svAJK7sFvUjbaYhs+z1Ju
PQIDAQAB
-----END PUBLIC KEY-----
";

const SIGNATURE_FAILED: &str = "Invalid token: Signature verification failed";
const ALG_NOT_ALLOWED: &str = "Invalid token: The specified alg value is not allowed";

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// Sends `GET /protected/resource` with these Authorization values and asserts a JSON 401
/// with `msg`, and that the upstream received nothing.
fn refused_with(gw: &TestGateway, up: &Upstream, authorization: &[&str], msg: &str) {
    let before = up.count();
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|v| ("Authorization", *v))
        .collect();
    let resp = send(gw.addr, "GET", "/protected/resource", &headers, None);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, msg),
        "Authorization {authorization:?}"
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        up.count(),
        before,
        "forwarded despite a bad token: {:?}",
        up.last()
    );
}

fn refused(gw: &TestGateway, up: &Upstream, token: &str, msg: &str) {
    refused_with(gw, up, &[&format!("Bearer {token}")], msg);
}

/// Refused as malformed: 401 with one of the contract's `Invalid token: ...` reasons.
fn refused_invalid(gw: &TestGateway, up: &Upstream, token: &str) {
    let before = up.count();
    let resp = with_token(gw.addr, "GET", "/protected/resource", token);
    assert_eq!(resp.status, 401, "{token}: {}", resp.text());
    assert!(
        resp.msg().starts_with("Invalid token: "),
        "{token}: {}",
        resp.msg()
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(up.count(), before, "forwarded: {:?}", up.last());
}

/// The token is accepted: 200 from the upstream, which saw the token's user.
fn accepted(gw: &TestGateway, up: &Upstream, token: &str) {
    let resp = with_token(gw.addr, "GET", "/protected/resource", token);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(up.last().header_values("x-user-id"), vec!["1"]);
}

#[test]
fn alg_none_in_every_spelling_is_refused() {
    let (gw, up) = standard();
    let claims = access_claims();
    let real = forge(&claims);
    let real_sig = real.rsplit('.').next().unwrap();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        let unsigned = format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        refused(
            &gw,
            &up,
            &unsigned,
            "Invalid token: Invalid header or payload",
        );
        // The same with a valid HS256 signature tacked on: a verifier that ignored `alg`
        // would accept it.
        refused(
            &gw,
            &up,
            &format!("{unsigned}{real_sig}"),
            "Invalid token: Invalid header or payload",
        );
    }
    // The signed original is fine: the refusals above are about `alg` alone.
    accepted(&gw, &up, &real);
}

#[test]
fn other_algorithms_than_the_configured_hs256_are_refused() {
    let (gw, up) = standard();
    let claims = access_claims();
    for alg in ["HS384", "HS512"] {
        let token = sign(
            &json!({"alg": alg, "typ": "JWT"}),
            &claims,
            SECRET.as_bytes(),
        );
        refused(&gw, &up, &token, ALG_NOT_ALLOWED);
    }
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        // Signature bytes do not matter: the algorithm alone must end it.
        let input = format!(
            "{}.{}",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        refused(
            &gw,
            &up,
            &format!("{input}.{}", b64(&[7u8; 256])),
            ALG_NOT_ALLOWED,
        );
    }
}

#[test]
fn a_public_key_used_as_an_hmac_secret_is_refused() {
    let (gw, up) = standard();
    let claims = access_claims();
    let token = sign(&hs256(), &claims, RSA_PUBLIC_PEM.as_bytes());
    refused(&gw, &up, &token, SIGNATURE_FAILED);
    let token = sign(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-key-1"}),
        &claims,
        RSA_PUBLIC_PEM.trim().as_bytes(),
    );
    refused(&gw, &up, &token, SIGNATURE_FAILED);
}

#[test]
fn tampered_payload_header_and_signature_are_refused() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    accepted(&gw, &up, &access);
    let parts: Vec<&str> = access.split('.').collect();

    // Payload: become user 2, keep the signature.
    let mut claims: Value = serde_json::from_slice(&base64_decode(parts[1])).unwrap();
    claims["sub"] = json!("2");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    refused(&gw, &up, &forged, SIGNATURE_FAILED);

    // Header: same alg, one more field; the signature no longer covers it.
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "x"});
    let forged = format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        parts[1],
        parts[2]
    );
    refused(&gw, &up, &forged, SIGNATURE_FAILED);

    // Signature: truncated, flipped, or dropped.
    refused_invalid(&gw, &up, &access[..access.len() - 2]);
    refused_invalid(&gw, &up, &access[..access.len() - 4]);
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&[0u8; 32]));
    refused(&gw, &up, &flipped, SIGNATURE_FAILED);
    let dropped = format!("{}.{}.", parts[0], parts[1]);
    refused(&gw, &up, &dropped, SIGNATURE_FAILED);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[test]
fn another_secret_is_refused() {
    let (gw, up) = standard();
    for key in [
        b"another-secret-that-is-long-enough!!".as_slice(),
        b"",
        b"secret",
        &SECRET.as_bytes()[..SECRET.len() - 1],
    ] {
        refused(
            &gw,
            &up,
            &sign(&hs256(), &access_claims(), key),
            SIGNATURE_FAILED,
        );
    }
}

#[test]
fn key_location_headers_are_ignored_not_followed() {
    let (gw, up) = standard();
    let claims = access_claims();
    let jwk = json!({"kty": "oct", "k": b64(b"attacker-key-attacker-key-attacker")});
    let pointers = [
        json!({"alg": "HS256", "typ": "JWT", "kid": "../../../../dev/null"}),
        json!({"alg": "HS256", "typ": "JWT", "kid": "' UNION SELECT 'key"}),
        json!({"alg": "HS256", "typ": "JWT", "jku": "http://127.0.0.1:1/jwks.json"}),
        json!({"alg": "HS256", "typ": "JWT", "x5u": "http://127.0.0.1:1/cert.pem"}),
        json!({"alg": "HS256", "typ": "JWT", "jwk": jwk}),
    ];
    for header in &pointers {
        // Signed with the gateway's secret: the pointer changes nothing, the token is fine.
        accepted(&gw, &up, &sign(header, &claims, SECRET.as_bytes()));
        // Signed with the key the header points at: refused.
        let token = sign(header, &claims, b"attacker-key-attacker-key-attacker");
        refused(&gw, &up, &token, SIGNATURE_FAILED);
    }
}

#[test]
fn critical_header_extensions_nobody_understands_are_refused() {
    // RFC 7515 4.1.11: a JWS whose `crit` lists an extension the recipient does not
    // understand is invalid, even when its signature is right.
    let (gw, up) = standard();
    let claims = access_claims();
    for header in [
        json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-override"], "exp-override": "yes"}),
        json!({"alg": "HS256", "typ": "JWT", "crit": []}),
        json!({"alg": "HS256", "typ": "JWT", "crit": ["kid"], "kid": "1"}),
    ] {
        refused_invalid(&gw, &up, &sign(&header, &claims, SECRET.as_bytes()));
    }
    accepted(&gw, &up, &sign(&hs256(), &claims, SECRET.as_bytes()));
}

#[test]
fn time_claims_are_enforced_with_the_leeway() {
    let (gw, up) = standard();
    let now = now();
    let with = |key: &str, value: Value| {
        let mut c = access_claims();
        c[key] = value;
        forge(&c)
    };
    refused(&gw, &up, &with("exp", json!(now - 60)), "Token has expired");
    refused(&gw, &up, &with("exp", json!(now - 6)), "Token has expired");
    // Inside the 5 s leeway the token is still good.
    accepted(&gw, &up, &with("exp", json!(now - 2)));
    let not_yet = "Invalid token: The token is not yet valid (nbf)";
    refused(&gw, &up, &with("nbf", json!(now + 60)), not_yet);
    refused(&gw, &up, &with("nbf", json!(now + 3600)), not_yet);
    refused(
        &gw,
        &up,
        &with("iat", json!(now + 3600)),
        "Invalid token: The token is not yet valid (iat)",
    );
}

#[test]
fn time_claims_missing_or_as_strings_are_refused() {
    let (gw, up) = standard();
    for claim in ["exp", "nbf", "iat"] {
        let mut c = access_claims();
        c.as_object_mut().unwrap().remove(claim);
        refused_invalid(&gw, &up, &forge(&c));
        let mut c = access_claims();
        c[claim] = json!(c[claim].as_i64().unwrap().to_string());
        refused_invalid(&gw, &up, &forge(&c));
    }
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let (gw, up) = standard();
    let cases = [
        (
            "iss",
            json!("someone-else"),
            "Invalid token: Invalid issuer",
        ),
        (
            "aud",
            json!("another-service"),
            "Invalid token: Invalid audience",
        ),
        ("iss", json!(""), "Invalid token: Invalid issuer"),
    ];
    for (claim, value, msg) in cases {
        let mut c = access_claims();
        c[claim] = value;
        refused(&gw, &up, &forge(&c), msg);
    }
    let mut c = access_claims();
    c["aud"] = json!(["another-service"]);
    refused_invalid(&gw, &up, &forge(&c));
    for claim in ["iss", "aud"] {
        let mut c = access_claims();
        c.as_object_mut().unwrap().remove(claim);
        refused_invalid(&gw, &up, &forge(&c));
    }
}

#[test]
fn token_types_are_not_interchangeable() {
    let (gw, up) = standard();
    let (access, refresh) = tokens_for(&gw, "alice");
    refused(
        &gw,
        &up,
        &refresh,
        "Invalid token: Only non-refresh tokens are allowed",
    );
    let resp = with_token(gw.addr, "POST", "/logout", &refresh);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Invalid token: Only non-refresh tokens are allowed")
    );
    let resp = with_token(gw.addr, "POST", "/refresh", &access);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (401, "Invalid token: Only refresh tokens are allowed")
    );
    assert!(resp.json().get("access_token").is_none());
    // A forged type the gateway never issues is not an access token either.
    let mut c = access_claims();
    c["type"] = json!("admin");
    refused(
        &gw,
        &up,
        &forge(&c),
        "Invalid token: Invalid header or payload",
    );
    // Both real tokens still work for what they are.
    accepted(&gw, &up, &access);
    assert_eq!(
        with_token(gw.addr, "POST", "/refresh", &refresh).status,
        200
    );
}

#[test]
fn an_oversized_token_is_refused_before_it_is_decoded() {
    let (gw, up) = standard();
    let mut c = access_claims();
    c["pad"] = json!("x".repeat(9 * 1024));
    let big = forge(&c);
    assert!(big.len() > 8 * 1024);
    refused(&gw, &up, &big, "Invalid token: Token is too large");
}

#[test]
fn garbage_empty_and_repeated_authorization_headers_are_refused() {
    let (gw, up) = standard();
    let not_bearer = "Unauthorized: Missing 'Bearer' type in 'Authorization' header. Expected 'Authorization: Bearer <JWT>'";
    refused_with(&gw, &up, &[], "Unauthorized: Missing Authorization Header");
    for value in [
        "",
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6cHc=",
        "Token abc.def.ghi",
        "Bearer a b c",
    ] {
        refused_with(&gw, &up, &[value], not_bearer);
    }
    refused(&gw, &up, "abc", "Invalid token: Not enough segments");
    refused(&gw, &up, "abc.def", "Invalid token: Not enough segments");
    for garbage in [
        "a.b.c.d",
        "!!!.???.***",
        "e30.e30.e30",
        "...",
        "\u{1F600}.a.b",
        "%00.%00.%00",
    ] {
        refused_invalid(&gw, &up, garbage);
    }

    let (access, _) = tokens_for(&gw, "alice");
    let good = format!("Bearer {access}");
    let multiple = "Invalid token: Multiple Authorization headers";
    refused_with(&gw, &up, &[&good, "Bearer garbage"], multiple);
    refused_with(&gw, &up, &["Bearer garbage", &good], multiple);
    refused_with(&gw, &up, &[&good, &good], multiple);
    // Not a 500 on the auth endpoints either.
    let resp = send(
        gw.addr,
        "POST",
        "/logout",
        &[
            ("Authorization", good.as_str()),
            ("Authorization", "Bearer x"),
        ],
        None,
    );
    assert_eq!((resp.status, resp.msg().as_str()), (401, multiple));
    accepted(&gw, &up, &access);
}
