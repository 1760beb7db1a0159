//! Routes that require a role: refused (403) without it, passed with it after a grant and
//! a refresh, the roles sent upstream as a verified header that no client can set, and a
//! revoked role ending the user's sessions on every gateway sharing the database.

mod common;

use std::time::{Duration, Instant};

use common::cli::{authgate, authgate_ok};
use common::*;
use serde_json::{json, Value};

const ADMIN_ROUTE: &str = "prefix = \"/admin\"\nupstream = \"backend\"\nauth = \"required\"\nroles = [\"admin\", \"ops\"]";

fn gateway(up: &Upstream) -> GatewayBuilder {
    GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .route_with(ADMIN_ROUTE)
}

fn field(resp: &Resp, name: &str) -> String {
    resp.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", resp.text()))
        .to_string()
}

fn login(gw: &TestGateway, username: &str, password: &str) -> Resp {
    post_json(
        gw.addr,
        "/login",
        &json!({"username": username, "password": password}),
    )
}

fn metric(gw: &TestGateway, line_start: &str) -> Option<String> {
    send(gw.ops_addr, "GET", "/metrics", &[], None)
        .text()
        .lines()
        .find(|l| l.starts_with(line_start))
        .map(str::to_string)
}

#[test]
fn a_role_route_refuses_without_the_role_and_passes_after_grant_and_refresh() {
    let up = Upstream::start();
    let gw = gateway(&up).start();
    let (access, refresh) = tokens_for(&gw, "alice");

    let refused = with_token(gw.addr, "GET", "/admin/users", &access);
    assert_eq!(
        (refused.status, refused.msg().as_str()),
        (403, "Forbidden: insufficient role")
    );
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(up.count(), 0, "nothing is forwarded for a 403");
    assert_eq!(
        metric(&gw, "authgate_auth_failures_total{reason=\"forbidden\"}").as_deref(),
        Some("authgate_auth_failures_total{reason=\"forbidden\"} 1")
    );

    let out = authgate_ok(&gw, &["users", "grant", "alice", "admin"], None);
    assert!(out.contains("role granted"), "{out}");
    // A grant reaches tokens at the next refresh or login, not before.
    assert_eq!(
        with_token(gw.addr, "GET", "/admin/users", &access).status,
        403
    );
    let refreshed = with_token(gw.addr, "POST", "/refresh", &refresh);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let admin_access = field(&refreshed, "access_token");
    let passed = send(
        gw.addr,
        "GET",
        "/admin/users",
        &[
            ("Authorization", &format!("Bearer {admin_access}")),
            ("X-User-Roles", "superuser"),
        ],
        None,
    );
    assert_eq!(passed.status, 200, "{}", passed.text());
    let seen = up.last();
    assert_eq!(seen.target, "/admin/users");
    assert_eq!(seen.header_values("x-user-roles"), vec!["admin"]);
    assert_eq!(seen.header_values("x-user-name"), vec!["alice"]);

    let shown: Value = serde_json::from_str(&authgate_ok(
        &gw,
        &["users", "show", "alice", "--json"],
        None,
    ))
    .unwrap();
    assert_eq!(shown["roles"], json!(["admin"]));
    let listed = authgate_ok(&gw, &["users", "list"], None);
    assert!(
        listed.lines().next().unwrap().ends_with("ROLES")
            && listed.lines().nth(1).unwrap().ends_with("admin"),
        "{listed}"
    );
}

#[test]
fn a_client_sent_roles_header_never_reaches_the_upstream() {
    let up = Upstream::start();
    let gw = gateway(&up).route("/public", "public").start();
    let (access, _) = tokens_for(&gw, "bob");
    let bearer = format!("Bearer {access}");
    for (path, auth) in [("/protected/x", Some(bearer.as_str())), ("/public/x", None)] {
        let mut headers = vec![
            ("X-User-Roles", "admin"),
            ("x_user_roles", "admin"),
            ("X-USER-ROLES", "admin"),
        ];
        headers.extend(auth.map(|a| ("Authorization", a)));
        let resp = send(gw.addr, "GET", path, &headers, None);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        let seen = up.last();
        assert!(
            !seen
                .header_names()
                .iter()
                .any(|n| n.replace('_', "-") == "x-user-roles"),
            "{path}: {:?}",
            seen.headers
        );
    }
    let forged = send(
        gw.addr,
        "GET",
        "/admin",
        &[("Authorization", &bearer), ("X-User-Roles", "admin")],
        None,
    );
    assert_eq!(forged.status, 403);
    assert_eq!(up.count(), 2);
}

