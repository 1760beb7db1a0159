//! `[server]` keys of the binary upgrade: the Unix socket the listening sockets are handed
//! over on, and how long the old process drains its connections once it has stopped
//! accepting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::values::duration;

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes, NUL included).
const MAX_SOCKET_PATH: usize = 107;

/// `server.upgrade_socket`: the path set, or one derived for this instance: beside the pid
/// file (`/run/authgate.pid` gives `/run/authgate.upgrade.sock`), else
/// `/tmp/authgate-<port>.upgrade.sock` after the first listening port. Never pingora's
/// `/tmp/pingora_upgrade.sock`, which every instance on the machine would share.
pub(super) fn upgrade_socket(
    value: Option<&str>,
    pid_file: Option<&Path>,
    listeners: &[Option<SocketAddr>],
) -> Result<PathBuf, ConfigError> {
    const KEY: &str = "server.upgrade_socket";
    let path = match value.map(str::trim) {
        Some(set) if !set.is_empty() => PathBuf::from(set),
        _ => match pid_file {
            Some(pid) => pid.with_extension("upgrade.sock"),
            None => {
                let port = listeners.iter().flatten().next().map_or(0, |a| a.port());
                PathBuf::from(format!("/tmp/authgate-{port}.upgrade.sock"))
            }
        },
    };
    let length = path.as_os_str().len();
    if length > MAX_SOCKET_PATH {
        return Err(ConfigError::invalid(
            KEY,
            format!(
                "{} is {length} bytes; a Unix socket path holds at most {MAX_SOCKET_PATH}",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// `server.drain_timeout`: whole seconds (pingora counts its shutdown in seconds), at
/// least one.
pub(super) fn drain_timeout(value: &str) -> Result<Duration, ConfigError> {
    const KEY: &str = "server.drain_timeout";
    let d = duration(KEY, value)?;
    if d.subsec_nanos() != 0 || d.is_zero() {
        return Err(ConfigError::invalid(
            KEY,
            format!("{value:?} must be a whole number of seconds, at least 1s"),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_socket_is_per_instance_unless_set() {
        let set = upgrade_socket(Some("/run/a.sock"), None, &[]).unwrap();
        assert_eq!(set, PathBuf::from("/run/a.sock"));
        let beside_pid =
            upgrade_socket(None, Some(Path::new("/run/authgate.pid")), &[None]).unwrap();
        assert_eq!(beside_pid, PathBuf::from("/run/authgate.upgrade.sock"));
        let by_port = upgrade_socket(Some(""), None, &[None, addr("127.0.0.1:8443")]).unwrap();
        assert_eq!(by_port, PathBuf::from("/tmp/authgate-8443.upgrade.sock"));
        let long = format!("/{}", "x".repeat(120));
        let e = upgrade_socket(Some(&long), None, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.upgrade_socket"), "{e}");
    }

    #[test]
    fn drain_timeout_is_whole_seconds() {
        assert_eq!(drain_timeout("30s").unwrap(), Duration::from_secs(30));
        for bad in ["0s", "1500ms", "soon"] {
            let e = drain_timeout(bad).unwrap_err().to_string();
            assert!(e.contains("server.drain_timeout"), "{bad}: {e}");
        }
    }
}
