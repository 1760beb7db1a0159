//! The token lifecycle beyond the original: refresh rotation with reuse detection, logout
//! everywhere, deactivation, and the admin CLI acting on a running gateway.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn refresh(gw: &TestGateway, token: &str) -> Resp {
    with_token(gw.addr, "POST", "/refresh", token)
}

fn field(resp: &Resp, name: &str) -> String {
    resp.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", resp.text()))
        .to_string()
}

#[test]
fn refresh_rotates_and_a_reused_refresh_token_revokes_the_session() {
    let (gw, up) = standard();
    let (access, first_refresh) = tokens_for(&gw, "alice");
    let rotated = refresh(&gw, &first_refresh);
    assert_eq!(rotated.status, 200);
    let second_refresh = field(&rotated, "refresh_token");
    let new_access = field(&rotated, "access_token");
    assert_ne!(second_refresh, first_refresh);
    // The rotated token works once...
    let again = refresh(&gw, &second_refresh);
    assert_eq!(again.status, 200);
    let third_refresh = field(&again, "refresh_token");
    // ...and the first one, presented again, is theft: the whole session dies.
    let reuse = refresh(&gw, &first_refresh);
    assert_eq!(
        (reuse.status, reuse.msg().as_str()),
        (401, "Token has been revoked")
    );
    for token in [&access, &new_access] {
        assert_eq!(
            with_token(gw.addr, "GET", "/protected", token).msg(),
            "Token has been revoked"
        );
    }
    assert_eq!(refresh(&gw, &third_refresh).msg(), "Token has been revoked");
    assert_eq!(up.count(), 0);
    let metrics = send(gw.ops_addr, "GET", "/metrics", &[], None).text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "authgate_refresh_reuse_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_grace_window_lets_a_client_retry_a_lost_refresh() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "tokens",
            &format!("secret = \"{SECRET}\"\nreuse_grace = \"30s\""),
        )
        .route("/protected", "required")
        .start();
    let (_, refresh_token) = tokens_for(&gw, "alice");
    assert_eq!(refresh(&gw, &refresh_token).status, 200);
    let retried = refresh(&gw, &refresh_token);
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert_eq!(
        with_token(
            gw.addr,
            "GET",
            "/protected",
            &field(&retried, "access_token")
        )
        .status,
        200
    );
}

#[test]
fn without_rotation_refresh_behaves_like_the_original() {
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section(
            "tokens",
            &format!("secret = \"{SECRET}\"\nrotate_refresh = false"),
        )
        .route("/protected", "required")
        .start();
    let (_, refresh_token) = tokens_for(&gw, "alice");
    for _ in 0..2 {
        let resp = refresh(&gw, &refresh_token);
        assert_eq!(resp.status, 200);
        assert!(resp.json().get("refresh_token").is_none());
    }
}

#[test]
fn logout_everywhere_ends_every_session_of_the_user_only() {
    let (gw, _up) = standard();
    let (first, first_refresh) = tokens_for(&gw, "alice");
    let second = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    let second = field(&second, "access_token");
    let (bob, _) = tokens_for(&gw, "bob");
    let resp = with_token(gw.addr, "POST", "/logout/all", &second);
    assert_eq!(
        (resp.status, resp.msg().as_str()),
        (200, "Successfully logged out from all sessions")
    );
    for token in [&first, &second] {
        assert_eq!(
            with_token(gw.addr, "GET", "/protected", token).msg(),
            "Token has been revoked"
        );
    }
    assert_eq!(refresh(&gw, &first_refresh).msg(), "Token has been revoked");
    assert_eq!(with_token(gw.addr, "GET", "/protected", &bob).status, 200);
    // Logging in again right away gives a working session.
    let fresh = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &field(&fresh, "access_token")).status,
        200
    );
}

fn admin(gw: &TestGateway, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(&gw.config_path)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for_status(gw: &TestGateway, token: &str, status: u16) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let resp = with_token(gw.addr, "GET", "/protected", token);
        if resp.status == status {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after 3 s: {}",
            resp.status,
            resp.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn admin_cli_lists_shows_and_deactivates_users_on_a_running_gateway() {
    let (gw, _up) = standard();
    let (access, refresh_token) = tokens_for(&gw, "alice");
    register(&gw, "bob");

    let (ok, out, _) = admin(&gw, &["users", "list", "--json"]);
    assert!(ok);
    let users: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "bob"]);
    let (ok, out, _) = admin(&gw, &["users", "list"]);
    assert!(
        ok && out.starts_with("ID") && out.contains("alice@example.com"),
        "{out}"
    );
    let (ok, out, _) = admin(&gw, &["users", "show", "ALICE", "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["active"], true);

    let (ok, _, _) = admin(&gw, &["users", "deactivate", "alice"]);
    assert!(ok);
    let resp = wait_for_status(&gw, &access, 401);
    assert_eq!(resp.msg(), "Token has been revoked");
    let login = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(login.msg(), "Account is deactivated");
    assert_eq!(refresh(&gw, &refresh_token).status, 401);

    let (ok, _, _) = admin(&gw, &["users", "activate", "alice"]);
    assert!(ok);
    let login = post_json(
        gw.addr,
        "/login",
        &json!({"username": "alice", "password": "Password123"}),
    );
    assert_eq!(login.status, 200);
    wait_for_status(&gw, &field(&login, "access_token"), 200);
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &access).status,
        401,
        "old sessions stay ended"
    );

    let (ok, _, err) = admin(&gw, &["users", "show", "nobody"]);
    assert!(!ok && err.contains("no user named"), "{err}");
}

#[test]
fn admin_revoke_sessions_reaches_the_running_gateway() {
    let (gw, _up) = standard();
    let (access, _) = tokens_for(&gw, "carol");
    assert_eq!(
        with_token(gw.addr, "GET", "/protected", &access).status,
        200
    );
    let (ok, out, _) = admin(&gw, &["users", "revoke-sessions", "carol"]);
    assert!(ok && out.contains("sessions revoked"), "{out}");
    assert_eq!(
        wait_for_status(&gw, &access, 401).msg(),
        "Token has been revoked"
    );
}

#[test]
fn forward_auth_answers_204_with_identity_or_401() {
    let (gw, up) = standard();
    let (access, refresh_token) = tokens_for(&gw, "alice");
    let ok = with_token(gw.addr, "GET", "/auth/verify", &access);
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("x-user-id"), Some("1"));
    assert_eq!(ok.header("x-user-name"), Some("alice"));
    assert!(ok.body.is_empty());
    let missing = send(gw.addr, "GET", "/auth/verify", &[], None);
    assert_eq!(
        (missing.status, missing.msg().as_str()),
        (401, "Unauthorized: Missing Authorization Header")
    );
    let wrong = with_token(gw.addr, "GET", "/auth/verify", &refresh_token);
    assert_eq!(
        wrong.msg(),
        "Invalid token: Only non-refresh tokens are allowed"
    );
    assert_eq!(up.count(), 0);
}
