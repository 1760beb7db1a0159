//! Issuing and verifying the JWTs: HS256 with the shared secret, or EdDSA / ES256 with the
//! database's signing keys ([`KeySet`]), `typ: JWT`, and every claim checked: signature,
//! `exp`/`nbf`/`iat` with the configured leeway, `iss`, `aud`, the token type, and
//! well-formed ids. A `crit` header is refused.
//!
//! RFC 8725: the token's `kid` only selects a key among the stored ones, and the token's
//! `alg` must be that key's algorithm, so a public key can never be used as an HMAC secret.
//! `jku`, `jwk`, `x5u` and `x5c` headers are never followed: keys come from the database.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{AuthError, TokenError};
use super::keys::key_set::{KeyPolicy, KeySet, KeySnapshot, LiveKey};
use crate::config::TokenConfig;

/// The longest the JWK Set may be cached, in seconds.
const JWKS_MAX_AGE_CAP_SECS: u64 = 300;

/// Longest `kid` looked up; a thumbprint is 43 characters.
pub const MAX_KID_BYTES: usize = 64;

/// `access` or `refresh`, the claim Flask-JWT-Extended calls `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims authgate puts in every token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub username: String,
    #[serde(rename = "type")]
    pub token_type: TokenType,
    pub jti: String,
    /// The login session every token of one login shares; logout revokes it.
    pub sid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    #[serde(default)]
    pub fresh: bool,
    /// The user's roles when the token was issued; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Whom a token is issued to, in which login session.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: i64,
    pub username: &'a str,
    pub sid: Uuid,
    pub roles: &'a [String],
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: i64,
    pub username: String,
    pub token_type: TokenType,
    pub jti: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub roles: Vec<String>,
    /// The stored key that signed it; `None` for HS256.
    pub kid: Option<String>,
}

/// Signs and checks tokens: with the stored signing keys, or with the shared secret.
pub struct TokenService {
    keys: Arc<KeySet>,
    /// `[tokens] algorithm` is HS256: the secret signs whenever no stored key does.
    hmac_signs: bool,
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: i64,
    refresh_ttl: i64,
    leeway: i64,
    rotate_refresh: bool,
    reuse_grace: i64,
}

fn secs(d: Duration) -> i64 {
    d.as_secs().min(i64::MAX as u64) as i64
}

impl TokenService {
    /// HS256 with `secret` and no stored keys.
    pub fn new(config: &TokenConfig, secret: &[u8]) -> Self {
        let keys = KeySet::new(None, key_policy(config));
        Self::with_keys(config, secret, Arc::new(keys))
    }

