//! Issuing and verifying the JWTs. HS256 only (the configured algorithm), `typ: JWT`, and
//! every claim checked: signature, `exp`/`nbf`/`iat` with the configured leeway, `iss`,
//! `aud`, the token type, and well-formed ids. A `crit` header is refused.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::TokenError;
use crate::config::TokenConfig;

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
}

/// Signs and checks tokens with one key.
pub struct TokenService {
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
    pub fn new(config: &TokenConfig, secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Time claims are checked below against the caller's clock, so one `now` decides
        // every request; the library only checks that they are present.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
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
    ) -> String {
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
        // HMAC signing of a serialisable struct cannot fail.
        jsonwebtoken::encode(&self.header, &claims, &self.encoding)
            .expect("HS256 signing never fails")
    }

    /// Checks signature and claims and that the token is of the `expected` type.
    /// Revocation is checked by the caller against the cache.
    pub fn verify(
        &self,
        token: &str,
        expected: TokenType,
        now: i64,
    ) -> Result<VerifiedToken, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| map_error(e.kind()))?;
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
        })
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
        let t = s.issue(&subject, TokenType::Access, true, 1_000_000, None);
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
        let good = s.issue(&subject, TokenType::Access, true, 1_000_000, None);
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
        let t = s.issue(&subject, TokenType::Access, true, 1_000_000, None);
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
        let t = s.issue(&subject, TokenType::Access, true, 1_000_000, None);
        assert_eq!(
            s.verify(&t, TokenType::Access, 1_000_010).unwrap().roles,
            roles
        );
        subject.roles = &[];
        let t = s.issue(&subject, TokenType::Access, true, 1_000_000, None);
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
