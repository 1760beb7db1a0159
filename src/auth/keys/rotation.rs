//! Adding and retiring keys in the database: the first key when a gateway starts with an
//! asymmetric algorithm, rotation (on command or on schedule) and retirement. Every
//! gateway sharing the database picks the change up on its next key sync.

use super::material::{self, KeyAlgorithm};
use super::sealing::KeyEncryptionKey;
use super::KeyError;
use crate::store::{AddKeyOutcome, Store, StoredSigningKey};

/// A new key of `algorithm`, sealed, that signs from `signs_from`.
pub fn new_key(
    algorithm: KeyAlgorithm,
    kek: &KeyEncryptionKey,
    now: i64,
    signs_from: i64,
) -> StoredSigningKey {
    let key = material::generate(algorithm);
    let kid = material::thumbprint(algorithm, &key.public_key);
    StoredSigningKey {
        sealed_private_key: kek.seal(&kid, &key.private_key),
        kid,
        algorithm: algorithm.as_str().to_string(),
        public_key: key.public_key,
        created_at: now,
        signs_from,
        retired_at: None,
    }
}

/// Makes a key when no live key exists (the first one, or after every key was retired). It
/// signs at once: waiting would mean no signature at all, and consumers that meet its
/// unknown kid refetch the JWK Set. Returns the kid of the key it added.
pub async fn ensure_signing_key(
    store: &dyn Store,
    kek: &KeyEncryptionKey,
    algorithm: KeyAlgorithm,
    now: i64,
) -> Result<Option<String>, KeyError> {
    let key = new_key(algorithm, kek, now, now);
    let kid = key.kid.clone();
    Ok(match store.add_signing_key(key, Some(i64::MIN)).await? {
        AddKeyOutcome::Added => Some(kid),
        AddKeyOutcome::NewerKeyExists(_) => None,
    })
}

/// Adds a key that is published now and signs after `publish_delay` seconds. With
/// `unless_created_after`, nothing is added when another gateway rotated after that time.
pub async fn rotate(
    store: &dyn Store,
    kek: &KeyEncryptionKey,
    algorithm: KeyAlgorithm,
    now: i64,
    publish_delay: i64,
    unless_created_after: Option<i64>,
) -> Result<AddKeyOutcome, KeyError> {
    let key = new_key(algorithm, kek, now, now.saturating_add(publish_delay));
    let kid = key.kid.clone();
    Ok(
        match store.add_signing_key(key, unless_created_after).await? {
            AddKeyOutcome::Added => {
                tracing::info!(target: "audit", event = "signing_key_added", kid = %kid, algorithm = %algorithm);
                AddKeyOutcome::Added
            }
            other => other,
        },
    )
}

/// Rotates when the newest live key is `every` seconds old or older; the database lock
/// in [`Store::add_signing_key`] makes one gateway of a fleet do it.
pub async fn rotate_if_due(
    store: &dyn Store,
    kek: &KeyEncryptionKey,
    algorithm: KeyAlgorithm,
    now: i64,
    every: i64,
    publish_delay: i64,
) -> Result<bool, KeyError> {
    let rows = store.signing_keys().await?;
    let newest = rows
        .iter()
        .filter(|r| r.retired_at.is_none())
        .map(|r| r.created_at)
        .max();
    if newest.is_some_and(|created| now.saturating_sub(created) < every) {
        return Ok(false);
    }
    let due_since = now.saturating_sub(every);
    let outcome = rotate(store, kek, algorithm, now, publish_delay, Some(due_since)).await?;
    Ok(outcome == AddKeyOutcome::Added)
}

/// Retires key `kid` at once: it stops signing, verifying and being published.
pub async fn retire(store: &dyn Store, kid: &str, now: i64) -> Result<(), KeyError> {
    if store.retire_signing_key(kid, now).await? {
        tracing::info!(target: "audit", event = "signing_key_retired", kid = %kid);
        Ok(())
    } else {
        Err(KeyError::NoSuchKey(kid.to_string()))
    }
}
