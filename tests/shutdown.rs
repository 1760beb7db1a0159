//! Stopping the real binary: Ctrl-C (SIGINT) and SIGTERM both stop it gracefully and at
//! once, with its last log line written, and never leave it spinning.

mod common;

use std::io::Read;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::gateway::{free_addr, wait_for_port};
use common::*;

fn start(
    dir: &std::path::Path,
    up: std::net::SocketAddr,
) -> (Child, std::net::SocketAddr, std::net::SocketAddr) {
    let (addr, ops) = (free_addr(), free_addr());
    let config = dir.join("authgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\nmetrics_listen = \"{ops}\"\n\
             [database]\nurl = \"{}\"\n[log]\nlevel = \"info\"\n\
             [[upstreams]]\nname = \"backend\"\nservers = [\"{up}\"]\n\
             [[routes]]\nprefix = \"/public\"\nupstream = \"backend\"\nauth = \"public\"\n",
            dir.join("authgate.db").display(),
        ),
    )
    .unwrap();
    let child = common::cli::spawn_gateway(&config);
    wait_for_port(addr);
    wait_for_port(ops);
    (child, addr, ops)
}

/// Sends `signal`, waits at most 10 s for the exit, and returns its stderr.
fn stop_with(mut child: Child, signal: &str) -> String {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("still running 10 s after SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success(),
        "exit {status:?} after SIG{signal}\n{stderr}"
    );
    stderr
}

#[test]
fn ctrl_c_and_sigterm_stop_the_gateway_gracefully() {
    let up = Upstream::start();
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let (child, addr, ops) = start(dir.path(), up.addr);
        assert_eq!(send(addr, "GET", "/public/x", &[], None).status, 200);
        assert_eq!(send(ops, "GET", "/metrics", &[], None).status, 200);
        // Idle keep-alive clients on both listeners, as a browser or a scraper leaves them.
        let idle: Vec<std::net::TcpStream> = [addr, ops]
            .into_iter()
            .map(|a| {
                let mut s = std::net::TcpStream::connect(a).unwrap();
                std::io::Write::write_all(&mut s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let mut buf = [0u8; 512];
                assert!(std::io::Read::read(&mut s, &mut buf).unwrap() > 0);
                s
            })
            .collect();
        let stderr = stop_with(child, signal);
        drop(idle);
        let accept_errors = stderr.matches("Accept() failed").count();
        assert_eq!(
            accept_errors, 0,
            "SIG{signal}: {accept_errors} accept errors"
        );
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        assert!(
            last.is_some_and(|l| l.contains("authgate stopped")),
            "SIG{signal}: last line {last:?}"
        );
    }
}
