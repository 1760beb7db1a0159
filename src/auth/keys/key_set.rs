//! The signing keys every request reads: a snapshot built from the database rows, swapped
//! whole (arc-swap) when the rows change, so a request sees one consistent set and never
//! waits for a lock. Gateways sharing a database follow each other's rotations and
//! retirements by re-reading the small `signing_keys` table on the sync timer.

use std::sync::Arc;

use arc_swap::ArcSwap;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

use super::lifecycle::{self, KeyWindow};
use super::material::{self, KeyAlgorithm};
use super::sealing::KeyEncryptionKey;
use super::KeyError;
use crate::store::{Store, StoredSigningKey};

/// A key that is not retired, ready to sign and verify.
pub struct LiveKey {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    pub created_at: i64,
    pub signs_from: i64,
    /// The last second a token it signed can be valid; `None` while it is the newest key.
    pub verifies_until: Option<i64>,
    pub header: Header,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub validation: Validation,
    pub jwk: Value,
}

impl LiveKey {
    fn verifies_at(&self, now: i64) -> bool {
        self.verifies_until.is_none_or(|until| now <= until)
    }
}

/// How tokens are checked, the same for every key: set once from the config.
#[derive(Clone)]
pub struct KeyPolicy {
    /// The longest lifetime a token can have (the refresh TTL), in seconds.
    pub longest_ttl: i64,
    pub leeway: i64,
    /// `[tokens] algorithm` is HS256: with no live key, the secret signs without limit.
    pub hmac_configured: bool,
    /// Validation of everything but the algorithm, copied into every key's validation.
    pub validation: Validation,
    /// How long consumers may cache the JWK Set, in seconds: shorter than the publish delay.
    pub jwks_max_age: u64,
}

/// One consistent view of the stored keys.
pub struct KeySnapshot {
    /// Live keys in `signs_from` order.
    keys: Vec<LiveKey>,
    /// HS256 tokens issued after this are refused (the switch to an asymmetric key);
    /// `None`: the secret verifies as it always did.
    hmac_issued_until: Option<i64>,
    /// The rows it was built from (kid and retirement), to tell when to rebuild.
    fingerprint: Vec<(String, Option<i64>)>,
}

impl KeySnapshot {
    /// No keys: HS256 only, as before keys existed.
    pub fn empty() -> Self {
        Self {
            keys: Vec::new(),
            hmac_issued_until: None,
            fingerprint: Vec::new(),
        }
    }

    /// Builds the view of `rows` (in `signs_from` order), opening the private keys of the
    /// live ones with `kek`.
    pub fn build(
        rows: &[StoredSigningKey],
        kek: Option<&KeyEncryptionKey>,
        policy: &KeyPolicy,
    ) -> Result<Self, KeyError> {
        let live: Vec<&StoredSigningKey> = rows.iter().filter(|r| r.retired_at.is_none()).collect();
        let windows: Vec<KeyWindow> = live
            .iter()
            .map(|r| KeyWindow {
                signs_from: r.signs_from,
                retired: false,
            })
            .collect();
        let mut keys = Vec::with_capacity(live.len());
        for (i, row) in live.iter().enumerate() {
            let kek = kek.ok_or(KeyError::NoKeyEncryptionSecret)?;
            keys.push(live_key(
                row,
                kek,
                policy,
                lifecycle::signing_ends(&windows, i),
            )?);
        }
        let hmac_issued_until = if keys.is_empty() && policy.hmac_configured {
            None
        } else {
            rows.iter().map(|r| r.signs_from).min()
        };
        Ok(Self {
            keys,
            hmac_issued_until,
            fingerprint: fingerprint(rows),
        })
    }

    /// The key that signs at `now`, if any key does.
    pub fn signer(&self, now: i64) -> Option<&LiveKey> {
        let windows: Vec<KeyWindow> = self
            .keys
            .iter()
            .map(|k| KeyWindow {
                signs_from: k.signs_from,
                retired: false,
            })
            .collect();
        lifecycle::signer(&windows, now).map(|i| &self.keys[i])
    }

