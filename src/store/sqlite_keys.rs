//! The signing-key table on SQLite. Adding a key runs in an IMMEDIATE transaction, which
//! takes the database's write lock before reading: that lock is what lets only one of
//! several gateways rotate on schedule.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{AddKeyOutcome, StoreError, StoredSigningKey};

const KEY_COLUMNS: &str =
    "kid, algorithm, public_key, sealed_private_key, created_at, signs_from, retired_at";

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSigningKey> {
    Ok(StoredSigningKey {
        kid: row.get(0)?,
        algorithm: row.get(1)?,
        public_key: row.get(2)?,
        sealed_private_key: row.get(3)?,
        created_at: row.get(4)?,
        signs_from: row.get(5)?,
        retired_at: row.get(6)?,
    })
}

pub(super) fn signing_keys(conn: &Connection) -> Result<Vec<StoredSigningKey>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY signs_from, kid");
    let mut stmt = conn.prepare_cached(&sql)?;
    let keys = stmt
        .query_map([], key_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(keys)
}

pub(super) fn add_signing_key(
    conn: &mut Connection,
    key: StoredSigningKey,
    unless_created_after: Option<i64>,
) -> Result<AddKeyOutcome, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(after) = unless_created_after {
        let newer: Option<String> = tx
            .query_row(
                "SELECT kid FROM signing_keys WHERE retired_at IS NULL AND created_at > ?1
                 ORDER BY created_at DESC LIMIT 1",
                [after],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(kid) = newer {
            return Ok(AddKeyOutcome::NewerKeyExists(kid));
        }
    }
    tx.execute(
        "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, created_at, signs_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key.kid,
            key.algorithm,
            key.public_key,
            key.sealed_private_key,
            key.created_at,
            key.signs_from
        ],
    )?;
    tx.commit()?;
    Ok(AddKeyOutcome::Added)
}

pub(super) fn retire_signing_key(
    conn: &mut Connection,
    kid: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE signing_keys SET retired_at = ?1 WHERE kid = ?2 AND retired_at IS NULL",
        params![now, kid],
    )?;
    Ok(changed == 1)
}
