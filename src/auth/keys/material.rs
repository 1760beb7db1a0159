//! Key bytes: generation of Ed25519 and P-256 key pairs from the OS's random source, the
//! public key as a JWK, the RFC 7638 thumbprint that serves as `kid`, and the jsonwebtoken
//! keys built from the raw bytes.
//!
//! Stored forms: the private key is its 32-byte seed (Ed25519) or scalar (P-256); the public
//! key is the raw 32-byte point (Ed25519) or the 65-byte uncompressed SEC1 point (P-256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The asymmetric algorithms authgate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EdDSA,
    ES256,
}

impl KeyAlgorithm {
    /// The JWS `alg` name, also the name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EdDSA => "EdDSA",
            KeyAlgorithm::ES256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(KeyAlgorithm::EdDSA),
            "ES256" => Some(KeyAlgorithm::ES256),
            _ => None,
        }
    }

    /// jsonwebtoken's name for it.
    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            KeyAlgorithm::ES256 => Algorithm::ES256,
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A freshly generated key pair. The private bytes are wiped when it is dropped.
pub struct GeneratedKey {
    pub algorithm: KeyAlgorithm,
    pub private_key: zeroize::Zeroizing<Vec<u8>>,
    pub public_key: Vec<u8>,
}

/// Makes a new key pair from the OS's random source.
pub fn generate(algorithm: KeyAlgorithm) -> GeneratedKey {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    loop {
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        if let Ok(public_key) = public_from_private(algorithm, seed.as_ref()) {
            return GeneratedKey {
                algorithm,
                private_key: zeroize::Zeroizing::new(seed.to_vec()),
                public_key,
            };
        }
        // A P-256 scalar of zero or above the group order (odds about 2^-32): draw again.
    }
}

/// The public key belonging to `private_key`.
pub fn public_from_private(
    algorithm: KeyAlgorithm,
    private_key: &[u8],
) -> Result<Vec<u8>, &'static str> {
    match algorithm {
        KeyAlgorithm::EdDSA => {
            let seed: &[u8; 32] = private_key
                .try_into()
                .map_err(|_| "an Ed25519 seed is 32 bytes")?;
            let signing = ed25519_dalek::SigningKey::from_bytes(seed);
            Ok(signing.verifying_key().to_bytes().to_vec())
        }
        KeyAlgorithm::ES256 => {
            let signing = p256::ecdsa::SigningKey::from_slice(private_key)
                .map_err(|_| "not a P-256 scalar")?;
            Ok(signing
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec())
        }
    }
}

/// The key jsonwebtoken signs with (it takes PKCS#8 DER for both algorithms).
pub fn encoding_key(
    algorithm: KeyAlgorithm,
    private_key: &[u8],
) -> Result<EncodingKey, &'static str> {
    let der = match algorithm {
        KeyAlgorithm::EdDSA => {
            let seed: &[u8; 32] = private_key
                .try_into()
                .map_err(|_| "an Ed25519 seed is 32 bytes")?;
            ed25519_dalek::SigningKey::from_bytes(seed)
                .to_pkcs8_der()
                .map_err(|_| "cannot encode the Ed25519 key")?
        }
        KeyAlgorithm::ES256 => p256::ecdsa::SigningKey::from_slice(private_key)
            .map_err(|_| "not a P-256 scalar")?
            .to_pkcs8_der()
            .map_err(|_| "cannot encode the P-256 key")?,
    };
    Ok(match algorithm {
        KeyAlgorithm::EdDSA => EncodingKey::from_ed_der(der.as_bytes()),
        KeyAlgorithm::ES256 => EncodingKey::from_ec_der(der.as_bytes()),
    })
}