    /// The key named `kid` if it may verify a token at `now`.
    pub fn verifier(&self, kid: &str, now: i64) -> Option<&LiveKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .filter(|k| k.verifies_at(now))
    }

    /// Whether an HS256 token issued at `iat` may still be accepted.
    pub fn hmac_accepts(&self, iat: i64) -> bool {
        self.hmac_issued_until.is_none_or(|until| iat <= until)
    }

    /// The newest live key (the one `rotate` made last), pending or not.
    pub fn newest(&self) -> Option<&LiveKey> {
        self.keys
            .iter()
            .max_by_key(|k| (k.created_at, k.signs_from))
    }

    /// Every live key, oldest first.
    pub fn keys(&self) -> &[LiveKey] {
        &self.keys
    }

    /// The JWK Set at `now`: every key that may verify a live token, including one
    /// waiting to sign.
    pub fn jwks(&self, now: i64) -> Value {
        let keys: Vec<&Value> = self
            .keys
            .iter()
            .filter(|k| k.verifies_at(now))
            .map(|k| &k.jwk)
            .collect();
        json!({ "keys": keys })
    }
}

fn fingerprint(rows: &[StoredSigningKey]) -> Vec<(String, Option<i64>)> {
    rows.iter().map(|r| (r.kid.clone(), r.retired_at)).collect()
}

fn live_key(
    row: &StoredSigningKey,
    kek: &KeyEncryptionKey,
    policy: &KeyPolicy,
    signing_ends: Option<i64>,
) -> Result<LiveKey, KeyError> {
    let malformed = |reason: &str| KeyError::Malformed {
        kid: row.kid.clone(),
        reason: reason.to_string(),
    };
    let algorithm =
        KeyAlgorithm::parse(&row.algorithm).ok_or_else(|| KeyError::UnknownAlgorithm {
            kid: row.kid.clone(),
            algorithm: row.algorithm.clone(),
        })?;
    if material::thumbprint(algorithm, &row.public_key) != row.kid {
        return Err(malformed("its kid is not the thumbprint of its public key"));
    }
    let private_key =
        kek.open(&row.kid, &row.sealed_private_key)
            .ok_or_else(|| KeyError::Unseal {
                kid: row.kid.clone(),
            })?;
    if material::public_from_private(algorithm, &private_key).map_err(malformed)? != row.public_key
    {
        return Err(malformed("its private key does not match its public key"));
    }
    let mut header = Header::new(algorithm.jwt_algorithm());
    header.kid = Some(row.kid.clone());
    let mut validation = policy.validation.clone();
    validation.algorithms = vec![algorithm.jwt_algorithm()];
    Ok(LiveKey {
        kid: row.kid.clone(),
        algorithm,
        created_at: row.created_at,
        signs_from: row.signs_from,
        verifies_until: lifecycle::verifies_until(signing_ends, policy.longest_ttl, policy.leeway),
        header,
        encoding: material::encoding_key(algorithm, &private_key).map_err(malformed)?,
        decoding: material::decoding_key(algorithm, &row.public_key).map_err(malformed)?,
        validation,
        jwk: material::public_jwk(algorithm, &row.public_key, &row.kid),
    })
}

/// The live snapshot and what is needed to rebuild it.
pub struct KeySet {
    current: ArcSwap<KeySnapshot>,
    kek: Option<KeyEncryptionKey>,
    policy: KeyPolicy,
}

impl KeySet {
    pub fn new(kek: Option<KeyEncryptionKey>, policy: KeyPolicy) -> Self {
        Self {
            current: ArcSwap::from_pointee(KeySnapshot::empty()),
            kek,
            policy,
        }
    }

    /// The snapshot a request works with.
    pub fn load(&self) -> arc_swap::Guard<Arc<KeySnapshot>> {
        self.current.load()
    }

    /// Seconds the JWK Set may be cached.
    pub fn jwks_max_age(&self) -> u64 {
        self.policy.jwks_max_age
    }

    pub fn key_encryption_key(&self) -> Option<&KeyEncryptionKey> {
        self.kek.as_ref()
    }

