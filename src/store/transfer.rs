//! `authgate migrate`: copies an SQLite database into PostgreSQL when a single gateway
//! grows into a fleet. Accounts keep their ids, hashes and active flags (so issued tokens
//! stay valid), and the revocations, user cutoffs and spent refresh tokens that still
//! matter come along (so nothing logged out comes back to life), and so do the signing keys,
//! still sealed (so EdDSA / ES256 tokens stay valid; the fleet needs the same
//! `key_encryption_secret`).

use std::fmt;
use std::path::Path;

use rusqlite::params;

use super::{sqlite_keys, PostgresStore, SqliteStore, StoreError, StoredSigningKey, User};
use crate::config::PostgresConfig;

/// Everything worth copying, read in one transaction.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub users: Vec<User>,
    pub revocations: Vec<StoredRevocation>,
    pub spent_refresh_tokens: Vec<SpentRefreshToken>,
    /// Every key, retired ones too: the first one's time is when HS256 stopped signing.
    pub signing_keys: Vec<StoredSigningKey>,
}

/// A `revocations` row as stored (sessions, tokens and user cutoffs alike).
#[derive(Debug, Clone)]
pub struct StoredRevocation {
    pub revoked_id: String,
    pub kind: String,
    pub user_id: i64,
    pub expires_at: i64,
    pub revoked_at: i64,
    pub not_before: i64,
}

/// A `spent_refresh_tokens` row.
#[derive(Debug, Clone)]
pub struct SpentRefreshToken {
    pub jti: String,
    pub user_id: i64,
    pub spent_at: i64,
    pub expires_at: i64,
}

/// What a migration copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransferCounts {
    pub users: usize,
    /// Session and token revocations.
    pub revocations: usize,
    /// Logout-everywhere and deactivation cutoffs.
    pub cutoffs: usize,
    pub spent_refresh_tokens: usize,
    pub signing_keys: usize,
}

impl fmt::Display for TransferCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users, {} revocations, {} user cutoffs, {} spent refresh tokens, {} signing keys",
            self.users,
            self.revocations,
            self.cutoffs,
            self.spent_refresh_tokens,
            self.signing_keys
        )
    }
}

/// Why a migration did not happen; nothing was written to the destination.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("cannot read the source: {0}")]
    Source(StoreError),
    #[error("cannot write the destination: {0}")]
    Destination(StoreError),
    #[error("the destination already holds {0} accounts; migrate into an empty database")]
    DestinationNotEmpty(i64),
}

impl SqliteStore {
    /// Reads every account and every row that still matters at `now`.
    pub async fn snapshot(&self, now: i64) -> Result<Snapshot, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            let users = {
                let mut stmt = tx.prepare(
                    "SELECT id, username, email, password_hash, active, created_at, roles FROM users ORDER BY id",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(User {
                        id: r.get(0)?,
                        username: r.get(1)?,
                        email: r.get(2)?,
                        password_hash: r.get(3)?,
                        active: r.get::<_, i64>(4)? != 0,
                        created_at: r.get(5)?,
                        roles: super::roles_from_column(&r.get::<_, String>(6)?),
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let revocations = {
                let mut stmt = tx.prepare(
                    "SELECT revoked_id, kind, user_id, expires_at, revoked_at, not_before
                     FROM revocations WHERE expires_at >= ?1 ORDER BY id",
                )?;
                let rows = stmt.query_map(params![now], |r| {
                    Ok(StoredRevocation {
                        revoked_id: r.get(0)?,
                        kind: r.get(1)?,
                        user_id: r.get(2)?,
                        expires_at: r.get(3)?,
                        revoked_at: r.get(4)?,
                        not_before: r.get(5)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let spent_refresh_tokens = {
                let mut stmt = tx.prepare(
                    "SELECT jti, user_id, spent_at, expires_at FROM spent_refresh_tokens
                     WHERE expires_at >= ?1 ORDER BY jti",
                )?;
                let rows = stmt.query_map(params![now], |r| {
                    Ok(SpentRefreshToken {
                        jti: r.get(0)?,
                        user_id: r.get(1)?,
                        spent_at: r.get(2)?,
                        expires_at: r.get(3)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let signing_keys = sqlite_keys::signing_keys(&tx)?;
            Ok(Snapshot {
                users,
                revocations,
                spent_refresh_tokens,
                signing_keys,
            })
        })
        .await
    }
}

/// Copies the SQLite database at `from` into the (empty) PostgreSQL database `to`, in one
/// transaction on the destination.
pub async fn sqlite_to_postgres(
    from: &Path,
    to: &PostgresConfig,
    now: i64,
) -> Result<TransferCounts, TransferError> {
    if !from.exists() {
        return Err(TransferError::Source(StoreError::Database(format!(
            "{} does not exist",
            from.display()
        ))));
    }
    let path = from.to_path_buf();
    let source = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .map_err(|e| TransferError::Source(StoreError::Task(e.to_string())))?
        .map_err(TransferError::Source)?;
    let snapshot = source.snapshot(now).await.map_err(TransferError::Source)?;
    let destination = PostgresStore::connect(to)
        .await
        .map_err(TransferError::Destination)?;
    destination.import(snapshot).await
}
