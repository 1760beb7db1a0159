//! The attack suite's header, token and path cases (`attack_headers.rs`,
//! `attack_tokens.rs`, `attack_paths.rs`) sent over h2c, each also sent over HTTP/1.1 to
//! the same gateway: the same status and JSON body, the same request forwarded (or none),
//! and never a client-chosen identity upstream. One difference is by design: HTTP/2
//! forbids upper-case header names, so `X-User-Id` spelled that way ends the connection
//! instead of being replaced.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::h2_client::{send_cases, H2Case, H2Outcome, H2Target};
use common::http::raw;
use common::raw_upstream::{RawRequest, RawUpstream};
use common::tokens::{access_claims, b64, forge, now, sign};
use common::{tokens_for, with_token, GatewayBuilder, Resp, TestGateway};
use serde_json::json;

/// What a case must come to.
#[derive(Clone, Copy)]
enum Expect {
    /// The gateway's JSON error with this status; nothing forwarded.
    Refused(u16),
    /// Forwarded as `target`, with the verified identity of user 1 (`alice`) or none.
    Forwarded {
        target: &'static str,
        identity: bool,
    },
    /// Refused by HTTP/2 itself (stream reset or GOAWAY); nothing forwarded.
    ProtocolError,
}

struct Case {
    h2: H2Case,
    expect: Expect,
}

fn case(name: &str, path: &str, headers: &[(&str, &str)], expect: Expect) -> Case {
    let mut h2 = H2Case::new(name, "GET", path);
    for (k, v) in headers {
        h2 = h2.header(k, v);
    }
    Case { h2, expect }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Identity header values in any spelling (case, `_` for `-`).
fn identity(seen: &RawRequest, canonical: &str) -> Vec<String> {
    seen.head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.replace('_', "-").eq_ignore_ascii_case(canonical))
        .map(|(_, value)| value.trim().to_string())
        .collect()
}

/// The same request over HTTP/1.1, its marker field renamed so both can be told apart.
fn send_h1(gw: &TestGateway, case: &H2Case) -> Resp {
    let header = |name: &str| {
        case.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\n",
        header(":method"),
        header(":path")
    );
    for (k, v) in case.headers.iter().filter(|(k, _)| !k.starts_with(':')) {
        let v = if k == "x-case" {
            format!("{v}-h1")
        } else {
            v.clone()
        };
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    raw(gw.addr, request.as_bytes())
}

fn forwarded<'a>(requests: &'a [RawRequest], marker: &str) -> Vec<&'a RawRequest> {
    let field = format!("x-case: {marker}\r\n");
    requests
        .iter()
        .filter(|r| r.head.contains(&field))
        .collect()
}

/// Checks one case's HTTP/2 outcome, and its HTTP/1.1 twin against it.
fn check(case: &Case, h2: &H2Outcome, h1: &Resp, requests: &[RawRequest]) -> Result<(), String> {
    let name = &case.h2.name;
    let seen = forwarded(requests, name);
    let seen_h1 = forwarded(requests, &format!("{name}-h1"));
    match case.expect {
        Expect::Refused(status) => {
            let json = h2.json();
            if h2.status != Some(status)
                || h2.header("content-type") != Some("application/json")
                || !json["msg"].is_string()
            {
                return Err(format!("{name}: want a JSON {status}, got {h2:?}"));
            }
            if (h1.status, h1.json()) != (status, json.clone()) {
                return Err(format!("{name}: HTTP/1.1 got {} {}", h1.status, h1.text()));
            }
            if !seen.is_empty() || !seen_h1.is_empty() {
                return Err(format!("{name}: forwarded: {seen:?} {seen_h1:?}"));
            }
        }
        Expect::Forwarded {
            target,
            identity: with_identity,
        } => {
            if h2.status != Some(200) || h1.status != 200 {
                return Err(format!(
                    "{name}: want 200, got {h2:?} / HTTP/1.1 {}",
                    h1.status
                ));
            }
            for (proto, seen) in [("h2", &seen), ("HTTP/1.1", &seen_h1)] {
                let [one] = seen.as_slice() else {
                    return Err(format!("{name} ({proto}): forwarded {} times", seen.len()));
                };
                if one.target() != target {
                    return Err(format!("{name} ({proto}): forwarded as {}", one.target()));
                }
                let (ids, names) = (identity(one, "x-user-id"), identity(one, "x-user-name"));
                let roles = identity(one, "x-user-roles");
                let want: (Vec<String>, Vec<String>) = if with_identity {
                    (vec!["1".into()], vec!["alice".into()])
                } else {
                    (vec![], vec![])
                };
                if (ids.clone(), names.clone()) != want || roles.iter().any(|r| r.contains("admin"))
                {
                    return Err(format!(
                        "{name} ({proto}): identity {ids:?} {names:?} {roles:?}"
                    ));
                }
            }
        }
        // HTTP/1.1 allows what HTTP/2 forbids: its twin is forwarded with the spoofed
        // value replaced, as attack_headers.rs tests.
        Expect::ProtocolError => {
            if !h2.refused_by_protocol() || !seen.is_empty() {
                return Err(format!(
                    "{name}: want a protocol error, got {h2:?}; {seen:?}"
                ));
            }
        }
    }
    Ok(())
}

