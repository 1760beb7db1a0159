//! Durable state: accounts and revocations behind the [`Store`] trait, with two backends:
//! the embedded SQLite file (the default) and PostgreSQL, shared by a fleet of gateways.
//! [`open`] picks the one the config names.

mod postgres;
mod schema;
mod signing_keys;
mod sqlite;
pub mod sqlite_backup;
mod sqlite_keys;
pub mod transfer;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::DatabaseBackend;

pub use postgres::PostgresStore;
pub use signing_keys::{AddKeyOutcome, StoredSigningKey};
pub use sqlite::SqliteStore;

/// The case-folded form that uniqueness is decided on, by both backends alike (kept in the
/// `*_key` columns, which carry the unique indexes).
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

/// Opens (and migrates) the backend the config names.
pub async fn open(backend: &DatabaseBackend) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match backend {
        DatabaseBackend::Sqlite(path) => {
            let path = path.clone();
            // Opening and migrating a file is blocking work.
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
            Arc::new(store)
        }
        DatabaseBackend::Postgres(config) => Arc::new(PostgresStore::connect(config).await?),
    })
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub active: bool,
    pub created_at: i64,
    /// Sorted, each at most once.
    pub roles: Vec<String>,
}

/// A new account; the hash is already computed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    /// Roles it starts with (checked by the caller).
    pub roles: Vec<String>,
}

/// The `users.roles` column: role names are `[a-z0-9_-]`, so a comma separates them.
pub(crate) fn roles_to_column(roles: &[String]) -> String {
    roles.join(",")
}

/// Reads the `users.roles` column back.
pub(crate) fn roles_from_column(column: &str) -> Vec<String> {
    column
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// `roles` with `role` added, sorted; `None` when it is already there.
pub(crate) fn with_role(
    roles: &[String],
    role: &str,
    max: usize,
) -> Result<Option<Vec<String>>, StoreError> {
    if roles.iter().any(|r| r == role) {
        return Ok(None);
    }
    if roles.len() >= max {
        return Err(StoreError::TooManyRoles(max));
    }
    let mut roles = roles.to_vec();
    roles.push(role.to_string());
    roles.sort();
    Ok(Some(roles))
}

/// What a revocation row revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedKind {
    /// A whole login session: every token carrying this `sid`.
    Session,
    /// One token, by its `jti`.
    Token,
}

impl RevokedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokedKind::Session => "session",
            RevokedKind::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(RevokedKind::Session),
            "token" => Some(RevokedKind::Token),
            _ => None,
        }
    }
}

/// A revocation: the id it revokes and until when it matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub id: uuid::Uuid,
    pub kind: RevokedKind,
    pub user_id: i64,
    /// Unix seconds after which no token it covers can be valid any more.
    pub expires_at: i64,
}

/// "Every token of this user issued at or before `not_before` is revoked": logout
/// everywhere, and deactivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCutoff {
    pub user_id: i64,
    /// Unix seconds; tokens with `iat <= not_before` are refused.
    pub not_before: i64,
    /// After this no token it covers can still be valid.
    pub expires_at: i64,
}

/// `cutoff` moved past the user's latest earlier cutoff (`last_not_before`). Token times
/// are whole seconds and a token issued after a cutoff is stamped one second past it
/// (`RevocationCache::issue_time`), so a second cutoff in that same second must reach
/// further, or the token issued in between would survive it.
pub(crate) fn after_earlier_cutoff(
    cutoff: &UserCutoff,
    last_not_before: Option<i64>,
) -> UserCutoff {
    UserCutoff {
        not_before: cutoff
            .not_before
            .max(last_not_before.map_or(i64::MIN, |l| l.saturating_add(1))),
        ..cutoff.clone()
    }
}

