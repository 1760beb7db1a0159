//! The token signing secret: the configured one, or (SQLite only) one generated on first
//! start and kept (mode 0600) beside the database file so tokens survive restarts. With
//! PostgreSQL the gateways of a fleet must all sign with one secret, and no file beside a
//! server can be shared, so the secret must be configured.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::config::DatabaseBackend;

/// Where a generated secret is kept for the database at `db_path`.
pub fn secret_path(db_path: &Path) -> PathBuf {
    db_path.with_extension("secret")
}

/// Returns the configured secret, or reads / creates the generated one.
pub fn resolve(configured: Option<&[u8]>, backend: &DatabaseBackend) -> std::io::Result<Vec<u8>> {
    if let Some(secret) = configured {
        return Ok(secret.to_vec());
    }
    let Some(db_path) = backend.sqlite_path() else {
        return Err(std::io::Error::other(
            "no [tokens] secret (or JWT_SECRET_KEY) configured: with PostgreSQL every gateway must be given the same one",
        ));
    };
    let path = secret_path(db_path);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 64 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} holds a secret under 32 bytes",
                path.display()
            )))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = open_private(&path)?;
    file.write_all(hex.as_bytes())?;
    file.sync_all()?;
    tracing::warn!(path = %path.display(), "no [tokens] secret configured: generated one and saved it; set JWT_SECRET_KEY to share it between gateways");
    Ok(hex.into_bytes())
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}
