//! Environment variables that override the file, for containers and the Flask service's
//! deployments (`DATABASE_URL`, `JWT_SECRET_KEY`), and the signing keys' `AUTHGATE_KEY_ENCRYPTION_SECRET`.

use super::file::FileConfig;

/// Applies the overrides; `get` reads one variable (injected so tests need not touch the
/// process environment).
pub fn overlay(file: &mut FileConfig, get: impl Fn(&str) -> Option<String>) {
    if let Some(v) = get("AUTHGATE_LISTEN") {
        file.server.listen = v;
    }
    if let Some(v) = get("DATABASE_URL") {
        file.database.url = v;
    }
    if let Some(v) = get("JWT_SECRET_KEY") {
        file.tokens.secret = v;
    }
    if let Some(v) = get("AUTHGATE_KEY_ENCRYPTION_SECRET") {
        file.tokens.key_encryption_secret = v;
    }
    if let Some(v) = get("AUTHGATE_LOG_FORMAT") {
        file.log.format = v;
    }
}