/// What the database holds beyond a cursor.
#[derive(Debug, Default)]
pub struct RevocationBatch {
    pub revocations: Vec<Revocation>,
    pub cutoffs: Vec<UserCutoff>,
    /// The row id to continue from.
    pub cursor: i64,
    /// Rows read, expired and unreadable ones included: fewer than asked for means the
    /// end of the table.
    pub rows: usize,
}

/// One row of the `revocations` table as both backends store it.
pub(crate) struct RevocationRow<'a> {
    pub row_id: i64,
    pub revoked_id: &'a str,
    pub kind: &'a str,
    pub user_id: i64,
    pub expires_at: i64,
    pub not_before: i64,
}

impl RevocationBatch {
    /// Takes one row, read in id order: moves the cursor past it and keeps it when it
    /// still matters at `now`.
    pub(crate) fn push_row(&mut self, row: RevocationRow<'_>, now: i64) {
        self.cursor = self.cursor.max(row.row_id);
        self.rows += 1;
        if row.expires_at < now {
            return;
        }
        if row.kind == "user" {
            self.cutoffs.push(UserCutoff {
                user_id: row.user_id,
                not_before: row.not_before,
                expires_at: row.expires_at,
            });
            return;
        }
        // A row this version cannot read is skipped, not fatal: it was written by a newer
        // gateway and says nothing this one could enforce.
        let (Ok(id), Some(kind)) = (
            uuid::Uuid::parse_str(row.revoked_id),
            RevokedKind::parse(row.kind),
        ) else {
            return;
        };
        self.revocations.push(Revocation {
            id,
            kind,
            user_id: row.user_id,
            expires_at: row.expires_at,
        });
    }
}

/// A storage failure. The uniqueness variants are client mistakes (409); the rest are 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already exists")]
    UsernameTaken,
    #[error("email already exists")]
    EmailTaken,
    #[error("a user has at most {0} roles")]
    TooManyRoles(usize),
    #[error("database error: {0}")]
    Database(String),
    #[error("database task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Database(with_causes(&e))
    }
}

