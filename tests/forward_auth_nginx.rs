//! authgate as the `auth_request` backend of Debian's nginx, guarding a service authgate
//! does not front itself. `.ci/run` installs nginx when it is missing.

mod common;

use std::process::{Child, Command, Stdio};

use common::cli::authgate_ok;
use common::gateway::{free_addr, wait_for_port};
use common::*;

/// nginx in the foreground on a temporary prefix; killed on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> &'static str {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is required for this test (apt-get install -y nginx; .ci/run does it)")
}

fn start_nginx(
    gateway: std::net::SocketAddr,
    backend: std::net::SocketAddr,
) -> (Nginx, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen {listen};\n\
             location = /_authgate {{\n      internal;\n      proxy_pass http://{gateway}/auth/verify;\n\
               proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n    }}\n\
             location / {{\n      auth_request /_authgate;\n      auth_request_set $authgate_user $upstream_http_x_user_id;\n\
               proxy_set_header X-User-Id $authgate_user;\n      proxy_pass http://{backend};\n    }}\n\
             location = /_authgate_admin {{\n      internal;\n      proxy_pass http://{gateway}/auth/verify?roles=admin;\n\
               proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n    }}\n\
             location /admin/ {{\n      auth_request /_authgate_admin;\n\
               auth_request_set $authgate_user $upstream_http_x_user_id;\n\
               auth_request_set $authgate_roles $upstream_http_x_user_roles;\n\
               proxy_set_header X-User-Id $authgate_user;\n      proxy_set_header X-User-Roles $authgate_roles;\n\
               proxy_pass http://{backend};\n    }}\n  }}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(nginx_binary())
        .args(["-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let guard = Nginx(child);
    wait_for_port(listen);
    (guard, listen, dir)
}

#[test]
fn nginx_auth_request_lets_valid_tokens_through_with_the_identity() {
    let backend = Upstream::start();
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .start();
    let (_nginx, nginx_addr, _dir) = start_nginx(gw.addr, backend.addr);
    let (access, _) = tokens_for(&gw, "alice");

    let auth = format!("Bearer {access}");
    let ok = send(
        nginx_addr,
        "GET",
        "/orders/7",
        &[("Authorization", auth.as_str()), ("X-User-Id", "999")],
        None,
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let seen = backend.last();
    assert_eq!(seen.target, "/orders/7");
    assert_eq!(seen.header_values("x-user-id"), vec!["1"]);

    let denied = send(nginx_addr, "GET", "/orders/8", &[("X-User-Id", "1")], None);
    assert_eq!(denied.status, 401);
    let forged = send(
        nginx_addr,
        "GET",
        "/orders/9",
        &[("Authorization", "Bearer not.a.token")],
        None,
    );
    assert_eq!(forged.status, 401);
    with_token(gw.addr, "POST", "/logout", &access);
    let revoked = send(
        nginx_addr,
        "GET",
        "/orders/10",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(revoked.status, 401);
    assert_eq!(
        backend.count(),
        1,
        "only the valid request reached the backend"
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn nginx_auth_request_checks_the_roles_its_own_url_names() {
    let backend = Upstream::start();
    let up = Upstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .route("/protected", "required")
        .start();
    let (_nginx, nginx_addr, _dir) = start_nginx(gw.addr, backend.addr);
    let (access, refresh) = tokens_for(&gw, "alice");
    let auth = format!("Bearer {access}");

    // Neither a header nor the client's own query string can supply the role: the
    // subrequest carries the client's headers, but its URL is nginx's configuration.
    for target in [
        "/admin/panel",
        "/admin/panel?roles=ops",
        "/admin/panel?roles=",
    ] {
        let refused = send(
            nginx_addr,
            "GET",
            target,
            &[("Authorization", auth.as_str()), ("X-User-Roles", "admin")],
            None,
        );
        assert_eq!(refused.status, 403, "{target}: {}", refused.text());
    }
    assert_eq!(
        send(nginx_addr, "GET", "/admin/panel", &[], None).status,
        401
    );
    assert_eq!(backend.count(), 0);
    // The location without roles still lets the role-less token through.
    let plain = send(
        nginx_addr,
        "GET",
        "/orders/1",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(plain.status, 200);

    authgate_ok(&gw, &["users", "grant", "alice", "admin"], None);
    let refreshed = with_token(gw.addr, "POST", "/refresh", &refresh);
    let admin_access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = send(
        nginx_addr,
        "GET",
        "/admin/panel",
        &[("Authorization", &format!("Bearer {admin_access}"))],
        None,
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let seen = backend.last();
    assert_eq!(seen.target, "/admin/panel");
    assert_eq!(seen.header_values("x-user-roles"), vec!["admin"]);
    assert_eq!(seen.header_values("x-user-id"), vec!["1"]);
    assert_eq!(backend.count(), 2);
    assert_eq!(up.count(), 0);
}