#[test]
fn revoking_a_role_ends_the_sessions_on_every_gateway_sharing_the_database() {
    let up = Upstream::start();
    let interval = Duration::from_millis(500);
    let first = gateway(&up)
        .section("database", "sync_interval = \"500ms\"")
        .start();
    let second = gateway(&up)
        .section("database", "sync_interval = \"500ms\"")
        .database_of(&first)
        .start();
    let out = authgate_ok(
        &first,
        &[
            "users",
            "create",
            "root",
            "--email",
            "root@example.com",
            "--password-stdin",
            "--role",
            "admin",
            "--role",
            "ops",
        ],
        Some("Bootstrap123\n"),
    );
    assert!(out.contains("created"), "{out}");
    let session = login(&first, "root", "Bootstrap123");
    assert_eq!(session.status, 200, "{}", session.text());
    let (access, refresh) = (
        field(&session, "access_token"),
        field(&session, "refresh_token"),
    );
    for gw in [&first, &second] {
        let resp = with_token(gw.addr, "GET", "/admin", &access);
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(up.last().header_values("x-user-roles"), vec!["admin,ops"]);
    }
    let (bob_access, _) = tokens_for(&first, "bob");

    let out = authgate_ok(&first, &["users", "revoke-role", "root", "admin"], None);
    assert!(out.contains("role revoked, sessions ended"), "{out}");
    let revoked_at = Instant::now();
    let mut pending = vec![&first, &second];
    while !pending.is_empty() {
        pending.retain(|gw| {
            let resp = with_token(gw.addr, "GET", "/protected", &access);
            resp.status != 401 || resp.msg() != "Token has been revoked"
        });
        assert!(
            revoked_at.elapsed() <= 2 * interval,
            "still accepted after two sync intervals ({:?})",
            revoked_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "revoked role refused on both gateways {:?} after the command returned (sync interval {interval:?})",
        revoked_at.elapsed()
    );
    for gw in [&first, &second] {
        assert_eq!(
            with_token(gw.addr, "POST", "/refresh", &refresh).msg(),
            "Token has been revoked"
        );
        assert_eq!(
            with_token(gw.addr, "GET", "/protected", &bob_access).status,
            200,
            "other users keep their sessions"
        );
    }
    // Logging in again gives a token with the roles left: ops still passes.
    let again = login(&second, "root", "Bootstrap123");
    let fresh = field(&again, "access_token");
    assert_eq!(with_token(second.addr, "GET", "/admin", &fresh).status, 200);
    assert_eq!(up.last().header_values("x-user-roles"), vec!["ops"]);
    authgate_ok(&first, &["users", "revoke-role", "root", "ops"], None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while with_token(second.addr, "GET", "/protected", &fresh).status != 401 {
        assert!(
            Instant::now() < deadline,
            "the second revocation never arrived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let last = login(&second, "root", "Bootstrap123");
    assert_eq!(
        with_token(second.addr, "GET", "/admin", &field(&last, "access_token")).status,
        403
    );
}

#[test]
fn the_cli_refuses_bad_roles_and_bad_accounts() {
    let up = Upstream::start();
    let gw = gateway(&up).start();
    register(&gw, "carol");
    let bad = authgate(&gw, &["users", "grant", "carol", "Admin"], None);
    assert!(
        !bad.ok && bad.stderr.contains("is not a role name"),
        "{}",
        bad.stderr
    );
    let nobody = authgate(&gw, &["users", "grant", "nobody", "admin"], None);
    assert!(!nobody.ok && nobody.stderr.contains("no user named"));
    for i in 0..16 {
        authgate_ok(&gw, &["users", "grant", "carol", &format!("r{i}")], None);
    }
    let seventeenth = authgate(&gw, &["users", "grant", "carol", "r16"], None);
    assert!(
        !seventeenth.ok && seventeenth.stderr.contains("at most 16 roles"),
        "{}",
        seventeenth.stderr
    );
    let weak = authgate(
        &gw,
        &[
            "users",
            "create",
            "dave",
            "--email",
            "dave@example.com",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(
        !weak.ok && weak.stderr.contains("at least 8 characters"),
        "{}",
        weak.stderr
    );
    let taken = authgate(
        &gw,
        &[
            "users",
            "create",
            "CAROL",
            "--email",
            "c2@example.com",
            "--password-stdin",
        ],
        Some("Password123\n"),
    );
    assert!(!taken.ok && taken.stderr.contains("username already exists"));
    let no_stdin_flag = authgate(
        &gw,
        &["users", "create", "erin", "--email", "erin@example.com"],
        None,
    );
    assert!(!no_stdin_flag.ok, "the password must come from stdin");
}

#[test]
fn roles_on_a_public_route_or_badly_named_are_refused_at_start() {
    let parse = |route: &str| {
        let text = format!(
            "[[upstreams]]\nname = \"backend\"\nservers = [\"127.0.0.1:9\"]\n[[routes]]\n{route}\n"
        );
        let file = authgate::config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        authgate::config::Config::try_from(file).map(|_| ())
    };
    assert!(parse(ADMIN_ROUTE).is_ok());
    let public =
        parse("prefix = \"/a\"\nupstream = \"backend\"\nauth = \"public\"\nroles = [\"admin\"]")
            .unwrap_err()
            .to_string();
    assert!(public.contains("routes[0].roles"), "{public}");
    let named = parse("prefix = \"/a\"\nupstream = \"backend\"\nroles = [\"Admin\"]")
        .unwrap_err()
        .to_string();
    assert!(named.contains("routes[0].roles"), "{named}");
}

#[test]
fn forward_auth_takes_required_roles_from_its_query_only() {
    let up = Upstream::start();
    let gw = gateway(&up).start();
    let (access, refresh) = tokens_for(&gw, "alice");
    let verify = |target: &str, token: &str| {
        send(
            gw.addr,
            "GET",
            target,
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("X-User-Roles", "admin"),
            ],
            None,
        )
    };
    let plain = verify("/auth/verify", &access);
    assert_eq!(plain.status, 204);
    assert_eq!(plain.header("x-user-roles"), None);
    let forbidden = verify("/auth/verify?roles=admin,ops", &access);
    assert_eq!(
        (forbidden.status, forbidden.msg().as_str()),
        (403, "Forbidden: insufficient role")
    );
    for bad in [
        "/auth/verify?roles=",
        "/auth/verify?roles=Admin",
        "/auth/verify?roles=a&roles=b",
    ] {
        let resp = verify(bad, &access);
        assert_eq!(resp.status, 400, "{bad}");
        assert!(
            resp.msg().starts_with("Bad request: "),
            "{bad}: {}",
            resp.msg()
        );
    }
    let missing = send(gw.addr, "GET", "/auth/verify?roles=admin", &[], None);
    assert_eq!(missing.status, 401);

    authgate_ok(&gw, &["users", "grant", "alice", "ops"], None);
    let refreshed = with_token(gw.addr, "POST", "/refresh", &refresh);
    let ops_access = field(&refreshed, "access_token");
    let passed = verify("/auth/verify?roles=admin%2Cops", &ops_access);
    assert_eq!(passed.status, 204, "{}", passed.text());
    assert_eq!(passed.header("x-user-roles"), Some("ops"));
    assert_eq!(passed.header("x-user-name"), Some("alice"));
    assert_eq!(up.count(), 0);
}
