//! The embedded SQLite store (WAL mode). rusqlite is blocking, so every call runs on
//! tokio's blocking pool and never on the proxy's event loop.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    after_earlier_cutoff, fold_case, roles_from_column, roles_to_column, schema, sqlite_keys,
    with_role, AddKeyOutcome, NewUser, Revocation, RevocationBatch, RevocationRow, Store,
    StoreError, StoredSigningKey, User, UserCutoff,
};

/// A SQLite database file shared by the gateway's tasks (and by other gateway processes).
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

const USER_COLUMNS: &str = "id, username, email, password_hash, active, created_at, roles";

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        active: row.get::<_, i64>(4)? != 0,
        created_at: row.get(5)?,
        roles: roles_from_column(&row.get::<_, String>(6)?),
    })
}

/// Records a user cutoff inside the caller's write transaction, moved past the user's
/// latest one; returns it as written.
fn insert_cutoff(conn: &Connection, c: &UserCutoff) -> rusqlite::Result<UserCutoff> {
    let last: Option<i64> = conn.query_row(
        "SELECT max(not_before) FROM revocations WHERE user_id = ?1 AND kind = 'user'",
        [c.user_id],
        |r| r.get(0),
    )?;
    let c = after_earlier_cutoff(c, last);
    conn.execute(
        "INSERT INTO revocations (revoked_id, kind, user_id, expires_at, revoked_at, not_before)
         VALUES (?1, 'user', ?2, ?3, ?4, ?5)
         ON CONFLICT (revoked_id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
        params![
            format!("user:{}:{}", c.user_id, c.not_before),
            c.user_id,
            c.expires_at,
            now_unix(),
            c.not_before
        ],
    )?;
    Ok(c)
}

/// The roles of `user_id` as stored, `None` when there is no such account.
fn stored_roles(conn: &Connection, user_id: i64) -> rusqlite::Result<Option<Vec<String>>> {
    conn.query_row("SELECT roles FROM users WHERE id = ?1", [user_id], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map(|c| c.as_deref().map(roles_from_column))
}

fn set_roles(conn: &Connection, user_id: i64, roles: &[String]) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET roles = ?1 WHERE id = ?2",
        params![roles_to_column(roles), user_id],
    )?;
    Ok(())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, switches it to WAL and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(super) async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite half-written (transactions
            // roll back on drop), so a poisoned lock is still safe to use.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn insert_user(conn: &mut Connection, user: NewUser) -> Result<User, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let username_key = fold_case(&user.username);
    let email_key = fold_case(&user.email);
    let exists = |sql: &str, key: &str| -> rusqlite::Result<bool> {
        tx.query_row(sql, [key], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
    };
    // The contract reports a taken username before a taken email.
    if exists("SELECT 1 FROM users WHERE username_key = ?1", &username_key)? {
        return Err(StoreError::UsernameTaken);
    }
    if exists("SELECT 1 FROM users WHERE email_key = ?1", &email_key)? {
        return Err(StoreError::EmailTaken);
    }
    let created_at = now_unix();
    tx.execute(
        "INSERT INTO users (username, username_key, email, email_key, password_hash, active, created_at, roles)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)",
        params![user.username, username_key, user.email, email_key, user.password_hash, created_at, roles_to_column(&user.roles)],
    )
    .map_err(unique_violation)?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(User {
        id,
        username: user.username,
        email: user.email,
        password_hash: user.password_hash,
        active: true,
        created_at,
        roles: user.roles,
    })
}

/// The unique indexes are the last word on uniqueness, whatever the checks above saw.
fn unique_violation(e: rusqlite::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("users.username_key") {
        StoreError::UsernameTaken
    } else if text.contains("users.email_key") {
        StoreError::EmailTaken
    } else {
        StoreError::from(e)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.with_conn(move |conn| insert_user(conn, user)).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let key = fold_case(username);
        self.with_conn(move |conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = ?1");
            Ok(conn.query_row(&sql, [key], user_from_row).optional()?)
        })
        .await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.with_conn(move |conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
            Ok(conn.query_row(&sql, [id], user_from_row).optional()?)
        })
        .await
    }

    async fn revoke(&self, r: Revocation) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO revocations (revoked_id, kind, user_id, expires_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (revoked_id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                params![r.id.to_string(), r.kind.as_str(), r.user_id, r.expires_at, now_unix()],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(&self, c: UserCutoff) -> Result<UserCutoff, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let c = insert_cutoff(&tx, &c)?;
            tx.commit()?;
            Ok(c)
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
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, revoked_id, kind, user_id, expires_at, not_before FROM revocations
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![cursor, limit])?;
            let mut batch = RevocationBatch {
                cursor,
                ..RevocationBatch::default()
            };
            while let Some(row) = rows.next()? {
                let revoked_id: String = row.get(1)?;
                let kind: String = row.get(2)?;
                let row = RevocationRow {
                    row_id: row.get(0)?,
                    revoked_id: &revoked_id,
                    kind: &kind,
                    user_id: row.get(3)?,
                    expires_at: row.get(4)?,
                    not_before: row.get(5)?,
                };
                batch.push_row(row, now);
            }
            Ok(batch)
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
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT INTO spent_refresh_tokens (jti, user_id, spent_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (jti) DO NOTHING",
                params![jti.to_string(), user_id, now, expires_at],
            )?;
            let earlier = if inserted == 1 {
                None
            } else {
                Some(tx.query_row("SELECT spent_at FROM spent_refresh_tokens WHERE jti = ?1", [jti.to_string()], |r| {
                    r.get(0)
                })?)
            };
            tx.commit()?;
            Ok(earlier)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.with_conn(|conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
            let mut stmt = conn.prepare(&sql)?;
            let users = stmt
                .query_map([], user_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(users)
        })
        .await
    }

    async fn set_active(&self, user_id: i64, active: bool) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE users SET active = ?1 WHERE id = ?2",
                params![i64::from(active), user_id],
            )?;
            Ok(())
        })
        .await
    }

    async fn grant_role(
        &self,
        user_id: i64,
        role: &str,
        max_roles: usize,
    ) -> Result<bool, StoreError> {
        let role = role.to_string();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let roles = stored_roles(&tx, user_id)?.unwrap_or_default();
            let Some(roles) = with_role(&roles, &role, max_roles)? else {
                return Ok(false);
            };
            set_roles(&tx, user_id, &roles)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn revoke_role(
        &self,
        user_id: i64,
        role: &str,
        cutoff: UserCutoff,
    ) -> Result<Option<UserCutoff>, StoreError> {
        let role = role.to_string();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let roles = stored_roles(&tx, user_id)?.unwrap_or_default();
            if !roles.contains(&role) {
                return Ok(None);
            }
            let kept: Vec<String> = roles.into_iter().filter(|r| *r != role).collect();
            set_roles(&tx, user_id, &kept)?;
            let cutoff = insert_cutoff(&tx, &cutoff)?;
            tx.commit()?;
            Ok(Some(cutoff))
        })
        .await
    }

    async fn change_password(
        &self,
        user_id: i64,
        password_hash: String,
        cutoff: UserCutoff,
    ) -> Result<UserCutoff, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                params![password_hash, user_id],
            )?;
            let cutoff = insert_cutoff(&tx, &cutoff)?;
            tx.commit()?;
            Ok(cutoff)
        })
        .await
    }

    async fn delete_user(
        &self,
        user_id: i64,
        cutoff: UserCutoff,
    ) -> Result<UserCutoff, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
            let cutoff = insert_cutoff(&tx, &cutoff)?;
            tx.commit()?;
            Ok(cutoff)
        })
        .await
    }

    async fn prune_revocations(&self, now: i64) -> Result<usize, StoreError> {
        self.with_conn(move |conn| {
            let revocations =
                conn.execute("DELETE FROM revocations WHERE expires_at < ?1", [now])?;
            let spent = conn.execute(
                "DELETE FROM spent_refresh_tokens WHERE expires_at < ?1",
                [now],
            )?;
            Ok(revocations + spent)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| Ok(conn.query_row("SELECT count(*) FROM users", [], |_| Ok(()))?))
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.with_conn(|conn| sqlite_keys::signing_keys(conn)).await
    }

    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
        unless_created_after: Option<i64>,
    ) -> Result<AddKeyOutcome, StoreError> {
        self.with_conn(move |conn| sqlite_keys::add_signing_key(conn, key, unless_created_after))
            .await
    }

    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool, StoreError> {
        let kid = kid.to_string();
        self.with_conn(move |conn| sqlite_keys::retire_signing_key(conn, &kid, now))
            .await
    }
}
