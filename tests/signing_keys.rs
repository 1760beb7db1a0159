//! Tokens signed with stored keys (EdDSA, ES256): the `kid` names a key the JWK Set
//! publishes, the proxied path accepts them, keys survive a restart sealed (never in
//! clear), and switching from HS256 logs nobody out.

mod common;

use std::time::Duration;

use authgate::auth::keys::KeyEncryptionKey;
use common::signing::*;
use common::tokens::{access_claims, now, sign};
use common::*;
use serde_json::json;

const ALG_NOT_ALLOWED: &str = "Invalid token: The specified alg value is not allowed";

fn on_protected(gw: &TestGateway, token: &str) -> Resp {
    with_token(gw.addr, "GET", "/protected/x", token)
}

#[test]
fn eddsa_and_es256_tokens_name_a_published_key_and_pass_the_gateway() {
    for alg in ["EdDSA", "ES256"] {
        let up = Upstream::start();
        let gw = signing_gateway(GatewayBuilder::new(up.addr), alg, "")
            .route("/protected", "required")
            .start();
        let (access, refresh) = tokens_for(&gw, "alice");
        let header = header_of(&access);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "JWT");
        let kid = header["kid"].as_str().expect("a kid").to_string();
        assert_eq!(header_of(&refresh)["kid"], kid.as_str());

        let resp = send(gw.addr, "GET", "/.well-known/jwks.json", &[], None);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        // Default publish delay 10 minutes: the JWK Set may be cached for five.
        assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
        let keys = resp.json()["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let jwk = &keys[0];
        assert_eq!(
            (
                jwk["kid"].as_str(),
                jwk["alg"].as_str(),
                jwk["use"].as_str()
            ),
            (Some(kid.as_str()), Some(alg), Some("sig"))
        );
        assert!(jwk.get("d").is_none(), "a private key was published: {jwk}");

        let resp = on_protected(&gw, &access);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(up.last().header_values("x-user-name"), vec!["alice"]);
        // And again, from the verified-token cache.
        assert_eq!(on_protected(&gw, &access).status, 200);

        let resp = with_token(gw.addr, "POST", "/refresh", &refresh);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let refreshed = resp.json()["access_token"].as_str().unwrap().to_string();
        assert_eq!(header_of(&refreshed)["kid"], kid.as_str());
    }
}

#[test]
fn the_published_endpoints_answer_get_only_and_metadata_needs_an_https_issuer() {
    let up = Upstream::start();
    let gw = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "")
        .route("/", "public")
        .start();
    let resp = send(gw.addr, "POST", "/.well-known/jwks.json", &[], Some("{}"));
    assert_eq!(
        (resp.status, resp.header("allow")),
        (405, Some("GET, HEAD"))
    );
    // The default issuer "authgate" is no URL: RFC 8414 metadata would be wrong.
    let resp = send(
        gw.addr,
        "GET",
        "/.well-known/oauth-authorization-server",
        &[],
        None,
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (404, "Resource not found")
    );
    assert_eq!(
        up.count(),
        0,
        "the gateway's own paths never reach the upstream"
    );

    let gw = signing_gateway(
        GatewayBuilder::new(up.addr),
        "EdDSA",
        "issuer = \"https://auth.example.com\"",
    )
    .start();
    let resp = send(
        gw.addr,
        "GET",
        "/.well-known/oauth-authorization-server",
        &[],
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({
            "issuer": "https://auth.example.com",
            "jwks_uri": "https://auth.example.com/.well-known/jwks.json"
        })
    );
    assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
}