    /// Signs with the key `keys` name, or with `secret` when none does and the configured
    /// algorithm is HS256.
    pub fn with_keys(config: &TokenConfig, secret: &[u8], keys: Arc<KeySet>) -> Self {
        let validation = base_validation(config, Algorithm::HS256);
        Self {
            keys,
            hmac_signs: config.algorithm.is_none(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header: Header::new(Algorithm::HS256),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: secs(config.access_ttl),
            refresh_ttl: secs(config.refresh_ttl),
            leeway: secs(config.leeway),
            rotate_refresh: config.rotate_refresh,
            reuse_grace: secs(config.reuse_grace),
        }
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether the key that signed a token verified earlier still verifies at `now`: a
    /// cached token never outlives its key.
    pub fn key_still_verifies(&self, token: &VerifiedToken, now: i64) -> bool {
        token
            .kid
            .as_deref()
            .is_none_or(|kid| self.keys.load().verifier(kid, now).is_some())
    }

    /// The signing keys this service reads.
    pub fn keys(&self) -> &Arc<KeySet> {
        &self.keys
    }

    /// Lifetime of refresh tokens, in seconds: how long a session can live.
    pub fn refresh_ttl(&self) -> i64 {
        self.refresh_ttl
    }

    /// Clock skew tolerated, in seconds.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// Whether `/refresh` replaces the presented refresh token.
    pub fn rotate_refresh(&self) -> bool {
        self.rotate_refresh
    }

    /// Seconds during which a spent refresh token may be presented again (lost responses).
    pub fn reuse_grace(&self) -> i64 {
        self.reuse_grace
    }

    /// Lifetime of access tokens, in seconds.
    pub fn access_ttl(&self) -> i64 {
        self.access_ttl
    }

    /// Signs a token of `token_type` for `subject`. It expires after the type's lifetime,
    /// or at `not_after` if that is sooner (a rotated refresh token keeps its session's end).
    pub fn issue(
        &self,
        subject: &Subject<'_>,
        token_type: TokenType,
        fresh: bool,
        now: i64,
        not_after: Option<i64>,
    ) -> Result<String, AuthError> {
        let ttl = match token_type {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let exp = now.saturating_add(ttl);
        let claims = Claims {
            sub: subject.user_id.to_string(),
            username: subject.username.to_string(),
            token_type,
            jti: Uuid::new_v4().to_string(),
            sid: subject.sid.to_string(),
            iat: now,
            nbf: now,
            exp: not_after.map_or(exp, |n| n.min(exp)),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            fresh,
            roles: subject.roles.to_vec(),
        };
        let keys = self.keys.load();
        let (header, key) = match keys.signer(now) {
            Some(key) => (&key.header, &key.encoding),
            None if self.hmac_signs => (&self.header, &self.encoding),
            None => {
                tracing::error!("no signing key: every stored key is retired");
                return Err(AuthError::NoSigningKey);
            }
        };
        jsonwebtoken::encode(header, &claims, key).map_err(|e| {
            tracing::error!(error = %e, "cannot sign a token");
            AuthError::NoSigningKey
        })
    }

    /// Checks signature and claims and that the token is of the `expected` type.
    /// Revocation is checked by the caller against the cache.
    pub fn verify(
        &self,
        token: &str,
        expected: TokenType,
        now: i64,
    ) -> Result<VerifiedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| map_error(e.kind()))?;
        let keys = self.keys.load();
        let hmac = header.alg == Algorithm::HS256;
        let (decoding, validation) = if hmac {
            // Whatever `kid`, `jku`, `jwk` or `x5u` say, an HMAC token is checked with the
            // secret and nothing else: a public key can never become the HMAC key.
            (&self.decoding, &self.validation)
        } else {
            let key = self.stored_key(&keys, &header, now)?;
            (&key.decoding, &key.validation)
        };
        let data = jsonwebtoken::decode::<Claims>(token, decoding, validation)
            .map_err(|e| map_error(e.kind()))?;
        if hmac && !keys.hmac_accepts(data.claims.iat) {
            // Issued with the secret after the switch to signing keys: only the secret's
            // holder could have made it.
            return Err(TokenError::Invalid(
                "The specified alg value is not allowed",
            ));
        }
        if data.header.typ.as_deref() != Some("JWT") {
            return Err(TokenError::Invalid("Invalid token type in header"));
        }
        // RFC 7515 4.1.11: `crit` names extensions the recipient must understand or
        // refuse the token. authgate understands none (and never issues `crit`).
        if data.header.crit.is_some() {
            return Err(TokenError::Invalid("Unsupported critical header parameter"));
        }
        let c = data.claims;
        if c.exp.saturating_add(self.leeway) < now {
            return Err(TokenError::Expired);
        }
        if c.nbf > now.saturating_add(self.leeway) {
            return Err(TokenError::Invalid("The token is not yet valid (nbf)"));
        }
        if c.iat > now.saturating_add(self.leeway) {
            return Err(TokenError::Invalid("The token is not yet valid (iat)"));
        }
        if c.token_type != expected {
            return Err(match expected {
                TokenType::Access => TokenError::RefreshNotAllowed,
                TokenType::Refresh => TokenError::RefreshRequired,
            });
        }
        let user_id: i64 = c
            .sub
            .parse()
            .map_err(|_| TokenError::Invalid("Invalid subject"))?;
        let jti = Uuid::parse_str(&c.jti).map_err(|_| TokenError::Invalid("Invalid token id"))?;
        let sid = Uuid::parse_str(&c.sid).map_err(|_| TokenError::Invalid("Invalid session id"))?;
        // They become a header value upstream: only names authgate could have granted.
        if c.roles.len() > super::roles::MAX_ROLES
            || !c.roles.iter().all(|r| super::roles::is_valid_role(r))
        {
            return Err(TokenError::Invalid("Invalid roles claim"));
        }
        Ok(VerifiedToken {
            user_id,
            username: c.username,
            token_type: c.token_type,
            jti,
            sid,
            iat: c.iat,
            exp: c.exp,
            roles: c.roles,
            kid: if hmac { None } else { data.header.kid },
        })
    }
}

impl TokenService {
    /// The stored key an asymmetric token names: its `kid` (length-capped, compared, never
    /// used as a path or a query) selects the key, and its `alg` must be that key's.
    fn stored_key<'k>(
        &self,
        keys: &'k KeySnapshot,
        header: &Header,
        now: i64,
    ) -> Result<&'k LiveKey, TokenError> {
        let not_allowed = TokenError::Invalid("The specified alg value is not allowed");
        if !keys
            .keys()
            .iter()
            .any(|k| k.algorithm.jwt_algorithm() == header.alg)
        {
            return Err(not_allowed);
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or(TokenError::Invalid("Missing key id (kid)"))?;
        let key = (kid.len() <= MAX_KID_BYTES)
            .then(|| keys.verifier(kid, now))
            .flatten()
            .ok_or(TokenError::Invalid("Unknown key id (kid)"))?;
        if key.algorithm.jwt_algorithm() != header.alg {
            return Err(not_allowed);
        }
        Ok(key)
    }
}

/// Validation for `algorithm`: issuer, audience and the required claims. Time claims are
/// checked by [`TokenService::verify`] against the caller's clock, so one `now` decides
/// every request; the library only checks that they are present.
fn base_validation(config: &TokenConfig, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation
}

