//! Durable state: accounts and revocations behind the [`Store`] trait, so a second backend
//! can sit beside the embedded SQLite one.

mod schema;
mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteStore;

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub active: bool,
    pub created_at: i64,
}

/// A new account; the hash is already computed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
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

/// What the database holds beyond a cursor.
#[derive(Debug, Default)]
pub struct RevocationBatch {
    pub revocations: Vec<Revocation>,
    pub cutoffs: Vec<UserCutoff>,
    /// The row id to continue from.
    pub cursor: i64,
}

/// A storage failure. The uniqueness variants are client mistakes (409); the rest are 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already exists")]
    UsernameTaken,
    #[error("email already exists")]
    EmailTaken,
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
    /// Records a user's cutoff (logout everywhere); returns once it is durable.
    async fn revoke_user_sessions(&self, cutoff: UserCutoff) -> Result<(), StoreError>;
    /// Unexpired revocations and cutoffs with a row id above `cursor`, oldest first.
    async fn revocations_after(&self, cursor: i64, now: i64)
        -> Result<RevocationBatch, StoreError>;
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
    /// Deletes revocations and spent refresh tokens that expired before `now`.
    async fn prune_revocations(&self, now: i64) -> Result<usize, StoreError>;
    /// Answers when the database can be read.
    async fn ping(&self) -> Result<(), StoreError>;
}
