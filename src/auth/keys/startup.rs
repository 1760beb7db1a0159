//! The key set a gateway starts with: read from the database, with a first key made when
//! the configured algorithm is asymmetric and no live key exists, and a refusal to start
//! when the configured algorithm disagrees with the database's newest key.

use std::sync::Arc;

use super::key_set::{KeySet, KeySnapshot};
use super::sealing::KeyEncryptionKey;
use super::{rotation, KeyError};
use crate::auth::tokens::key_policy;
use crate::config::TokenConfig;
use crate::store::Store;

/// Loads the key set for `config`, making the first key if it is needed.
pub async fn load_key_set(
    store: &dyn Store,
    config: &TokenConfig,
    now: i64,
) -> Result<Arc<KeySet>, KeyError> {
    let kek = config
        .key_encryption_secret
        .as_deref()
        .map(KeyEncryptionKey::from_secret);
    if let (Some(algorithm), Some(kek)) = (config.algorithm, kek.as_ref()) {
        let live = store
            .signing_keys()
            .await?
            .iter()
            .any(|k| k.retired_at.is_none());
        if !live {
            if let Some(kid) = rotation::ensure_signing_key(store, kek, algorithm, now).await? {
                tracing::info!(target: "audit", event = "signing_key_added", kid = %kid, algorithm = %algorithm, "first signing key made");
            }
        }
    }
    let keys = Arc::new(KeySet::new(kek, key_policy(config)));
    keys.sync(store).await?;
    check_algorithm(&keys.load(), config)?;
    Ok(keys)
}

/// The configured algorithm must be the newest live key's (or HS256 with no live key).
fn check_algorithm(snapshot: &KeySnapshot, config: &TokenConfig) -> Result<(), KeyError> {
    let newest = snapshot.newest();
    let active = newest.map_or("HS256", |k| k.algorithm.as_str());
    if active == config.algorithm_name() {
        return Ok(());
    }
    Err(KeyError::AlgorithmMismatch {
        configured: config.algorithm_name(),
        active,
        kid: newest.map_or_else(|| "(none)".to_string(), |k| k.kid.clone()),
    })
}
