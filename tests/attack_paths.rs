//! Path tricks against prefix routing: with `/public` public and `/` required, nothing may
//! reach the upstream as a path outside `/public` without a token. Paths are normalised
//! before routing and forwarded as matched; what cannot be normalised safely is a JSON 400.

mod common;

use common::http::raw;
use common::*;

/// `/` requires a token, `/public` does not.
fn catch_all() -> (TestGateway, Upstream) {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route("/", "required")
        .route("/public", "public")
        .start();
    (gw, up)
}

/// A GET with `target` written verbatim on the request line, no token.
fn get_raw(gw: &TestGateway, target: &[u8]) -> Resp {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            gw.addr
        )
        .as_bytes(),
    );
    raw(gw.addr, &req)
}

/// Percent-decodes once, as a backend would.
fn decode_once(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// The upstream saw a path under `/public` that a backend decoding it once still reads
/// as under `/public`: no dot segment and no extra separator appear after decoding.
fn assert_forwarded_under_public(target: &str) {
    let path = target.split('?').next().unwrap();
    assert!(
        path == "/public" || path.starts_with("/public/"),
        "forwarded outside /public: {target}"
    );
    let decoded = decode_once(path);
    for segment in decoded.split(|b| *b == b'/' || *b == b'\\') {
        assert!(
            segment != b".." && segment != b"." && !segment.starts_with(b"..;"),
            "a backend decoding {target} would see a dot segment"
        );
    }
}

/// The request is refused (status `want`, JSON) and nothing reached the upstream.
fn assert_refused(gw: &TestGateway, up: &Upstream, target: &str, want: u16) {
    let before = up.count();
    let resp = get_raw(gw, target.as_bytes());
    assert_eq!(resp.status, want, "{target}: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{target}"
    );
    assert!(!resp.msg().is_empty(), "{target}: {}", resp.text());
    assert_eq!(
        up.count(),
        before,
        "{target} reached the upstream as {:?}",
        up.last().target
    );
}

#[test]
fn traversal_out_of_the_public_prefix_never_reaches_the_upstream() {
    let (gw, up) = catch_all();
    let cases = [
        ("/public/../admin", 401),
        ("/public/%2e%2e/admin", 401),
        ("/public/%2E%2E/admin", 401),
        ("/public/..%2fadmin", 400),
        ("/public%2f..%2fadmin", 400),
        ("/PUBLIC/../admin", 401),
        ("/public/..;/admin", 400),
        ("/public/.%2e/admin", 401),
        ("/public/%2e./admin", 401),
        ("/public/..%5cadmin", 400),
        ("/public/%2e%2e%2fadmin", 400),
        ("/public/x/../../admin", 401),
        ("/public/./../admin", 401),
        ("//public/../admin", 401),
        ("/public;/../admin", 401),
        ("/public/..;jsessionid=1/admin", 400),
        ("/public/..%3B/admin", 400),
        ("/public/..%3bx/admin", 400),
        ("/public/.;/../admin", 400),
        ("/PUBLIC/x", 401),
        ("/publicx", 401),
        ("/public../admin", 401),
    ];
    for (target, want) in cases {
        assert_refused(&gw, &up, target, want);
    }
    // Absolute-form targets: refused, or routed on their path just the same.
    for target in ["http://localhost/public/../admin", "http://localhost/admin"] {
        let resp = get_raw(&gw, target.as_bytes());
        assert!(
            matches!(resp.status, 400 | 401),
            "{target}: {}",
            resp.status
        );
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn ambiguous_encodings_are_a_json_400() {
    let (gw, up) = catch_all();
    for target in [
        "/public/a%2Fb",
        "/public/a%2fb",
        "/public/a%5Cb",
        "/public/a%5cb",
        "/public/a%00b",
        "/public/%zz",
        "/public/%4",
        "/public/%",
        "/public/a%0d%0aX-User-Id:%201",
        "/public/a%09b",
        "/public/a%7fb",
    ] {
        assert_refused(&gw, &up, target, 400);
    }
    // Raw backslash (some backends take it for a separator).
    let before = up.count();
    let resp = get_raw(&gw, b"/public/..\\admin");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(up.count(), before);
    // A raw NUL or other control byte on the request line.
    for target in [&b"/public/a\x00b"[..], b"/public/a\x01b", b"/public/a\x7fb"] {
        let answer = common::http::raw_exchange(
            gw.addr,
            &[
                b"GET ",
                target,
                b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ]
            .concat(),
        );
        let status = common::http::parse_responses(&answer)
            .first()
            .map(|r| r.status);
        assert!(matches!(status, None | Some(400)), "{target:?}: {status:?}");
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn encodings_that_stay_inside_public_are_forwarded_inside_public() {
    let (gw, up) = catch_all();
    for target in [
        "/public/%252e%252e/admin",
        "/public/..%252fadmin",
        "/public/%c0%ae%c0%ae/admin",
        "/public/.../admin",
        "/public/....//admin",
        "/public/%2e/admin",
        "/public/a/b/../../c",
        "/public?/../admin",
        "/public/x?a=/../../admin&b=%2F..%2F",
        "/public/x#/../../admin",
    ] {
        let before = up.count();
        let resp = get_raw(&gw, target.as_bytes());
        match resp.status {
            200 => {
                assert_eq!(up.count(), before + 1, "{target}");
                assert_forwarded_under_public(&up.last().target);
            }
            400 => assert_eq!(up.count(), before, "{target}"),
            other => panic!("{target}: {other} {}", resp.text()),
        }
    }
}

#[test]
fn the_normalised_path_is_what_is_forwarded() {
    let (gw, up) = catch_all();
    let cases = [
        (
            "/public//a/./b?q=1&r=%2F..%2F",
            "/public/a/b?q=1&r=%2F..%2F",
        ),
        ("/public/%7Euser/%41", "/public/~user/A"),
        ("/public/a/../b/", "/public/b/"),
        ("/public/a%20b", "/public/a%20b"),
        ("/admin/../public/x", "/public/x"),
        ("/public/%2e/x?", "/public/x?"),
        ("/public", "/public"),
    ];
    for (sent, forwarded) in cases {
        let resp = get_raw(&gw, sent.as_bytes());
        assert_eq!(resp.status, 200, "{sent}: {}", resp.text());
        assert_eq!(up.last().target, forwarded, "{sent}");
        assert_eq!(resp.json()["target"], forwarded, "{sent}");
    }
}

#[test]
fn a_required_route_forwards_the_path_it_authorised() {
    let (gw, up) = catch_all();
    let (access, _) = tokens_for(&gw, "alice");
    let resp = with_token(gw.addr, "GET", "/public/../admin/./panel", &access);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.last();
    assert_eq!(seen.target, "/admin/panel");
    assert_eq!(seen.header_values("x-user-id"), vec!["1"]);
    // And the reverse: a token-less request that normalises into /public carries no identity.
    let resp = send(
        gw.addr,
        "GET",
        "/admin/../public/x",
        &[("X-User-Id", "1")],
        None,
    );
    assert_eq!(resp.status, 200);
    let seen = up.last();
    assert_eq!(seen.target, "/public/x");
    assert!(seen.header_values("x-user-id").is_empty());
}

#[test]
fn raw_non_ascii_bytes_are_refused_or_forwarded_intact() {
    let (gw, up) = catch_all();
    let before = up.count();
    let resp = get_raw(&gw, "/public/café".as_bytes());
    match resp.status {
        200 => {
            let target = up.last().target;
            assert!(
                target == "/public/café" || target == "/public/caf%C3%A9",
                "mangled on the way: {target:?}"
            );
        }
        400 => assert_eq!(up.count(), before),
        other => panic!("{other}: {}", resp.text()),
    }
    // The percent-encoded spelling is forwarded as such.
    let resp = get_raw(&gw, b"/public/caf%c3%a9");
    assert_eq!(resp.status, 200);
    assert_eq!(up.last().target, "/public/caf%C3%A9");
}
