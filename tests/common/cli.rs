//! Runs the real `authgate` binary against a test gateway's config and database, the way
//! an operator would on the same machine.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::gateway::TestGateway;

/// What a command printed, and whether it succeeded.
pub struct CliOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `authgate --config <gw's config> ARGS`, with `stdin` written to its standard input.
pub fn authgate(gw: &TestGateway, args: &[&str], stdin: Option<&str>) -> CliOutput {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(&gw.config_path)
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authgate");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("authgate finishes");
    CliOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`authgate`] that must succeed; returns its standard output.
pub fn authgate_ok(gw: &TestGateway, args: &[&str], stdin: Option<&str>) -> String {
    let out = authgate(gw, args, stdin);
    assert!(
        out.ok,
        "authgate {args:?} failed: {}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// The gateway binary started on `config`, its log on a pipe, with none of this
/// environment's overrides (`RUST_LOG`, `JWT_SECRET_KEY`, `DATABASE_URL`).
pub fn spawn_gateway(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("JWT_SECRET_KEY")
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start authgate")
}
