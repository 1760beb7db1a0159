//! Private keys at rest: sealed with ChaCha20-Poly1305 (RustCrypto) under a key derived by
//! HKDF-SHA-256 from `[tokens] key_encryption_secret`. The key's `kid` is the associated
//! data, so a sealed key copied onto another row does not open. Stored form: the 12-byte
//! nonce, then the ciphertext with its 16-byte tag.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;

const NONCE_BYTES: usize = 12;
/// Names this use of the secret, so the same secret used elsewhere yields another key.
const HKDF_INFO: &[u8] = b"authgate signing-key encryption v1";

/// The AEAD key private keys are sealed with.
pub struct KeyEncryptionKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

impl KeyEncryptionKey {
    /// Derives the key from the configured secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        Hkdf::<sha2::Sha256>::new(None, secret)
            .expand(HKDF_INFO, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        Self {
            cipher: ChaCha20Poly1305::new(&Key::from(*key)),
        }
    }

    /// Encrypts `private_key`, bound to `kid`.
    pub fn seal(&self, kid: &str, private_key: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: private_key,
                    aad: kid.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encrypts any message under 256 GiB");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts what [`Self::seal`] made for `kid`; `None` when the secret or the kid differ
    /// or the bytes were altered.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .ok()
            .map(zeroize::Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_secret_and_kid() {
        let kek = KeyEncryptionKey::from_secret(b"a key encryption secret of 32+ bytes");
        let sealed = kek.seal("kid-1", &[9u8; 32]);
        assert_eq!(sealed.len(), 12 + 32 + 16);
        assert!(!sealed.windows(32).any(|w| w == [9u8; 32]), "not in clear");
        assert_eq!(kek.open("kid-1", &sealed).unwrap().as_slice(), &[9u8; 32]);
        assert!(kek.open("kid-2", &sealed).is_none(), "bound to its kid");
        let other = KeyEncryptionKey::from_secret(b"another secret, also 32 bytes long");
        assert!(other.open("kid-1", &sealed).is_none());
        let mut altered = sealed.clone();
        altered[20] ^= 1;
        assert!(kek.open("kid-1", &altered).is_none());
        assert!(kek.open("kid-1", &sealed[..5]).is_none());
    }
}
