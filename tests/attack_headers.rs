//! Spoofed identity headers: whatever the client sends, on a required route the upstream
//! sees exactly one value of each identity header, the verified one; on a public route, none.

mod common;

use common::http::raw;
use common::*;

/// Every way a client might try to pass an identity of its own choosing.
const SPOOFS: [(&str, &str); 12] = [
    ("X-User-Id", "999"),
    ("x-user-id", "998"),
    ("X-USER-ID", "997"),
    ("X_User_Id", "996"),
    ("x_user_id", "995"),
    ("X-User_Id", "994"),
    ("X-User-Id", "993"),
    ("X-User-Name", "root"),
    ("x-user-name", "admin"),
    ("X_USER_NAME", "root"),
    ("x_user-name", "admin"),
    ("X-User-Name", "root"),
];

/// Identity header values the upstream saw, in any spelling (case, `_` for `-`).
fn identity_values(seen: &Recorded, canonical: &str) -> Vec<String> {
    seen.headers
        .iter()
        .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case(canonical))
        .map(|(_, v)| v.clone())
        .collect()
}

fn assert_verified_identity(seen: &Recorded) {
    assert_eq!(
        identity_values(seen, "x-user-id"),
        vec!["1"],
        "{:?}",
        seen.headers
    );
    assert_eq!(
        identity_values(seen, "x-user-name"),
        vec!["alice"],
        "{:?}",
        seen.headers
    );
}

fn assert_no_identity(seen: &Recorded) {
    assert!(
        identity_values(seen, "x-user-id").is_empty(),
        "{:?}",
        seen.headers
    );
    assert!(
        identity_values(seen, "x-user-name").is_empty(),
        "{:?}",
        seen.headers
    );
}

/// `Connection` may not name an identity header on its way to the upstream: a hop that
/// honours it would drop the verified value.
fn assert_connection_clean(seen: &Recorded) {
    for value in seen.header_values("connection") {
        assert!(
            !value
                .to_ascii_lowercase()
                .replace('_', "-")
                .contains("x-user"),
            "Connection still names an identity header: {value}"
        );
    }
}

#[test]
fn each_spelling_alone_is_replaced_by_the_verified_identity() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");
    for spoof in SPOOFS {
        let resp = send(
            gw.addr,
            "GET",
            "/protected/me",
            &[("Authorization", &auth), spoof],
            None,
        );
        assert_eq!(resp.status, 200, "{spoof:?}: {}", resp.text());
        assert_eq!(resp.json()["user_id"], "1", "{spoof:?}");
        let seen = up.last();
        assert_eq!(seen.target, "/protected/me");
        assert_verified_identity(&seen);
    }
}

#[test]
fn every_spelling_at_once_and_a_connection_header_leave_one_verified_value() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");
    let mut headers: Vec<(&str, &str)> = vec![("Authorization", &auth)];
    headers.extend(SPOOFS);
    for connection in [
        "X-User-Id",
        "keep-alive, X-User-Id, X-User-Name",
        "x_user_id",
        "X-USER-NAME , close",
    ] {
        let mut with_connection = headers.clone();
        with_connection.push(("Connection", connection));
        let resp = send(gw.addr, "GET", "/protected/x", &with_connection, None);
        assert_eq!(resp.status, 200, "Connection: {connection}");
        let seen = up.last();
        assert_verified_identity(&seen);
        assert_connection_clean(&seen);
    }
}

#[test]
fn public_routes_forward_no_identity_whatever_was_sent() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");
    let mut headers: Vec<(&str, &str)> = SPOOFS.to_vec();
    headers.push(("Connection", "X-User-Id"));
    let resp = send(gw.addr, "GET", "/public/page", &headers, None);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["user_id"], serde_json::Value::Null);
    assert_no_identity(&up.last());
    // A valid token on a public route does not turn into identity headers either.
    headers.push(("Authorization", &auth));
    let resp = send(gw.addr, "GET", "/public/page", &headers, None);
    assert_eq!(resp.status, 200);
    let seen = up.last();
    assert_no_identity(&seen);
    assert_connection_clean(&seen);
    assert_eq!(up.count(), 2);
}

#[test]
fn only_underscore_spellings_of_identity_headers_are_dropped() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");
    let resp = send(
        gw.addr,
        "GET",
        "/protected/x",
        &[
            ("Authorization", &auth),
            ("X_User_Id", "7"),
            ("X_Request_Id", "abc"),
            ("X-User-Idx", "keep"),
        ],
        None,
    );
    assert_eq!(resp.status, 200);
    let seen = up.last();
    assert_verified_identity(&seen);
    assert!(
        !seen.header_names().iter().any(|n| n == "x_user_id"),
        "{:?}",
        seen.headers
    );
    // Headers that merely look alike are somebody else's business and pass unchanged.
    assert_eq!(seen.header_values("x-user-idx"), vec!["keep"]);
    assert_eq!(seen.header_values("x_request_id"), vec!["abc"]);
}

#[test]
fn malformed_header_lines_cannot_smuggle_an_identity() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let addr = gw.addr;
    let cases = [
        // Whitespace before the colon (RFC 9112 5.1: must be rejected).
        "X-User-Id : 999\r\n",
        // An obsolete line fold carrying an identity header inside another header.
        "X-Note: hello\r\n X-User-Id: 999\r\n",
        // A folded continuation of the identity header itself.
        "X-User-Id: 1\r\n 999\r\n",
        // Tab instead of a space, and an empty value.
        "X-User-Id:\t999\r\n",
        "X-User-Id:\r\n",
    ];
    for extra in cases {
        let before = up.count();
        let request = format!(
            "GET /protected/x HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {access}\r\n{extra}Connection: close\r\n\r\n"
        );
        let resp = raw(addr, request.as_bytes());
        match resp.status {
            400 => assert_eq!(up.count(), before, "{extra:?} was refused but forwarded"),
            200 => assert_verified_identity(&up.last()),
            other => panic!("{extra:?}: unexpected status {other}: {}", resp.text()),
        }
    }
}

#[test]
fn the_forward_auth_answer_carries_only_the_verified_identity() {
    let (gw, up) = standard();
    let (access, _) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");
    let mut headers: Vec<(&str, &str)> = vec![("Authorization", &auth)];
    headers.extend(SPOOFS);
    let resp = send(gw.addr, "GET", "/auth/verify", &headers, None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    let ids: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-user-id"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(ids, vec!["1"]);
    assert_eq!(resp.header("x-user-name"), Some("alice"));
    assert_eq!(
        up.count(),
        0,
        "forward-auth is answered by the gateway itself"
    );
}
