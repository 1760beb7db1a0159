//! The PostgreSQL store, for a fleet of gateways sharing accounts and revocations:
//! tokio-postgres behind a deadpool pool (`connection`), all on the store's own runtime
//! (`runtime`); the schema is migrated at start (`schema`); committed revocations are
//! announced with NOTIFY in the same transaction and heard through LISTEN (`notify`);
//! `import` is the receiving end of `authgate migrate`; `account_changes` commits the
//! account changes that end sessions together with their cutoff.

mod account_changes;
mod connection;
mod import;
mod notify;
mod runtime;
mod schema;
mod signing_keys;
mod tls;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;

use super::{
    fold_case, roles_from_column, roles_to_column, AddKeyOutcome, NewUser, Revocation,
    RevocationBatch, RevocationRow, Store, StoreError, StoredSigningKey, User, UserCutoff,
};
use account_changes::{insert_cutoff_in, insert_revocation_in};
use runtime::DbRuntime;

/// A pool of connections to one PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    pg_config: tokio_postgres::Config,
    /// TLS for every connection, the listening one included (plain when the URL says so).
    connector: tokio_postgres_rustls::MakeRustlsConnect,
    query_timeout: Duration,
    wake: OnceLock<Arc<Notify>>,
    /// Declared last: dropped after the pool, it stops the runtime thread.
    runtime: DbRuntime,
}

const USER_COLUMNS: &str = "id, username, email, password_hash, active, created_at, roles";

fn user_from_row(row: &tokio_postgres::Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        email: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        active: row.try_get(4)?,
        created_at: row.try_get(5)?,
        roles: roles_from_column(row.try_get(6)?),
    })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The unique index that refused an insert, if that is what happened.
fn violated_index(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    (db.code() == &SqlState::UNIQUE_VIOLATION)
        .then(|| db.constraint())
        .flatten()
}

