//! The signing-key table on PostgreSQL. Adding a key takes a transaction-scoped advisory
//! lock before reading, so of several gateways rotating on schedule at once only the first
//! adds a key and the others find it.

use super::schema::SIGNING_KEY_LOCK;
use super::PostgresStore;
use crate::store::{AddKeyOutcome, StoreError, StoredSigningKey};

fn key_from_row(row: &tokio_postgres::Row) -> Result<StoredSigningKey, StoreError> {
    Ok(StoredSigningKey {
        kid: row.try_get(0)?,
        algorithm: row.try_get(1)?,
        public_key: row.try_get(2)?,
        sealed_private_key: row.try_get(3)?,
        created_at: row.try_get(4)?,
        signs_from: row.try_get(5)?,
        retired_at: row.try_get(6)?,
    })
}

impl PostgresStore {
    pub(super) async fn read_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.with_client(|client| {
            Box::pin(async move {
                let stmt = client
                    .prepare_cached(
                        "SELECT kid, algorithm, public_key, sealed_private_key, created_at, signs_from, retired_at
                         FROM signing_keys ORDER BY signs_from, kid",
                    )
                    .await?;
                client
                    .query(&stmt, &[])
                    .await?
                    .iter()
                    .map(key_from_row)
                    .collect()
            })
        })
        .await
    }

    pub(super) async fn insert_signing_key(
        &self,
        key: StoredSigningKey,
        unless_created_after: Option<i64>,
    ) -> Result<AddKeyOutcome, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let tx = client.transaction().await?;
                tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({SIGNING_KEY_LOCK})"))
                    .await?;
                if let Some(after) = unless_created_after {
                    let newer = tx
                        .query_opt(
                            "SELECT kid FROM signing_keys WHERE retired_at IS NULL AND created_at > $1
                             ORDER BY created_at DESC LIMIT 1",
                            &[&after],
                        )
                        .await?;
                    if let Some(row) = newer {
                        return Ok(AddKeyOutcome::NewerKeyExists(row.try_get(0)?));
                    }
                }
                tx.execute(
                    "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, created_at, signs_from)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &key.kid,
                        &key.algorithm,
                        &key.public_key,
                        &key.sealed_private_key,
                        &key.created_at,
                        &key.signs_from,
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(AddKeyOutcome::Added)
            })
        })
        .await
    }

    pub(super) async fn mark_signing_key_retired(
        &self,
        kid: String,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let changed = client
                    .execute(
                        "UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL",
                        &[&now, &kid],
                    )
                    .await?;
                Ok(changed == 1)
            })
        })
        .await
    }
}
