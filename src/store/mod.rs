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
    /// Unexpired revocations with a row id above `cursor`, oldest first, with the new cursor.
    async fn revocations_after(
        &self,
        cursor: i64,
        now: i64,
    ) -> Result<(Vec<Revocation>, i64), StoreError>;
    /// Deletes revocations that expired before `now`; returns how many.
    async fn prune_revocations(&self, now: i64) -> Result<usize, StoreError>;
    /// Answers when the database can be read.
    async fn ping(&self) -> Result<(), StoreError>;
}