impl PostgresStore {
    /// Commits one revocation row and announces it, in one transaction.
    async fn insert_revocation(
        &self,
        revoked_id: String,
        kind: &'static str,
        user_id: i64,
        expires_at: i64,
        not_before: i64,
    ) -> Result<(), StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let tx = client.transaction().await?;
                insert_revocation_in(&tx, &revoked_id, kind, user_id, expires_at, not_before)
                    .await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let username_key = fold_case(&user.username);
                let email_key = fold_case(&user.email);
                let created_at = now_unix();
                let insert = client
                    .prepare_cached(
                        "INSERT INTO users (username, username_key, email, email_key, password_hash, active, created_at, roles)
                         VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7) RETURNING id",
                    )
                    .await?;
                let roles = roles_to_column(&user.roles);
                let inserted = client
                    .query_one(
                        &insert,
                        &[&user.username, &username_key, &user.email, &email_key, &user.password_hash, &created_at, &roles],
                    )
                    .await;
                let row = match inserted {
                    Ok(row) => row,
                    Err(e) => {
                        return Err(match violated_index(&e) {
                            Some("users_username_key") => StoreError::UsernameTaken,
                            // The contract reports a taken username before a taken email.
                            Some("users_email_key") => {
                                let taken = client
                                    .query_opt("SELECT 1 FROM users WHERE username_key = $1", &[&username_key])
                                    .await?;
                                if taken.is_some() {
                                    StoreError::UsernameTaken
                                } else {
                                    StoreError::EmailTaken
                                }
                            }
                            _ => StoreError::from(e),
                        })
                    }
                };
                Ok(User {
                    id: row.try_get(0)?,
                    username: user.username,
                    email: user.email,
                    password_hash: user.password_hash,
                    active: true,
                    created_at,
                    roles: user.roles,
                })
            })
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let key = fold_case(username);
        self.with_client(move |client| {
            Box::pin(async move {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
                let stmt = client.prepare_cached(&sql).await?;
                client
                    .query_opt(&stmt, &[&key])
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            })
        })
        .await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                let stmt = client.prepare_cached(&sql).await?;
                client
                    .query_opt(&stmt, &[&id])
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            })
        })
        .await
    }

    async fn revoke(&self, r: Revocation) -> Result<(), StoreError> {
        self.insert_revocation(
            r.id.to_string(),
            r.kind.as_str(),
            r.user_id,
            r.expires_at,
            0,
        )
        .await
    }

    async fn revoke_user_sessions(&self, c: UserCutoff) -> Result<UserCutoff, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let tx = client.transaction().await?;
                let c = insert_cutoff_in(&tx, &c).await?;
                tx.commit().await?;
                Ok(c)
            })
        })
        .await
    }

    async fn revocations_after(
        &self,
        cursor: i64,
        now: i64,
        limit: usize,
    ) -> Result<RevocationBatch, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client(move |client| {
            Box::pin(async move {
                let stmt = client
                    .prepare_cached(
                        "SELECT id, revoked_id, kind, user_id, expires_at, not_before FROM revocations
                         WHERE id > $1 ORDER BY id LIMIT $2",
                    )
                    .await?;
                let mut batch = RevocationBatch {
                    cursor,
                    ..RevocationBatch::default()
                };
                for row in client.query(&stmt, &[&cursor, &limit]).await? {
                    let revoked_id: &str = row.try_get(1)?;
                    let kind: &str = row.try_get(2)?;
                    batch.push_row(
                        RevocationRow {
                            row_id: row.try_get(0)?,
                            revoked_id,
                            kind,
                            user_id: row.try_get(3)?,
                            expires_at: row.try_get(4)?,
                            not_before: row.try_get(5)?,
                        },
                        now,
                    );
                }
                Ok(batch)
            })
        })
        .await
    }

    async fn spend_refresh_token(
        &self,
        jti: uuid::Uuid,
        user_id: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let jti = jti.to_string();
        self.with_client(move |client| {
            Box::pin(async move {
                // Of two concurrent inserts the second waits for the first to commit and
                // then does nothing; the select after it, a statement of its own, sees the
                // committed row.
                let insert = client
                    .prepare_cached(
                        "INSERT INTO spent_refresh_tokens (jti, user_id, spent_at, expires_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
                    )
                    .await?;
                if client
                    .execute(&insert, &[&jti, &user_id, &now, &expires_at])
                    .await?
                    == 1
                {
                    return Ok(None);
                }
                let row = client
                    .query_one(
                        "SELECT spent_at FROM spent_refresh_tokens WHERE jti = $1",
                        &[&jti],
                    )
                    .await?;
                Ok(Some(row.try_get(0)?))
            })
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.with_client(|client| {
            Box::pin(async move {
                let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
                client
                    .query(&sql, &[])
                    .await?
                    .iter()
                    .map(user_from_row)
                    .collect()
            })
        })
        .await
    }

    async fn set_active(&self, user_id: i64, active: bool) -> Result<(), StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                client
                    .execute(
                        "UPDATE users SET active = $1 WHERE id = $2",
                        &[&active, &user_id],
                    )
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn grant_role(
        &self,
        user_id: i64,
        role: &str,
        max_roles: usize,
    ) -> Result<bool, StoreError> {
        self.add_role(user_id, role.to_string(), max_roles).await
    }

    async fn revoke_role(
        &self,
        user_id: i64,
        role: &str,
        cutoff: UserCutoff,
    ) -> Result<Option<UserCutoff>, StoreError> {
        self.remove_role(user_id, role.to_string(), cutoff).await
    }

    async fn change_password(
        &self,
        user_id: i64,
        password_hash: String,
        cutoff: UserCutoff,
    ) -> Result<UserCutoff, StoreError> {
        self.replace_password(user_id, password_hash, cutoff).await
    }

    async fn delete_user(
        &self,
        user_id: i64,
        cutoff: UserCutoff,
    ) -> Result<UserCutoff, StoreError> {
        self.remove_user(user_id, cutoff).await
    }

    async fn prune_revocations(&self, now: i64) -> Result<usize, StoreError> {
        self.with_client(move |client| {
            Box::pin(async move {
                let revocations = client
                    .execute("DELETE FROM revocations WHERE expires_at < $1", &[&now])
                    .await?;
                let spent = client
                    .execute(
                        "DELETE FROM spent_refresh_tokens WHERE expires_at < $1",
                        &[&now],
                    )
                    .await?;
                Ok((revocations + spent) as usize)
            })
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_client(|client| {
            Box::pin(async move {
                client.simple_query("SELECT 1").await?;
                Ok(())
            })
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.read_signing_keys().await
    }

    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
        unless_created_after: Option<i64>,
    ) -> Result<AddKeyOutcome, StoreError> {
        self.insert_signing_key(key, unless_created_after).await
    }

    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool, StoreError> {
        self.mark_signing_key_retired(kid.to_string(), now).await
    }

    fn subscribe(&self) -> Option<Arc<Notify>> {
        let wake = self.inner.wake.get_or_init(|| {
            let wake = Arc::new(Notify::new());
            self.inner.runtime.handle().spawn(notify::listen_forever(
                self.inner.pg_config.clone(),
                self.inner.connector.clone(),
                wake.clone(),
            ));
            wake
        });
        Some(wake.clone())
    }
}
