//! The real `authgate` binary as a process of its own, its log in a file: signalled, and
//! waited for, the way an operator (or systemd) drives it. Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running gateway process.
pub struct GatewayProcess {
    pub child: Child,
    pub log_path: PathBuf,
}

impl GatewayProcess {
    /// `authgate --config CONFIG EXTRA...`, its stderr in `log_path`, without this
    /// environment's overrides (`RUST_LOG`, `JWT_SECRET_KEY`, `DATABASE_URL`).
    pub fn spawn(config: &Path, extra: &[&str], log_path: PathBuf) -> Self {
        let log = std::fs::File::create(&log_path).expect("create the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
            .arg("--config")
            .arg(config)
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("JWT_SECRET_KEY")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start authgate");
        Self { child, log_path }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`HUP`, `QUIT`, `TERM`...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {}", self.pid());
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the process has exited (reaped).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Polls for the exit for at most `limit`; `None` if it is still running.
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls the log for a line containing `text`, for at most `limit`; when it appeared.
    pub fn wait_for_log(&self, text: &str, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Instant::now()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