#[test]
fn a_restart_keeps_the_key_and_the_database_holds_no_private_key_in_clear() {
    let up = Upstream::start();
    let first = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "")
        .route("/protected", "required")
        .start();
    let (access, _) = tokens_for(&first, "alice");
    let kid = header_of(&access)["kid"].as_str().unwrap().to_string();
    let config_text = std::fs::read_to_string(&first.config_path).unwrap();

    let rows = stored_keys(&first);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].kid.as_str(), rows[0].algorithm.as_str()),
        (kid.as_str(), "EdDSA")
    );
    // Nonce, 32 sealed bytes, tag.
    assert_eq!(rows[0].sealed_private_key.len(), 12 + 32 + 16);
    let seed = KeyEncryptionKey::from_secret(KEK.as_bytes())
        .open(&kid, &rows[0].sealed_private_key)
        .expect("sealed with the configured secret");
    assert!(
        !rows[0]
            .sealed_private_key
            .windows(32)
            .any(|w| w == seed.as_slice()),
        "the private key is stored in clear"
    );
    if !first.db().is_postgres() {
        let wal = first.db_path().with_extension("db-wal");
        for path in [first.db_path(), wal] {
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                !bytes.windows(32).any(|w| w == seed.as_slice()),
                "the private key is in clear in {}",
                path.display()
            );
        }
    }

    let second = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "")
        .route("/protected", "required")
        .database_of(&first)
        .start();
    first.stop();
    assert_eq!(published_kids(&second), vec![kid.clone()]);
    let resp = on_protected(&second, &access);
    assert_eq!(
        resp.status,
        200,
        "a restart logged alice out: {}",
        resp.text()
    );
    let (again, _) = tokens_for(&second, "bob");
    assert_eq!(header_of(&again)["kid"], kid.as_str());

    // The wrong key-encryption secret cannot open the key: the gateway does not start.
    let wrong = config_text.replace(KEK, "another-key-encryption-secret-of-32-bytes!!");
    let path = second.dir.path().join("wrong-kek.toml");
    std::fs::write(&path, wrong).unwrap();
    let config = authgate::config::load(&path).unwrap();
    let err = authgate::build_server(&config)
        .err()
        .expect("refused to start");
    let text = err.to_string();
    assert!(
        text.contains(&kid) && text.contains("key_encryption_secret"),
        "{text}"
    );
}

#[test]
fn a_gateway_whose_algorithm_disagrees_with_the_newest_key_refuses_to_start() {
    let up = Upstream::start();
    let gw = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "").start();
    let kid = published_kids(&gw).remove(0);
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    for (configured, replace) in [
        ("ES256", "algorithm = \"ES256\""),
        ("HS256", "algorithm = \"HS256\""),
    ] {
        let path = gw.dir.path().join(format!("{configured}.toml"));
        std::fs::write(&path, text.replace("algorithm = \"EdDSA\"", replace)).unwrap();
        let config = authgate::config::load(&path).unwrap();
        let err = authgate::build_server(&config)
            .err()
            .unwrap_or_else(|| panic!("{configured} started on an EdDSA key"))
            .to_string();
        assert!(
            err.contains(configured) && err.contains("EdDSA") && err.contains(&kid),
            "{err}"
        );
    }
}

#[test]
fn switching_from_hs256_to_eddsa_logs_nobody_out() {
    let up = Upstream::start();
    let hs256 = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .start();
    let (access, refresh) = tokens_for(&hs256, "alice");
    assert_eq!(header_of(&access)["alg"], "HS256");

    let eddsa = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", "")
        .route("/protected", "required")
        .database_of(&hs256)
        .start();
    hs256.stop();
    let resp = on_protected(&eddsa, &access);
    assert_eq!(
        resp.status,
        200,
        "the switch logged alice out: {}",
        resp.text()
    );
    let resp = with_token(eddsa.addr, "POST", "/refresh", &refresh);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let next = resp.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(header_of(&next)["alg"], "EdDSA");
    assert_eq!(on_protected(&eddsa, &next).status, 200);

    // The secret still verifies what it signed before the switch, never what it signs
    // after: such a token could only come from someone holding the old secret.
    let switched_at = stored_keys(&eddsa)[0].signs_from;
    let mut claims = access_claims();
    claims["iat"] = json!(switched_at + 1);
    claims["nbf"] = json!(switched_at + 1);
    let forged = sign(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        SECRET.as_bytes(),
    );
    eventually(
        Duration::from_secs(5),
        "the clock passes the switch",
        || now() > switched_at,
    );
    let before = up.count();
    let resp = on_protected(&eddsa, &forged);
    assert_eq!((resp.status, resp.msg().as_str()), (401, ALG_NOT_ALLOWED));
    assert_eq!(up.count(), before);
}