fn header_cases(access: &str) -> Vec<Case> {
    let auth = bearer(access);
    let auth = auth.as_str();
    let me = Expect::Forwarded {
        target: "/protected/me",
        identity: true,
    };
    let page = Expect::Forwarded {
        target: "/public/page",
        identity: false,
    };
    let spoofs = [
        ("x-user-id", "999"),
        ("x_user_id", "995"),
        ("x-user_id", "994"),
        ("x-user-name", "admin"),
        ("x_user_name", "root"),
        ("x_user-name", "admin"),
        ("x-user-roles", "admin"),
    ];
    let mut cases: Vec<Case> = spoofs
        .iter()
        .map(|spoof| {
            let name = format!("spoof {}", spoof.0);
            case(
                &name,
                "/protected/me",
                &[("authorization", auth), *spoof],
                me,
            )
        })
        .collect();
    let mut all = vec![("authorization", auth)];
    all.extend(spoofs);
    cases.push(case("spoof-every-spelling", "/protected/me", &all, me));
    cases.push(case("spoof-public", "/public/page", &spoofs, page));
    cases.push(case("spoof-public-with-token", "/public/page", &all, page));
    cases.push(case(
        "lookalikes-pass",
        "/protected/me",
        &[("authorization", auth), ("x-user-idx", "keep")],
        me,
    ));
    for upper in ["X-User-Id", "X-USER-ID", "X_User_Id"] {
        cases.push(case(
            &format!("spoof {upper}"),
            "/protected/me",
            &[("authorization", auth), (upper, "999")],
            Expect::ProtocolError,
        ));
    }
    cases
}

fn token_cases(access: &str, refresh: &str, revoked: &str) -> Vec<Case> {
    let claims = access_claims();
    let with = |key: &str, value: serde_json::Value| {
        let mut c = access_claims();
        c[key] = value;
        forge(&c)
    };
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    // Become user 2, keeping the signature.
    let parts: Vec<&str> = access.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("2");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    );
    let tokens: Vec<(&str, String)> = vec![
        ("alg-none", unsigned),
        (
            "alg-hs384",
            sign(
                &json!({"alg": "HS384", "typ": "JWT"}),
                &claims,
                common::SECRET.as_bytes(),
            ),
        ),
        (
            "another-secret",
            sign(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &claims,
                b"another-secret-that-is-long-enough!!",
            ),
        ),
        ("tampered-payload", tampered),
        (
            "truncated-signature",
            access[..access.len() - 2].to_string(),
        ),
        ("expired", with("exp", json!(now() - 60))),
        ("not-yet-valid", with("nbf", json!(now() + 3600))),
        ("wrong-issuer", with("iss", json!("someone-else"))),
        ("wrong-audience", with("aud", json!("another-service"))),
        ("refresh-token", refresh.to_string()),
        ("revoked", revoked.to_string()),
        ("garbage", "abc".to_string()),
    ];
    let mut cases: Vec<Case> = tokens
        .iter()
        .map(|(name, token)| {
            let auth = bearer(token);
            case(
                name,
                "/protected/resource",
                &[("authorization", &auth)],
                Expect::Refused(401),
            )
        })
        .collect();
    cases.push(case(
        "no-token",
        "/protected/resource",
        &[],
        Expect::Refused(401),
    ));
    cases.push(case(
        "not-bearer",
        "/protected/resource",
        &[("authorization", "Basic YWxpY2U6cHc=")],
        Expect::Refused(401),
    ));
    let good = bearer(access);
    cases.push(case(
        "two-authorizations",
        "/protected/resource",
        &[
            ("authorization", &good),
            ("authorization", "Bearer garbage"),
        ],
        Expect::Refused(401),
    ));
    cases
}

