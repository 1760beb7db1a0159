//! The pid file (`[server] pid_file`): the running gateway writes its process id there at
//! start and removes it at exit, and `authgate reload` reads it to send that process
//! SIGHUP. In a binary upgrade the new process writes its own id over the old one's, and
//! the old process, exiting later, leaves the file alone.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Why `authgate reload` could not signal the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ReloadSignalError {
    #[error("no `server.pid_file` is set in the config: cannot find the running gateway")]
    NoPidFile,
    #[error("cannot read the pid file {path}: {source} (is the gateway running?)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the pid file {path} does not hold a process id")]
    NotAPid { path: PathBuf },
    #[error("cannot signal process {pid} from {path}: {source}")]
    Signal {
        pid: i32,
        path: PathBuf,
        source: nix::Error,
    },
}

/// The written pid file; removed when dropped (at the gateway's exit).
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's id to `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|text| text.trim() == std::process::id().to_string());
        if !ours {
            // A newer process (a binary upgrade) has written its own id: the file is its.
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove the pid file");
        }
    }
}

/// Sends SIGHUP (reload the configuration) to the gateway whose pid file is `path`.
/// Returns its process id.
pub fn signal_reload(path: Option<&Path>) -> Result<i32, ReloadSignalError> {
    let path = path.ok_or(ReloadSignalError::NoPidFile)?;
    let text = std::fs::read_to_string(path).map_err(|source| ReloadSignalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let pid: i32 =
        text.trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| ReloadSignalError::NotAPid {
                path: path.to_path_buf(),
            })?;
    kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|source| ReloadSignalError::Signal {
        pid,
        path: path.to_path_buf(),
        source,
    })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_removed_only_while_it_holds_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authgate.pid");
        drop(PidFile::create(&path).unwrap());
        assert!(!path.exists(), "removed at exit");
        let file = PidFile::create(&path).unwrap();
        std::fs::write(&path, "4242\n").unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4242\n");
    }
}
