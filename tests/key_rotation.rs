//! Rotation with an overlap, on two gateways sharing one database: a new key is published
//! at once and signs only after the publish delay; the previous key keeps verifying until
//! every token it signed has expired, then leaves the JWK Set and its tokens are refused.
//! A retired key is refused at once, cached tokens included. Scheduled rotation happens
//! once per period however many gateways run it.

mod common;

use std::time::Duration;

use authgate::auth::keys::material::{self, KeyAlgorithm};
use authgate::auth::keys::KeyEncryptionKey;
use common::signing::*;
use common::tokens::{access_claims, now};
use common::*;
use jsonwebtoken::{encode, Algorithm, Header};
use serde_json::json;

const UNKNOWN_KID: &str = "Invalid token: Unknown key id (kid)";
/// Short lifetimes so that a key's overlap ends within the test, yet long enough that a
/// token issued before a rotation is unexpired when checked after it on a busy machine.
const SHORT: &str =
    "access_ttl = \"6s\"\nrefresh_ttl = \"6s\"\nleeway = \"0s\"\nkey_publish_delay = \"1s\"";
const LONGEST_TTL: i64 = 6;

fn pair(extra: &str) -> (TestGateway, TestGateway, Upstream) {
    let up = Upstream::start();
    let a = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", extra)
        .route("/protected", "required")
        .start();
    let b = signing_gateway(GatewayBuilder::new(up.addr), "EdDSA", extra)
        .route("/protected", "required")
        .database_of(&a)
        .start();
    (a, b, up)
}

/// A token for user 1 lasting an hour, signed with the stored key `kid` (opened with the
/// test's key-encryption secret): it stays valid as long as its key verifies.
fn long_lived_token(gw: &TestGateway, kid: &str) -> String {
    let row = stored_keys(gw).into_iter().find(|r| r.kid == kid).unwrap();
    let private = KeyEncryptionKey::from_secret(KEK.as_bytes())
        .open(kid, &row.sealed_private_key)
        .unwrap();
    let enc = material::encoding_key(KeyAlgorithm::EdDSA, &private).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    encode(&header, &access_claims(), &enc).unwrap()
}

fn status(gw: &TestGateway, token: &str) -> (u16, String) {
    let resp = with_token(gw.addr, "GET", "/protected/x", token);
    (resp.status, resp.msg())
}

fn login(gw: &TestGateway, username: &str) -> String {
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": username, "password": "Password123"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["access_token"].as_str().unwrap().to_string()
}

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().unwrap().to_string()
}

#[test]
fn rotation_overlaps_then_the_old_key_leaves_on_every_gateway() {
    let (a, b, up) = pair(SHORT);
    let (before_rotation, _) = tokens_for(&a, "alice");
    let old = kid_of(&before_rotation);
    let old_forever = long_lived_token(&a, &old);
    assert_eq!(status(&b, &old_forever).0, 200);

    let rotated = keys_command(&a, &["rotate"]);
    let new = rotated["key"]["kid"].as_str().unwrap().to_string();
    let signs_from = rotated["key"]["signs_from"].as_i64().unwrap();
    assert_ne!(new, old);
    // Published at once, on the gateway that did not rotate too.
    eventually(
        Duration::from_secs(5),
        "the other gateway publishes the new key",
        || {
            let kids = published_kids(&b);
            kids.contains(&new) && kids.contains(&old)
        },
    );
    assert_eq!(
        status(&a, &before_rotation).0,
        200,
        "rotation logged alice out"
    );
    assert_eq!(
        status(&b, &before_rotation).0,
        200,
        "rotation logged alice out"
    );

    // Every token carries the key that signs at its issue time: the old one before the
    // publish delay has passed, the new one after.
    eventually(Duration::from_secs(10), "logins carry the new kid", || {
        let token = login(&b, "alice");
        let iat = claims_of(&token)["iat"].as_i64().unwrap();
        let kid = kid_of(&token);
        let expected = if iat >= signs_from { &new } else { &old };
        assert_eq!(
            &kid, expected,
            "issued at {iat}, new key signs from {signs_from}"
        );
        assert_eq!(status(&a, &token).0, 200);
        kid == new
    });

    // The old key verifies until its last token has expired, then leaves by itself.
    assert_eq!(status(&a, &old_forever).0, 200);
    eventually(
        Duration::from_secs(20),
        "the old key leaves the JWK Set",
        || published_kids(&a) == vec![new.clone()] && published_kids(&b) == vec![new.clone()],
    );
    assert!(
        now() >= signs_from + LONGEST_TTL,
        "left before its tokens could have expired"
    );
    let forwarded = up.count();
    assert_eq!(status(&a, &old_forever), (401, UNKNOWN_KID.to_string()));
    assert_eq!(status(&b, &old_forever), (401, UNKNOWN_KID.to_string()));
    assert_eq!(up.count(), forwarded);
}

