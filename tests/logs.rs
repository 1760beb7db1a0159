//! The real binary's logs, as an operator sees them: JSON lines with one access event per
//! request and audit events, and never a password, a token or an Authorization value.

mod common;

use std::io::Read;
use std::process::Command;

use common::gateway::{free_addr, wait_for_port};
use common::*;
use serde_json::{json, Value};

#[test]
fn json_logs_carry_access_and_audit_events_and_no_secrets() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let (addr, ops) = (free_addr(), free_addr());
    let config = dir.path().join("authgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\nmetrics_listen = \"{ops}\"\nthreads = 1\n\
             [database]\nurl = \"{}\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n\
             [[upstreams]]\nname = \"backend\"\nservers = [\"{}\"]\n\
             [[routes]]\nprefix = \"/protected\"\nupstream = \"backend\"\n",
            dir.path().join("authgate.db").display(),
            up.addr
        ),
    )
    .unwrap();
    let mut child = common::cli::spawn_gateway(&config);
    wait_for_port(addr);

    let password = "Sup3r secret pässword";
    let reg = post_json(
        addr,
        "/register",
        &json!({"username": "logme", "email": "logme@example.com", "password": password}),
    );
    assert_eq!(reg.status, 201);
    let access = reg.json()["access_token"].as_str().unwrap().to_string();
    let refresh = reg.json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        post_json(
            addr,
            "/login",
            &json!({"username": "logme", "password": "wrong password 1"})
        )
        .status,
        401
    );
    assert_eq!(with_token(addr, "GET", "/protected", &access).status, 200);
    assert_eq!(with_token(addr, "POST", "/refresh", &refresh).status, 200);
    assert_eq!(with_token(addr, "POST", "/logout", &access).status, 200);
    assert_eq!(with_token(addr, "GET", "/protected", &access).status, 401);
    // Self-service: a wrong and a right password change, then the account's deletion.
    let again = post_json(
        addr,
        "/login",
        &json!({"username": "logme", "password": password}),
    );
    let session = again.json()["access_token"].as_str().unwrap().to_string();
    let new_password = "N3w secret pässword";
    let change = |current: &str, token: &str| {
        send(
            addr,
            "POST",
            "/password",
            &[("Authorization", &format!("Bearer {token}"))],
            Some(&json!({"current_password": current, "new_password": new_password}).to_string()),
        )
    };
    assert_eq!(change("wrong password 2", &session).status, 401);
    let changed = change(password, &session);
    assert_eq!(changed.status, 200, "{}", changed.text());
    let fresh = changed.json()["access_token"].as_str().unwrap().to_string();
    let deleted = send(
        addr,
        "DELETE",
        "/me",
        &[("Authorization", &format!("Bearer {fresh}"))],
        Some(&json!({"password": new_password}).to_string()),
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    // A graceful stop: every line queued for the log writer is written before exit.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success());

    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    for secret in [
        password,
        "wrong password 1",
        "wrong password 2",
        new_password,
        access.as_str(),
        refresh.as_str(),
        session.as_str(),
        fresh.as_str(),
        "Bearer",
    ] {
        assert!(!stderr.contains(secret), "the logs contain {secret:?}");
    }
    // pingora's background services may still report their own exit after it.
    let stopped = events
        .iter()
        .position(|e| e["message"] == json!("authgate stopped"))
        .expect("the shutdown is logged");
    assert!(
        events[stopped + 1..].iter().all(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("exited."))),
        "after the shutdown line only pingora's service exits: {:?}",
        &events[stopped + 1..]
    );
    let access_events: Vec<&Value> = events.iter().filter(|e| e["target"] == "access").collect();
    assert_eq!(access_events.len(), 10, "one access event per request");
    let proxied = access_events
        .iter()
        .find(|e| e["status"] == 200 && e["path"] == "/protected")
        .unwrap();
    assert_eq!(proxied["route"], "/protected");
    assert_eq!(proxied["user_id"], 1);
    assert_eq!(proxied["client_ip"], "127.0.0.1");
    assert_eq!(proxied["upstream"], "backend");
    assert!(proxied["duration_us"].is_u64());
    let audit: Vec<&str> = events
        .iter()
        .filter(|e| e["target"] == "audit")
        .filter_map(|e| e["event"].as_str())
        .collect();
    for expected in [
        "register",
        "login_failed",
        "refresh",
        "logout",
        "revoked_token_presented",
        "password_check_failed",
        "password_changed",
        "account_deleted",
    ] {
        assert!(
            audit.contains(&expected),
            "no audit event {expected}: {audit:?}"
        );
    }
    let failure = events
        .iter()
        .find(|e| e["event"] == "login_failed")
        .unwrap();
    assert_eq!(failure["reason"], "invalid_credentials");
}

/// `[log] access` names a file: access lines go there (and not to stderr), and after the
/// file is moved away (as logrotate does) SIGUSR1 makes the gateway write a new one.
#[test]
fn access_lines_go_to_their_file_which_is_reopened_on_sigusr1() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let (addr, ops) = (free_addr(), free_addr());
    let config = dir.path().join("authgate.toml");
    let access_log = dir.path().join("access.log");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\nmetrics_listen = \"{ops}\"\nthreads = 1\n\
             [database]\nurl = \"{}\"\n[log]\nformat = \"json\"\naccess = \"{}\"\n\
             [[upstreams]]\nname = \"backend\"\nservers = [\"{}\"]\n\
             [[routes]]\nprefix = \"/public\"\nupstream = \"backend\"\nauth = \"public\"\n",
            dir.path().join("authgate.db").display(),
            access_log.display(),
            up.addr
        ),
    )
    .unwrap();
    let mut child = common::cli::spawn_gateway(&config);
    wait_for_port(addr);
    let wait_for_line = |path: &std::path::Path, target: &str| -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.iter().any(|l| l["path"] == target) {
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no access line for {target} in {}: {text}",
                path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert_eq!(send(addr, "GET", "/public/first", &[], None).status, 200);
    let first = wait_for_line(&access_log, "/public/first");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], 200);
    assert_eq!(first[0]["target"], "access");

    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&access_log, &rotated).unwrap();
    let signalled = Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    // The reopen is asynchronous: requests are sent until one lands in the new file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert_eq!(send(addr, "GET", "/public/second", &[], None).status, 200);
        let new = std::fs::read_to_string(&access_log).unwrap_or_default();
        if new.contains("/public/second") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line in a new access log"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("/public/first"), "{old}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    assert!(
        !stderr.contains("\"target\":\"access\""),
        "access lines reached stderr: {stderr}"
    );
}