/// How stored keys check tokens, from the config.
pub fn key_policy(config: &TokenConfig) -> KeyPolicy {
    KeyPolicy {
        longest_ttl: secs(config.refresh_ttl.max(config.access_ttl)),
        leeway: secs(config.leeway),
        hmac_configured: config.algorithm.is_none(),
        validation: base_validation(config, Algorithm::EdDSA),
        // Half the publish delay, at most five minutes: a consumer refetching on this
        // schedule has a new key well before it signs.
        jwks_max_age: (config.key_publish_delay.as_secs() / 2).min(JWKS_MAX_AGE_CAP_SECS),
    }
}

/// The contract's wording (PyJWT's, as Flask-JWT-Extended passed it on).
fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidToken => TokenError::Invalid("Not enough segments"),
        ErrorKind::InvalidSignature => TokenError::Invalid("Signature verification failed"),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => {
            TokenError::Invalid("The specified alg value is not allowed")
        }
        ErrorKind::ImmatureSignature => TokenError::Invalid("The token is not yet valid (nbf)"),
        ErrorKind::InvalidIssuer => TokenError::Invalid("Invalid issuer"),
        ErrorKind::InvalidAudience => TokenError::Invalid("Invalid audience"),
        ErrorKind::InvalidSubject => TokenError::Invalid("Invalid subject"),
        ErrorKind::MissingRequiredClaim(claim) => TokenError::Invalid(match claim.as_str() {
            "exp" => "Token is missing the \"exp\" claim",
            "nbf" => "Token is missing the \"nbf\" claim",
            "iss" => "Token is missing the \"iss\" claim",
            "aud" => "Token is missing the \"aud\" claim",
            "sub" => "Token is missing the \"sub\" claim",
            _ => "Token is missing a required claim",
        }),
        ErrorKind::InvalidClaimFormat(_) => TokenError::Invalid("Invalid claim format"),
        ErrorKind::Base64(_) => TokenError::Invalid("Invalid base64 encoding"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => TokenError::Invalid("Invalid header or payload"),
        _ => TokenError::Invalid("Malformed token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        let config = TokenConfig {
            secret: None,
            issuer: "authgate".into(),
            audience: "authgate".into(),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(86400),
            leeway: Duration::from_secs(5),
            rotate_refresh: true,
            reuse_grace: Duration::ZERO,
            algorithm: None,
            key_encryption_secret: None,
            key_rotation: None,
            key_publish_delay: Duration::from_secs(600),
        };
        TokenService::new(&config, &[7u8; 32])
    }

    #[test]
    fn round_trip_and_type_check() {
        let s = service();
        let sid = Uuid::new_v4();
        let subject = Subject {
            user_id: 42,
            username: "alice",
            sid,
            roles: &[],
        };
        let t = s
            .issue(&subject, TokenType::Access, true, 1_000_000, None)
            .unwrap();
        let v = s.verify(&t, TokenType::Access, 1_000_010).unwrap();
        assert_eq!((v.user_id, v.username.as_str(), v.sid), (42, "alice", sid));
        assert_eq!(
            s.verify(&t, TokenType::Refresh, 1_000_010),
            Err(TokenError::RefreshRequired)
        );
    }

    #[test]
    fn a_crit_header_is_refused_even_when_signed() {
        let s = service();
        let subject = Subject {
            user_id: 1,
            username: "a",
            sid: Uuid::new_v4(),
            roles: &[],
        };
        let good = s
            .issue(&subject, TokenType::Access, true, 1_000_000, None)
            .unwrap();
        let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&good)
            .unwrap()
            .claims;
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["x-ext".into()]);
        let t =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&[7u8; 32])).unwrap();
        assert_eq!(
            s.verify(&t, TokenType::Access, 1_000_010),
            Err(TokenError::Invalid("Unsupported critical header parameter"))
        );
    }

    #[test]
    fn expiry_respects_leeway_and_nbf_is_checked() {
        let s = service();
        let subject = Subject {
            user_id: 1,
            username: "a",
            sid: Uuid::new_v4(),
            roles: &[],
        };
        let t = s
            .issue(&subject, TokenType::Access, true, 1_000_000, None)
            .unwrap();
        assert!(s.verify(&t, TokenType::Access, 1_003_604).is_ok());
        assert_eq!(
            s.verify(&t, TokenType::Access, 1_003_606),
            Err(TokenError::Expired)
        );
        assert!(matches!(
            s.verify(&t, TokenType::Access, 999_000),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn roles_travel_in_a_claim_that_is_absent_when_empty() {
        let s = service();
        let roles = vec!["admin".to_string(), "ops".to_string()];
        let mut subject = Subject {
            user_id: 1,
            username: "a",
            sid: Uuid::new_v4(),
            roles: &roles,
        };
        let t = s
            .issue(&subject, TokenType::Access, true, 1_000_000, None)
            .unwrap();
        assert_eq!(
            s.verify(&t, TokenType::Access, 1_000_010).unwrap().roles,
            roles
        );
        subject.roles = &[];
        let t = s
            .issue(&subject, TokenType::Access, true, 1_000_000, None)
            .unwrap();
        let payload = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&t)
            .unwrap()
            .claims;
        assert!(payload.get("roles").is_none(), "{payload}");
        assert!(s
            .verify(&t, TokenType::Access, 1_000_010)
            .unwrap()
            .roles
            .is_empty());
    }
}