#[test]
fn a_retired_key_is_refused_at_once_even_from_the_verified_token_cache() {
    let (a, b, up) = pair("");
    let (access, _) = tokens_for(&a, "alice");
    let old = kid_of(&access);
    let token = long_lived_token(&a, &old);
    // Verified once, then served from the cache.
    assert_eq!(status(&b, &token).0, 200);
    assert_eq!(status(&b, &token).0, 200);

    let rotated = keys_command(&a, &["rotate"]);
    let new = rotated["key"]["kid"].as_str().unwrap().to_string();
    let retired = keys_command(&a, &["retire", &old]);
    assert_eq!(retired, json!({"action": "retired", "kid": old}));
    eventually(
        Duration::from_secs(5),
        "both gateways refuse the retired key",
        || status(&a, &token).0 == 401 && status(&b, &token).0 == 401,
    );
    let forwarded = up.count();
    assert_eq!(status(&b, &token), (401, UNKNOWN_KID.to_string()));
    assert_eq!(status(&b, &access), (401, UNKNOWN_KID.to_string()));
    assert_eq!(up.count(), forwarded);
    assert_eq!(published_kids(&a), vec![new.clone()]);
    // The waiting key signs at once: nobody is left without a signature.
    assert_eq!(kid_of(&login(&b, "alice")), new);

    let listed = keys_command(&a, &["list"]);
    let states: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_string(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&(old.clone(), "retired".into())),
        "{states:?}"
    );
    assert!(states.contains(&(new, "signing".into())), "{states:?}");
}

#[test]
fn scheduled_rotation_happens_once_per_period_across_gateways() {
    let schedule = format!("{SHORT}\nkey_rotation = \"2s\"");
    let (a, b, _up) = pair(&schedule);
    eventually(Duration::from_secs(15), "two scheduled rotations", || {
        stored_keys(&a).len() >= 3
    });
    let rows = stored_keys(&a);
    let mut created: Vec<i64> = rows.iter().map(|r| r.created_at).collect();
    created.sort();
    for pair in created.windows(2) {
        assert!(
            pair[1] - pair[0] >= 2,
            "two keys within one rotation period: {created:?}"
        );
    }
    // Both gateways sign with keys the other publishes.
    let (access, _) = tokens_for(&a, "alice");
    assert!(published_kids(&b).contains(&kid_of(&access)));
    assert_eq!(status(&b, &access).0, 200);
}

#[test]
fn retiring_the_only_key_makes_a_new_one_and_logins_go_on() {
    let up = Upstream::start();
    let gw = signing_gateway(GatewayBuilder::new(up.addr), "ES256", "")
        .route("/protected", "required")
        .start();
    let (access, _) = tokens_for(&gw, "alice");
    let old = kid_of(&access);
    keys_command(&gw, &["retire", &old]);
    eventually(
        Duration::from_secs(5),
        "a new key replaces the retired one",
        || {
            let kids = published_kids(&gw);
            kids.len() == 1 && kids[0] != old
        },
    );
    let new = published_kids(&gw).remove(0);
    assert_eq!(status(&gw, &access), (401, UNKNOWN_KID.to_string()));
    let token = login(&gw, "alice");
    assert_eq!(kid_of(&token), new);
    assert_eq!(header_of(&token)["alg"], "ES256");
    assert_eq!(status(&gw, &token).0, 200);
}