/// The key jsonwebtoken verifies with: the raw point for Ed25519, SEC1 bytes for P-256.
pub fn decoding_key(
    algorithm: KeyAlgorithm,
    public_key: &[u8],
) -> Result<DecodingKey, &'static str> {
    match algorithm {
        KeyAlgorithm::EdDSA => {
            let point: &[u8; 32] = public_key
                .try_into()
                .map_err(|_| "an Ed25519 public key is 32 bytes")?;
            ed25519_dalek::VerifyingKey::from_bytes(point).map_err(|_| "not an Ed25519 point")?;
            Ok(DecodingKey::from_ed_der(public_key))
        }
        KeyAlgorithm::ES256 => {
            p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                .map_err(|_| "not a P-256 point")?;
            Ok(DecodingKey::from_ec_der(public_key))
        }
    }
}

/// The members of the public JWK that RFC 7638 hashes, in its lexicographic order.
fn required_members(algorithm: KeyAlgorithm, public_key: &[u8]) -> Value {
    match algorithm {
        KeyAlgorithm::EdDSA => json!({
            "crv": "Ed25519",
            "kty": "OKP",
            "x": URL_SAFE_NO_PAD.encode(public_key),
        }),
        KeyAlgorithm::ES256 => {
            // Uncompressed SEC1: 0x04, then x and y of 32 bytes each.
            let (x, y) = public_key
                .get(1..)
                .map(|xy| xy.split_at(xy.len() / 2))
                .unwrap_or_default();
            json!({
                "crv": "P-256",
                "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            })
        }
    }
}

/// RFC 7638: SHA-256 over the required members, serialised without whitespace with keys
/// in order (serde_json's map is ordered), base64url without padding.
pub fn thumbprint(algorithm: KeyAlgorithm, public_key: &[u8]) -> String {
    let canonical = required_members(algorithm, public_key).to_string();
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public key as published in the JWK Set (RFC 7517, RFC 8037 for OKP).
pub fn public_jwk(algorithm: KeyAlgorithm, public_key: &[u8], kid: &str) -> Value {
    let mut jwk = required_members(algorithm, public_key);
    if let Some(map) = jwk.as_object_mut() {
        map.insert("kid".into(), kid.into());
        map.insert("alg".into(), algorithm.as_str().into());
        map.insert("use".into(), "sig".into());
    }
    jwk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8037_ed25519_thumbprint_vector() {
        // RFC 8037 appendix A.3: the thumbprint of the A.2 public key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            thumbprint(KeyAlgorithm::EdDSA, &x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rfc_8037_ed25519_seed_gives_its_public_key() {
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let x = public_from_private(KeyAlgorithm::EdDSA, &d).unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(x),
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
    }

    #[test]
    fn generated_keys_sign_and_verify_with_jsonwebtoken() {
        for algorithm in [KeyAlgorithm::EdDSA, KeyAlgorithm::ES256] {
            let key = generate(algorithm);
            let enc = encoding_key(algorithm, &key.private_key).unwrap();
            let dec = decoding_key(algorithm, &key.public_key).unwrap();
            let header = jsonwebtoken::Header::new(algorithm.jwt_algorithm());
            let claims = json!({"sub": "1", "exp": 4_000_000_000i64});
            let token = jsonwebtoken::encode(&header, &claims, &enc).unwrap();
            let mut validation = jsonwebtoken::Validation::new(algorithm.jwt_algorithm());
            validation.required_spec_claims.clear();
            validation.validate_aud = false;
            jsonwebtoken::decode::<Value>(&token, &dec, &validation).unwrap();
            let other = generate(algorithm);
            let wrong = decoding_key(algorithm, &other.public_key).unwrap();
            assert!(jsonwebtoken::decode::<Value>(&token, &wrong, &validation).is_err());
        }
    }

    #[test]
    fn the_jwk_carries_kid_alg_and_use() {
        let key = generate(KeyAlgorithm::ES256);
        let kid = thumbprint(KeyAlgorithm::ES256, &key.public_key);
        let jwk = public_jwk(KeyAlgorithm::ES256, &key.public_key, &kid);
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], kid.as_str());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["y"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert!(jwk.get("d").is_none(), "never the private part");
    }
}