    /// Re-reads the rows and swaps in a new snapshot when they changed. Returns true when
    /// a key that verified before no longer does (a retirement): verified tokens cached
    /// under it must be forgotten.
    pub async fn sync(&self, store: &dyn Store) -> Result<bool, KeyError> {
        let rows = store.signing_keys().await?;
        if fingerprint(&rows) == self.current.load().fingerprint {
            return Ok(false);
        }
        let next = KeySnapshot::build(&rows, self.kek.as_ref(), &self.policy)?;
        let before = self.current.swap(Arc::new(next));
        let now = crate::auth::service::now_secs();
        let after = self.current.load();
        Ok(before
            .keys
            .iter()
            .any(|k| after.verifier(&k.kid, now).is_none()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::rotation::new_key;

    fn policy(hmac_configured: bool) -> KeyPolicy {
        KeyPolicy {
            longest_ttl: 100,
            leeway: 5,
            hmac_configured,
            validation: Validation::new(jsonwebtoken::Algorithm::EdDSA),
            jwks_max_age: 300,
        }
    }

    fn kek() -> KeyEncryptionKey {
        KeyEncryptionKey::from_secret(b"unit-test key encryption secret, 32+ bytes")
    }

    fn kids(value: &Value) -> Vec<String> {
        value["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_old_key_verifies_through_the_overlap_then_leaves() {
        let kek = kek();
        let old = new_key(KeyAlgorithm::EdDSA, &kek, 1000, 1000);
        let new = new_key(KeyAlgorithm::EdDSA, &kek, 2000, 2600);
        let snap =
            KeySnapshot::build(&[old.clone(), new.clone()], Some(&kek), &policy(false)).unwrap();
        assert_eq!(snap.signer(2599).unwrap().kid, old.kid);
        assert_eq!(snap.signer(2600).unwrap().kid, new.kid);
        // Published from its creation, before it signs.
        assert_eq!(
            kids(&snap.jwks(2000)),
            vec![old.kid.clone(), new.kid.clone()]
        );
        // The old key's last token expires at 2600 + 100, plus 5 of leeway.
        assert!(snap.verifier(&old.kid, 2705).is_some());
        assert!(snap.verifier(&old.kid, 2706).is_none());
        assert_eq!(kids(&snap.jwks(2706)), vec![new.kid.clone()]);
        assert!(snap.verifier("no-such-kid", 2000).is_none());
    }

    #[test]
    fn retired_keys_neither_sign_verify_nor_publish() {
        let kek = kek();
        let mut old = new_key(KeyAlgorithm::ES256, &kek, 1000, 1000);
        old.retired_at = Some(1500);
        let new = new_key(KeyAlgorithm::ES256, &kek, 1400, 2000);
        let snap =
            KeySnapshot::build(&[old.clone(), new.clone()], Some(&kek), &policy(false)).unwrap();
        assert!(snap.verifier(&old.kid, 1600).is_none());
        assert_eq!(
            snap.signer(1600).unwrap().kid,
            new.kid,
            "the waiting key signs at once"
        );
        assert_eq!(kids(&snap.jwks(1600)), vec![new.kid]);
    }

    #[test]
    fn the_secret_verifies_only_what_it_signed_before_the_first_key() {
        let kek = kek();
        let key = new_key(KeyAlgorithm::EdDSA, &kek, 1000, 1000);
        let snap =
            KeySnapshot::build(std::slice::from_ref(&key), Some(&kek), &policy(false)).unwrap();
        assert!(snap.hmac_accepts(1000) && !snap.hmac_accepts(1001));
        // Every key retired on an HS256 gateway: the secret signs again, without limit.
        let mut retired = key.clone();
        retired.retired_at = Some(1200);
        let hs256 =
            KeySnapshot::build(std::slice::from_ref(&retired), Some(&kek), &policy(true)).unwrap();
        assert!(hs256.hmac_accepts(5000) && hs256.signer(5000).is_none());
        // On an EdDSA gateway the switch still holds.
        let eddsa = KeySnapshot::build(&[retired], Some(&kek), &policy(false)).unwrap();
        assert!(!eddsa.hmac_accepts(1001));
        assert!(KeySnapshot::empty().hmac_accepts(i64::MAX));
    }

    #[test]
    fn a_row_that_does_not_add_up_is_refused() {
        let kek = kek();
        let key = new_key(KeyAlgorithm::EdDSA, &kek, 1000, 1000);
        let other = KeyEncryptionKey::from_secret(b"another secret of at least 32 bytes!");
        assert!(matches!(
            KeySnapshot::build(std::slice::from_ref(&key), Some(&other), &policy(false)),
            Err(KeyError::Unseal { .. })
        ));
        assert!(matches!(
            KeySnapshot::build(std::slice::from_ref(&key), None, &policy(false)),
            Err(KeyError::NoKeyEncryptionSecret)
        ));
        let mut swapped = key.clone();
        swapped.public_key = new_key(KeyAlgorithm::EdDSA, &kek, 0, 0).public_key;
        assert!(matches!(
            KeySnapshot::build(&[swapped], Some(&kek), &policy(false)),
            Err(KeyError::Malformed { .. })
        ));
        let mut unknown = key;
        unknown.algorithm = "RS256".into();
        assert!(matches!(
            KeySnapshot::build(&[unknown], Some(&kek), &policy(false)),
            Err(KeyError::UnknownAlgorithm { .. })
        ));
    }
}
