//! POST /register, row by row of the contract's table, over real HTTP.

mod common;

use common::*;
use serde_json::json;

#[test]
fn registers_and_returns_user_and_tokens() {
    let (gw, _up) = standard();
    let resp = post_json(
        gw.addr,
        "/register",
        &json!({"username": "alice", "email": "alice@example.com", "password": "Password123"}),
    );
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["msg"], "User registered successfully");
    assert!(body["user"]["id"].is_i64(), "user.id is an integer: {body}");
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(
        body["refresh_token"].as_str().unwrap().split('.').count(),
        3
    );
}

#[test]
fn body_must_be_a_json_object() {
    let (gw, _up) = standard();
    for body in [
        "not json",
        "[1, 2]",
        "\"string\"",
        "",
        "{\"username\": \"a\", \"username\": \"b\"}",
    ] {
        let resp = send(
            gw.addr,
            "POST",
            "/register",
            &[("Content-Type", "application/json")],
            Some(body),
        );
        assert_eq!(
            (resp.status, resp.msg()),
            (400, "Missing JSON in request".to_string()),
            "body {body:?}"
        );
    }
}

#[test]
fn missing_or_null_fields_are_listed_in_order() {
    let (gw, _up) = standard();
    let cases = [
        (
            json!({"password": "Password123"}),
            "Missing required fields: username, email",
        ),
        (
            json!({"username": "bob", "email": null}),
            "Missing required fields: email, password",
        ),
        (
            json!({}),
            "Missing required fields: username, email, password",
        ),
    ];
    for (body, msg) in cases {
        let resp = post_json(gw.addr, "/register", &body);
        assert_eq!(
            (resp.status, resp.msg().as_str()),
            (400, msg),
            "body {body}"
        );
    }
}

#[test]
fn format_checks_run_in_contract_order() {
    let (gw, _up) = standard();
    let username_msg = "Invalid username format. Use only letters, numbers, and underscores.";
    let email_msg = "Invalid email format.";
    let password_msg =
        "Password must be at least 8 characters and contain at least one letter and one number.";
    let cases = [
        (
            json!({"username": "bad name", "email": "nope", "password": "x"}),
            username_msg,
        ),
        (
            json!({"username": "robert'); DROP TABLE users;--", "email": "a@b.co", "password": "Password123"}),
            username_msg,
        ),
        (
            json!({"username": "bob", "email": "not-an-email", "password": "x"}),
            email_msg,
        ),
        (
            json!({"username": "bob", "email": "bob@localhost", "password": "Password123"}),
            email_msg,
        ),
        (
            json!({"username": "bob", "email": "bob@example.com", "password": "short1"}),
            password_msg,
        ),
        (
            json!({"username": "bob", "email": "bob@example.com", "password": "onlyletters"}),
            password_msg,
        ),
        (
            json!({"username": "bob", "email": "bob@example.com", "password": "123456789"}),
            password_msg,
        ),
    ];
    for (body, msg) in cases {
        let resp = post_json(gw.addr, "/register", &body);
        assert_eq!(
            (resp.status, resp.msg().as_str()),
            (400, msg),
            "body {body}"
        );
    }
}

#[test]
fn any_printable_password_up_to_128_characters() {
    let (gw, _up) = standard();
    for (i, password) in [
        "correct horse battery 9",
        "pässwörd 1 日本語",
        "p@$$w0rd with \"quotes\" and ' -- ;",
    ]
    .iter()
    .enumerate()
    {
        let resp = post_json(
            gw.addr,
            "/register",
            &json!({"username": format!("u{i}"), "email": format!("u{i}@example.com"), "password": password}),
        );
        assert_eq!(resp.status, 201, "password {password:?}: {}", resp.text());
        let login = post_json(
            gw.addr,
            "/login",
            &json!({"username": format!("u{i}"), "password": password}),
        );
        assert_eq!(login.status, 200, "login with {password:?}");
    }
    let exactly_128 = format!("a1{}", "b".repeat(126));
    let resp = post_json(
        gw.addr,
        "/register",
        &json!({"username": "max", "email": "max@example.com", "password": exactly_128}),
    );
    assert_eq!(resp.status, 201);
    let too_long = format!("a1{}", "b".repeat(127));
    let resp = post_json(
        gw.addr,
        "/register",
        &json!({"username": "over", "email": "over@example.com", "password": too_long}),
    );
    assert_eq!(resp.status, 400);
    // Not truncated: the 128-character password does not log in with 127 of its characters.
    let resp = post_json(
        gw.addr,
        "/login",
        &json!({"username": "max", "password": format!("a1{}", "b".repeat(125))}),
    );
    assert_eq!(resp.status, 401);
}

#[test]
fn uniqueness_is_case_insensitive_and_username_is_reported_first() {
    let (gw, _up) = standard();
    register(&gw, "admin");
    let resp = post_json(
        gw.addr,
        "/register",
        &json!({"username": "Admin", "email": "other@example.com", "password": "Password123"}),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (409, "Username already exists")
    );
    let resp = post_json(
        gw.addr,
        "/register",
        &json!({"username": "other", "email": "ADMIN@Example.com", "password": "Password123"}),
    );
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (409, "Email already exists")
    );
    let resp = post_json(
        gw.addr,
        "/register",
        &json!({"username": "ADMIN", "email": "admin@example.com", "password": "Password123"}),
    );
    assert_eq!(resp.msg(), "Username already exists");
}

#[test]
fn concurrent_registrations_of_one_name_create_one_account() {
    let (gw, _up) = standard();
    let addr = gw.addr;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                post_json(addr, "/register", &json!({"username": "race", "email": format!("race{i}@example.com"), "password": "Password123"})).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
}

#[test]
fn wrong_method_and_wrong_content_type() {
    let (gw, _up) = standard();
    let resp = send(gw.addr, "GET", "/register", &[], None);
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let resp = send(
        gw.addr,
        "POST",
        "/register",
        &[("Content-Type", "text/plain")],
        Some("{}"),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(resp.msg(), "Missing JSON in request");
    assert_eq!(resp.header("content-type"), Some("application/json"));
}

/// A client of the original service that posts a form gets the contract's 400, at both
/// endpoints that take a body, and no account is made.
#[test]
fn a_form_encoded_body_gets_missing_json() {
    let (gw, _up) = standard();
    for path in ["/register", "/login"] {
        let resp = send(
            gw.addr,
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some("username=formuser&email=f%40example.com&password=Password123"),
        );
        assert_eq!(resp.status, 400, "{path}");
        assert_eq!(resp.msg(), "Missing JSON in request", "{path}");
    }
    let users = gw
        .db()
        .query_i64("SELECT COUNT(*) FROM users WHERE username = 'formuser'");
    assert_eq!(users, 0);
}

#[test]
fn stored_hash_is_argon2id_with_owasp_parameters() {
    let (gw, _up) = standard();
    register(&gw, "hashme");
    let hash = gw
        .db()
        .query_string("SELECT password_hash FROM users WHERE username = 'hashme'");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("Password123"));
}
