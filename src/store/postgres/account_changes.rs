//! Account changes that end sessions: a role removed, a password changed, an account
//! deleted. Each commits its change and the user's cutoff in one transaction, announced to
//! the other gateways when it commits; granting a role ends nothing and commits alone.

use super::schema::{CHANNEL, REVOCATION_ORDER_LOCK};
use super::{now_unix, PostgresStore};
use crate::store::{after_earlier_cutoff, roles_from_column, roles_to_column, with_role};
use crate::store::{StoreError, UserCutoff};

/// Commits-to-be one revocation row inside `tx` and announces it when `tx` commits.
///
/// Readers follow the table by row id (`revocations_after`), which is only sound when
/// ids become visible in increasing order. A sequence hands out ids at insert time, and
/// two transactions may commit in the other order; so inserts take a transaction-scoped
/// advisory lock first, making id order and commit order the same.
pub(super) async fn insert_revocation_in(
    tx: &deadpool_postgres::Transaction<'_>,
    revoked_id: &str,
    kind: &str,
    user_id: i64,
    expires_at: i64,
    not_before: i64,
) -> Result<(), StoreError> {
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({REVOCATION_ORDER_LOCK})"
    ))
    .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO revocations (revoked_id, kind, user_id, expires_at, revoked_at, not_before)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (revoked_id) DO UPDATE
             SET expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at)",
        )
        .await?;
    tx.execute(
        &insert,
        &[
            &revoked_id,
            &kind,
            &user_id,
            &expires_at,
            &now_unix(),
            &not_before,
        ],
    )
    .await?;
    // Delivered to the listeners only if and when the transaction commits.
    tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
    Ok(())
}

/// [`insert_revocation_in`] for a user cutoff, moved past the user's latest one (read
/// under the revocation lock, so no other cutoff commits in between); returns it as
/// written.
pub(super) async fn insert_cutoff_in(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &UserCutoff,
) -> Result<UserCutoff, StoreError> {
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({REVOCATION_ORDER_LOCK})"
    ))
    .await?;
    let last: Option<i64> = tx
        .query_one(
            "SELECT max(not_before) FROM revocations WHERE user_id = $1 AND kind = 'user'",
            &[&c.user_id],
        )
        .await?
        .try_get(0)?;
    let c = after_earlier_cutoff(c, last);
    let id = format!("user:{}:{}", c.user_id, c.not_before);
    insert_revocation_in(tx, &id, "user", c.user_id, c.expires_at, c.not_before).await?;
    Ok(c)
}

/// The roles of `user_id`, its row locked until `tx` ends; `None` when there is no account.
async fn locked_roles(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT roles FROM users WHERE id = $1 FOR UPDATE",
            &[&user_id],
        )
        .await?;
    row.map(|r| Ok(roles_from_column(r.try_get(0)?)))
        .transpose()
}

async fn set_roles(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: i64,
    roles: &[String],
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE users SET roles = $1 WHERE id = $2",
        &[&roles_to_column(roles), &user_id],
    )
    .await?;
    Ok(())
}

impl PostgresStore {
    /// [`Store::grant_role`](crate::store::Store::grant_role).
    pub(super) async fn add_role(
        &self,
        user_id: i64,
        role: String,
        max_roles: usize,
    ) -> Result<bool, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let tx = client.transaction().await?;
                let roles = locked_roles(&tx, user_id).await?.unwrap_or_default();
                let Some(roles) = with_role(&roles, &role, max_roles)? else {
                    return Ok(false);
                };
                set_roles(&tx, user_id, &roles).await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    /// [`Store::revoke_role`](crate::store::Store::revoke_role).
    pub(super) async fn remove_role(
        &self,
        user_id: i64,
        role: String,
        cutoff: UserCutoff,
    ) -> Result<Option<UserCutoff>, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let tx = client.transaction().await?;
                let roles = locked_roles(&tx, user_id).await?.unwrap_or_default();
                if !roles.contains(&role) {
                    return Ok(None);
                }
                let kept: Vec<String> = roles.into_iter().filter(|r| *r != role).collect();
                set_roles(&tx, user_id, &kept).await?;
                let cutoff = insert_cutoff_in(&tx, &cutoff).await?;
                tx.commit().await?;
                Ok(Some(cutoff))
            })
        })
        .await
    }

    /// [`Store::change_password`](crate::store::Store::change_password).
    pub(super) async fn replace_password(
        &self,
        user_id: i64,
        password_hash: String,
        cutoff: UserCutoff,
    ) -> Result<UserCutoff, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let tx = client.transaction().await?;
                tx.execute(
                    "UPDATE users SET password_hash = $1 WHERE id = $2",
                    &[&password_hash, &user_id],
                )
                .await?;
                let cutoff = insert_cutoff_in(&tx, &cutoff).await?;
                tx.commit().await?;
                Ok(cutoff)
            })
        })
        .await
    }

    /// [`Store::delete_user`](crate::store::Store::delete_user).
    pub(super) async fn remove_user(
        &self,
        user_id: i64,
        cutoff: UserCutoff,
    ) -> Result<UserCutoff, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let tx = client.transaction().await?;
                tx.execute("DELETE FROM users WHERE id = $1", &[&user_id])
                    .await?;
                let cutoff = insert_cutoff_in(&tx, &cutoff).await?;
                tx.commit().await?;
                Ok(cutoff)
            })
        })
        .await
    }
}