/// An error with its chain of causes ("error connecting to server: Connection refused"),
/// each said once.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// The durable state of the gateway. Every method runs off the proxy's event loop.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an account; usernames and emails are unique case-insensitively.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// Finds an account by username, case-insensitively.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Finds an account by id.
    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError>;
    /// Commits a revocation; returns once it is durable.
    async fn revoke(&self, revocation: Revocation) -> Result<(), StoreError>;
    /// Records a user's cutoff (logout everywhere); returns once it is durable, with the
    /// cutoff as committed (see [`after_earlier_cutoff`]).
    async fn revoke_user_sessions(&self, cutoff: UserCutoff) -> Result<UserCutoff, StoreError>;
    /// Unexpired revocations and cutoffs among the first `limit` rows with a row id above
    /// `cursor`, oldest first.
    async fn revocations_after(
        &self,
        cursor: i64,
        now: i64,
        limit: usize,
    ) -> Result<RevocationBatch, StoreError>;
    /// Marks refresh token `jti` as spent. `None` when this is its first use, else when it
    /// was spent before (unix seconds). Atomic: of two concurrent calls one sees the other.
    async fn spend_refresh_token(
        &self,
        jti: uuid::Uuid,
        user_id: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Every account, by id.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Activates or deactivates an account.
    async fn set_active(&self, user_id: i64, active: bool) -> Result<(), StoreError>;
    /// Adds `role` to an account's roles; `false` when it had it already. Refused
    /// ([`StoreError::TooManyRoles`]) when the account already has `max_roles`.
    async fn grant_role(
        &self,
        user_id: i64,
        role: &str,
        max_roles: usize,
    ) -> Result<bool, StoreError>;
    /// Removes `role` from an account and, when it had it, commits `cutoff` in the same
    /// transaction (its sessions end with the role); returns the cutoff as committed, or
    /// `None` when it did not have the role.
    async fn revoke_role(
        &self,
        user_id: i64,
        role: &str,
        cutoff: UserCutoff,
    ) -> Result<Option<UserCutoff>, StoreError>;
    /// Replaces an account's password hash and commits `cutoff` in the same transaction;
    /// returns the cutoff as committed.
    async fn change_password(
        &self,
        user_id: i64,
        password_hash: String,
        cutoff: UserCutoff,
    ) -> Result<UserCutoff, StoreError>;
    /// Deletes an account (its username and email are free again) and commits `cutoff`,
    /// which outlives the row, in the same transaction; returns the cutoff as committed.
    async fn delete_user(&self, user_id: i64, cutoff: UserCutoff)
        -> Result<UserCutoff, StoreError>;
    /// Deletes revocations and spent refresh tokens that expired before `now`.
    async fn prune_revocations(&self, now: i64) -> Result<usize, StoreError>;
    /// Answers when the database can be read.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Every signing key, retired ones included, oldest `signs_from` first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
    /// Adds a signing key under a database-wide lock, unless a live key created after
    /// `unless_created_after` exists: of two gateways rotating on schedule at once, one adds
    /// a key and the other sees it. `None` adds unconditionally (`authgate keys rotate`).
    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
        unless_created_after: Option<i64>,
    ) -> Result<AddKeyOutcome, StoreError>;
    /// Marks key `kid` retired at `now`; false when no live key has that kid.
    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool, StoreError>;
    /// A signal raised whenever another process may have committed a revocation, so the
    /// cache can sync at once instead of at its next tick. `None` (SQLite): polling only.
    fn subscribe(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(
        row_id: i64,
        revoked_id: &'a str,
        kind: &'a str,
        expires_at: i64,
    ) -> RevocationRow<'a> {
        RevocationRow {
            row_id,
            revoked_id,
            kind,
            user_id: 7,
            expires_at,
            not_before: 50,
        }
    }

    #[test]
    fn a_batch_keeps_live_rows_and_moves_past_every_row() {
        let sid = uuid::Uuid::new_v4().to_string();
        let mut batch = RevocationBatch::default();
        batch.push_row(row(3, &sid, "session", 200), 100);
        batch.push_row(row(4, "user:7:50", "user", 200), 100);
        batch.push_row(row(5, &sid, "token", 99), 100); // expired
        batch.push_row(row(6, "not-a-uuid", "session", 200), 100); // unreadable
        batch.push_row(row(7, &sid, "from-the-future", 200), 100); // unknown kind
        assert_eq!(batch.cursor, 7);
        assert_eq!(batch.revocations.len(), 1);
        assert_eq!(batch.revocations[0].kind, RevokedKind::Session);
        assert_eq!(
            batch.cutoffs,
            vec![UserCutoff {
                user_id: 7,
                not_before: 50,
                expires_at: 200
            }]
        );
    }

    #[test]
    fn roles_round_trip_sorted_and_bounded() {
        let roles = with_role(&["ops".into()], "admin", 16).unwrap().unwrap();
        assert_eq!(roles, vec!["admin", "ops"]);
        assert_eq!(roles_from_column(&roles_to_column(&roles)), roles);
        assert!(roles_from_column("").is_empty());
        assert_eq!(with_role(&roles, "ops", 16).unwrap(), None);
        assert!(matches!(
            with_role(&roles, "dev", 2),
            Err(StoreError::TooManyRoles(2))
        ));
    }

    #[test]
    fn a_second_cutoff_in_one_second_reaches_past_the_first() {
        let c = UserCutoff {
            user_id: 7,
            not_before: 100,
            expires_at: 900,
        };
        assert_eq!(after_earlier_cutoff(&c, None), c);
        assert_eq!(after_earlier_cutoff(&c, Some(50)), c);
        assert_eq!(after_earlier_cutoff(&c, Some(100)).not_before, 101);
        assert_eq!(after_earlier_cutoff(&c, Some(101)).not_before, 102);
    }

    #[test]
    fn keys_fold_case_beyond_ascii() {
        assert_eq!(fold_case("ÄdMin"), fold_case("ädmin"));
    }
}
