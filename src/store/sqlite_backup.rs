//! `authgate backup PATH`: a consistent copy of the SQLite database, taken with SQLite's
//! online backup API while a gateway keeps running on it. The copy is a complete database
//! file (no WAL beside it): a gateway pointed at it starts with every account, revocation
//! and spent refresh token the source held at the moment the copy finished.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

/// Pages copied per step; between steps the gateway's writers get the file.
const PAGES_PER_STEP: std::os::raw::c_int = 256;
/// Pause between steps, so a large copy does not starve the running gateway.
const PAUSE_BETWEEN_STEPS: Duration = Duration::from_millis(5);

/// Why a backup failed; nothing is left at the destination.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists already: a backup never overwrites a file")]
    DestinationExists(PathBuf),
    #[error("cannot read the database {path}: {source}")]
    Source {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot write the backup {path}: {source}")]
    Destination {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// What was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    pub pages: i32,
    pub users: i64,
}

/// Copies the database at `source` to a new file at `destination`.
pub fn backup(source: &Path, destination: &Path) -> Result<BackupReport, BackupError> {
    if destination.exists() {
        return Err(BackupError::DestinationExists(destination.to_path_buf()));
    }
    let read_err = |e| BackupError::Source {
        path: source.to_path_buf(),
        source: e,
    };
    // Read-only and never created: a wrong path is an error, not a new empty database.
    let from =
        Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(read_err)?;
    from.busy_timeout(Duration::from_secs(5))
        .map_err(read_err)?;
    let result = copy(&from, destination);
    if result.is_err() {
        let _ = std::fs::remove_file(destination);
    }
    result
}

fn copy(from: &Connection, destination: &Path) -> Result<BackupReport, BackupError> {
    let write_err = |e| BackupError::Destination {
        path: destination.to_path_buf(),
        source: e,
    };
    let mut to = Connection::open(destination).map_err(write_err)?;
    {
        let backup = Backup::new(from, &mut to).map_err(write_err)?;
        backup
            .run_to_completion(PAGES_PER_STEP, PAUSE_BETWEEN_STEPS, None)
            .map_err(write_err)?;
    }
    let pages = to
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(write_err)?;
    let users = to
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .map_err(write_err)?;
    Ok(BackupReport { pages, users })
}
