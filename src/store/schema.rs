//! Schema migrations, applied in order at start-up inside one transaction each.
//! `user_version` records how far a database has come, so starting twice is harmless.

use rusqlite::{Connection, TransactionBehavior};

/// Each entry moves the schema one version forward. Append only; never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    // 1: accounts and revocations.
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE revocations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        revoked_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER NOT NULL
    );
    CREATE INDEX revocations_expires_at ON revocations (expires_at);",
    // 2: per-user cutoffs (logout everywhere) share the revocations table and its cursor;
    //    spent refresh tokens for rotation with reuse detection.
    "ALTER TABLE revocations ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE spent_refresh_tokens (
        jti TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL,
        spent_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX spent_refresh_tokens_expires_at ON spent_refresh_tokens (expires_at);",
    // 3: roles, comma-separated and sorted (names are `[a-z0-9_-]`); a user's latest
    //    cutoff is looked up when a new one is written.
    "ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';
    CREATE INDEX revocations_user_id ON revocations (user_id);",
    // 4: signing keys for EdDSA / ES256 tokens; private keys sealed (never in clear).
    "CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        algorithm TEXT NOT NULL,
        public_key BLOB NOT NULL,
        sealed_private_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        signs_from INTEGER NOT NULL,
        retired_at INTEGER
    );",
];

/// Brings the schema up to date. Each step takes the write lock first and re-reads the
/// version under it, so gateways starting together on one file apply each step once.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
        let Some(sql) = MIGRATIONS.get(current) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (current + 1) as i64)?;
        tx.commit()?;
    }
}
