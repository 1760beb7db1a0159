//! The auth API and token checks: input validation, argon2id hashing on a bounded pool,
//! JWT issue and verification, and the revocation cache.

pub mod account;
pub mod bearer;
pub mod error;
pub mod json_body;
pub mod keys;
pub mod login_throttle;
pub mod password;
pub mod revocation;
pub mod roles;
pub mod service;
pub mod sessions;
pub mod tokens;
pub mod validation;
pub mod verified_cache;

pub use error::{AuthError, TokenError};
pub use service::{AuthService, Reply};
pub use tokens::{TokenService, TokenType, VerifiedToken};
