//! The signing-key rows both backends store: public key in clear, private key sealed
//! (see `auth::keys::sealing`), and the times that decide its life.

/// One row of the `signing_keys` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The JWS `alg` name (`EdDSA`, `ES256`).
    pub algorithm: String,
    pub public_key: Vec<u8>,
    /// Nonce and ciphertext; never the private key in clear.
    pub sealed_private_key: Vec<u8>,
    pub created_at: i64,
    /// When it starts signing (its creation plus the publish delay).
    pub signs_from: i64,
    /// When an operator retired it; it then neither signs, verifies nor is published.
    pub retired_at: Option<i64>,
}

/// What [`crate::store::Store::add_signing_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddKeyOutcome {
    Added,
    /// Another gateway added a key first; its kid.
    NewerKeyExists(String),
}
