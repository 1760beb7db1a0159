//! The binary raises its soft open-files limit to the hard limit at start and logs it, so
//! a gateway started from a shell or a unit with the usual soft limit of 1,024 can hold
//! more connections than that.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::gateway::{free_addr, wait_for_port};

/// (soft, hard) "Max open files" of a running process, from /proc.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, upstream) = (free_addr(), free_addr());
    let config = dir.path().join("authgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\n[database]\nurl = \"{}\"\n[log]\nlevel = \"info\"\n\
             [[upstreams]]\nname = \"backend\"\nservers = [\"{upstream}\"]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"backend\"\n",
            dir.path().join("authgate.db").display(),
        ),
    )
    .unwrap();
    // Started the way a login shell would: a soft limit of 256 under a higher hard limit.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {} --config {}",
            env!("CARGO_BIN_EXE_authgate"),
            config.display()
        ))
        .env_remove("RUST_LOG")
        .env_remove("JWT_SECRET_KEY")
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(addr);
    let (soft, hard) = open_files_limits(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let log: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let line = log
        .iter()
        .find(|l| l.contains("open files limit"))
        .unwrap_or_else(|| panic!("no open files line in {log:#?}"));
    assert_ne!(
        hard, "256",
        "this machine's hard limit leaves nothing to raise"
    );
    assert_eq!(soft, hard, "soft limit not raised");
    assert!(line.contains("open files limit raised"), "{line}");
    assert!(line.contains("from=256"), "{line}");
}
