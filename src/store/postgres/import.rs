//! The PostgreSQL half of `authgate migrate`: writes a [`Snapshot`] in one transaction,
//! keeping the account ids, then moves the id sequence past them.

use super::schema::{CHANNEL, REVOCATION_ORDER_LOCK};
use super::PostgresStore;
use crate::store::transfer::{Snapshot, TransferCounts, TransferError};
use crate::store::{fold_case, roles_to_column, StoreError};

impl PostgresStore {
    /// Imports `snapshot` into this (account-less) database.
    pub async fn import(&self, snapshot: Snapshot) -> Result<TransferCounts, TransferError> {
        let outcome = self
            .with_client(move |client| {
                Box::pin(async move {
                    let tx = client.transaction().await?;
                    // One migration at a time, none racing with a gateway's registrations,
                    // and revocation ids in commit order as everywhere else.
                    tx.batch_execute(&format!(
                        "LOCK TABLE users IN EXCLUSIVE MODE;
                         SELECT pg_advisory_xact_lock({REVOCATION_ORDER_LOCK});"
                    ))
                    .await?;
                    let existing: i64 = tx
                        .query_one("SELECT count(*) FROM users", &[])
                        .await?
                        .try_get(0)?;
                    if existing > 0 {
                        return Ok(Err(existing));
                    }
                    let mut counts = TransferCounts::default();
                    let insert_user = tx
                        .prepare(
                            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, active, created_at, roles)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .await?;
                    for u in &snapshot.users {
                        let (username_key, email_key) = (fold_case(&u.username), fold_case(&u.email));
                        let roles = roles_to_column(&u.roles);
                        tx.execute(
                            &insert_user,
                            &[&u.id, &u.username, &username_key, &u.email, &email_key, &u.password_hash, &u.active, &u.created_at, &roles],
                        )
                        .await?;
                        counts.users += 1;
                    }
                    // Ids given explicitly did not advance the sequence: new accounts must
                    // continue after the highest copied one.
                    tx.batch_execute(
                        "SELECT setval(pg_get_serial_sequence('users', 'id'),
                                       COALESCE((SELECT max(id) FROM users), 1),
                                       (SELECT max(id) FROM users) IS NOT NULL)",
                    )
                    .await?;
                    let insert_revocation = tx
                        .prepare(
                            "INSERT INTO revocations (revoked_id, kind, user_id, expires_at, revoked_at, not_before)
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (revoked_id) DO NOTHING",
                        )
                        .await?;
                    for r in &snapshot.revocations {
                        tx.execute(
                            &insert_revocation,
                            &[&r.revoked_id, &r.kind, &r.user_id, &r.expires_at, &r.revoked_at, &r.not_before],
                        )
                        .await?;
                        if r.kind == "user" {
                            counts.cutoffs += 1;
                        } else {
                            counts.revocations += 1;
                        }
                    }
                    let insert_spent = tx
                        .prepare(
                            "INSERT INTO spent_refresh_tokens (jti, user_id, spent_at, expires_at)
                             VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
                        )
                        .await?;
                    for s in &snapshot.spent_refresh_tokens {
                        tx.execute(&insert_spent, &[&s.jti, &s.user_id, &s.spent_at, &s.expires_at])
                            .await?;
                        counts.spent_refresh_tokens += 1;
                    }
                    let insert_key = tx
                        .prepare(
                            "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, created_at, signs_from, retired_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .await?;
                    for k in &snapshot.signing_keys {
                        tx.execute(
                            &insert_key,
                            &[&k.kid, &k.algorithm, &k.public_key, &k.sealed_private_key, &k.created_at, &k.signs_from, &k.retired_at],
                        )
                        .await?;
                        counts.signing_keys += 1;
                    }
                    tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(Ok(counts))
                })
            })
            .await
            .map_err(TransferError::Destination)?;
        outcome.map_err(TransferError::DestinationNotEmpty)
    }
}