fn path_cases(access: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let refused = [
        ("/public/../admin", 401),
        ("/public/%2e%2e/admin", 401),
        ("/public/..%2fadmin", 400),
        ("/public%2f..%2fadmin", 400),
        ("/PUBLIC/../admin", 401),
        ("/public/..;/admin", 400),
        ("/public/.%2e/admin", 401),
        ("/public/..%5cadmin", 400),
        ("/public/x/../../admin", 401),
        ("//public/../admin", 401),
        ("/public;/../admin", 401),
        ("/public/..%3B/admin", 400),
        ("/publicx", 401),
        ("/public/a%00b", 400),
        ("/public/%zz", 400),
        ("/public/a%0d%0aX-User-Id:%201", 400),
        ("/public/a%7fb", 400),
    ];
    for (path, status) in refused {
        cases.push(case(
            &format!("path {path}"),
            path,
            &[],
            Expect::Refused(status),
        ));
    }
    let normalised = [
        (
            "/public//a/./b?q=1&r=%2F..%2F",
            "/public/a/b?q=1&r=%2F..%2F",
        ),
        ("/public/%7Euser/%41", "/public/~user/A"),
        ("/admin/../public/x", "/public/x"),
        ("/public/%252e%252e/admin", "/public/%252e%252e/admin"),
    ];
    for (path, target) in normalised {
        let expect = Expect::Forwarded {
            target,
            identity: false,
        };
        cases.push(case(
            &format!("normalised {path}"),
            path,
            &[("x-user-id", "1")],
            expect,
        ));
    }
    let auth = bearer(access);
    cases.push(case(
        "authorised-path",
        "/public/../admin/./panel",
        &[("authorization", &auth)],
        Expect::Forwarded {
            target: "/admin/panel",
            identity: true,
        },
    ));
    cases
}

#[test]
fn header_token_and_path_attacks_fare_over_h2c_as_over_http1() {
    let up = RawUpstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "server",
            "threads = 1\nupstream_read_timeout = \"5s\"\nh2c = true",
        )
        .route("/", "required")
        .route("/public", "public")
        .start();
    let (access, refresh) = tokens_for(&gw, "alice");
    let (revoked, _) = tokens_for(&gw, "mallory");
    let logout = with_token(gw.addr, "POST", "/logout", &revoked);
    assert_eq!(logout.status, 200, "{}", logout.text());
    let mut cases = header_cases(&access);
    cases.extend(token_cases(&access, &refresh, &revoked));
    cases.extend(path_cases(&access));
    let h2_cases: Vec<H2Case> = cases.iter().map(|c| c.h2.clone()).collect();
    let outcomes = send_cases(&H2Target::Cleartext(gw.addr), &h2_cases, |_| {});
    let h1: Vec<Resp> = cases.iter().map(|c| send_h1(&gw, &c.h2)).collect();
    let requests = up.complete_requests();
    let failures: Vec<String> = cases
        .iter()
        .zip(outcomes.iter().zip(&h1))
        .filter_map(|(case, (h2, h1))| {
            let name = &case.h2.name;
            let result = check(case, h2, h1, &requests);
            eprintln!(
                "{name}: h2 {:?} {:?}/{:?}, HTTP/1.1 {}",
                h2.status, h2.reset, h2.goaway, h1.status
            );
            result.err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
