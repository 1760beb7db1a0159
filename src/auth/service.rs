//! The four endpoints of the auth API (`/register`, `/login`, `/logout`, `/refresh`) and
//! the Bearer check every required route shares. Transport-free: the gateway hands in the
//! body and the Authorization values and writes out the [`Reply`].

use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::bearer::bearer_token;
use super::error::{AuthError, TokenError};
use super::json_body::parse_object;
use super::login_throttle::LoginThrottle;
use super::password::PasswordHasher;
use super::revocation::{now_ms, RevocationCache};
use super::tokens::{Subject, TokenService, TokenType, VerifiedToken};
use super::validation;
use super::verified_cache::VerifiedCache;
use crate::metrics::Metrics;
use crate::store::{NewUser, Store, StoreError, User};

/// A successful answer: status and JSON body. `carries_token` asks for `Cache-Control: no-store`.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub carries_token: bool,
}

/// Shared by every request; cheap to clone behind an `Arc`.
pub struct AuthService {
    pub store: Arc<dyn Store>,
    pub tokens: TokenService,
    pub revocations: Arc<RevocationCache>,
    pub hasher: PasswordHasher,
    pub login_throttle: LoginThrottle,
    /// Access tokens already verified, for the proxied path.
    pub verified: VerifiedCache,
    pub metrics: Arc<Metrics>,
}

pub fn now_secs() -> i64 {
    now_ms() / 1000
}

pub(super) fn store_error(e: StoreError) -> AuthError {
    match e {
        StoreError::UsernameTaken => AuthError::UsernameTaken,
        StoreError::EmailTaken => AuthError::EmailTaken,
        other => {
            tracing::error!(error = %other, "database unavailable");
            AuthError::StoreUnavailable
        }
    }
}

pub(super) fn user_json(user: &User) -> Value {
    json!({"id": user.id, "username": user.username, "email": user.email})
}

impl AuthService {
    /// Verifies the Bearer token among `authorization` values: signature, claims, type,
    /// and revocation. Fails closed when the revocation state is stale.
    pub fn verify_bearer<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
        expected: TokenType,
    ) -> Result<VerifiedToken, AuthError> {
        let token = bearer_token(authorization)?;
        let verified = self.tokens.verify(token, expected, now_secs())?;
        self.check_revocation(&verified)?;
        Ok(verified)
    }

    /// The check of every request on a required route: [`Self::verify_bearer`] for an
    /// access token, with the signature and claims of a token seen before taken from the
    /// verified-token cache. Expiry and revocation are checked every time.
    pub fn verify_access<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Arc<VerifiedToken>, AuthError> {
        let token = bearer_token(authorization)?;
        let now = now_secs();
        let verified = match self.verified.get(token) {
            Some(v) if !self.tokens.key_still_verifies(&v, now) => {
                return Err(TokenError::Invalid("Unknown key id (kid)").into())
            }
            Some(v) if v.exp.saturating_add(self.tokens.leeway()) >= now => v,
            Some(_) => return Err(TokenError::Expired.into()),
            None => {
                let v = Arc::new(self.tokens.verify(token, TokenType::Access, now)?);
                self.verified.insert(token, v.clone());
                v
            }
        };
        self.check_revocation(&verified)?;
        Ok(verified)
    }

    /// Fails closed when the revocation state is stale; refuses revoked tokens.
    fn check_revocation(&self, verified: &VerifiedToken) -> Result<(), AuthError> {
        if !self.revocations.is_current() {
            return Err(AuthError::StoreUnavailable);
        }
        if self.revocations.is_revoked(verified) {
            tracing::info!(target: "audit", event = "revoked_token_presented", user_id = verified.user_id);
            return Err(TokenError::Revoked.into());
        }
        Ok(())
    }

    /// Issues the access/refresh pair of a new login session.
    pub(super) fn session_reply(
        &self,
        user: &User,
        status: StatusCode,
        msg: &str,
    ) -> Result<Reply, AuthError> {
        let now = self.revocations.issue_time(user.id, now_secs());
        let sid = Uuid::new_v4();
        let subject = Subject {
            user_id: user.id,
            username: &user.username,
            sid,
            roles: &user.roles,
        };
        let access = self
            .tokens
            .issue(&subject, TokenType::Access, true, now, None)?;
        let refresh = self
            .tokens
            .issue(&subject, TokenType::Refresh, false, now, None)?;
        Ok(Reply {
            status,
            body: json!({"msg": msg, "user": user_json(user), "access_token": access, "refresh_token": refresh}),
            carries_token: true,
        })
    }

    /// Every `result` label of `authgate_registrations_total`.
    pub const REGISTRATION_RESULTS: [&'static str; 4] =
        ["success", "conflict", "unavailable", "invalid"];

    /// Every `result` label of `authgate_logins_total`.
    pub const LOGIN_RESULTS: [&'static str; 6] = [
        "success",
        "invalid_credentials",
        "deactivated",
        "throttled",
        "unavailable",
        "bad_request",
    ];

    /// `POST /register`.
    pub async fn register(&self, body: &[u8]) -> Result<Reply, AuthError> {
        let result = self.register_inner(body).await;
        let label = match &result {
            Ok(_) => "success",
            Err(AuthError::UsernameTaken | AuthError::EmailTaken) => "conflict",
            Err(AuthError::Busy | AuthError::StoreUnavailable | AuthError::NoSigningKey) => {
                "unavailable"
            }
            Err(_) => "invalid",
        };
        self.metrics
            .registrations_total
            .with_label_values(&[label])
            .inc();
        result
    }

    async fn register_inner(&self, body: &[u8]) -> Result<Reply, AuthError> {
        let input = validation::registration(&parse_object(body)?)?;
        // Cheap uniqueness checks first, so a taken name costs no hash.
        if self
            .store
            .user_by_username(&input.username)
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Err(AuthError::UsernameTaken);
        }
        let password_hash = self.hasher.hash(input.password).await?;
        let user = self
            .store
            .create_user(NewUser {
                username: input.username,
                email: input.email,
                password_hash,
                roles: Vec::new(),
            })
            .await
            .map_err(store_error)?;
        tracing::info!(target: "audit", event = "register", user_id = user.id);
        self.session_reply(&user, StatusCode::CREATED, "User registered successfully")
    }

    /// `POST /login`.
    pub async fn login(&self, body: &[u8], client_ip: Option<IpAddr>) -> Result<Reply, AuthError> {
        let result = self.login_inner(body, client_ip).await;
        let label = match &result {
            Ok(_) => "success",
            Err(AuthError::InvalidCredentials) => "invalid_credentials",
            Err(AuthError::Deactivated) => "deactivated",
            Err(AuthError::TooManyFailures { .. }) => "throttled",
            Err(AuthError::Busy | AuthError::StoreUnavailable | AuthError::NoSigningKey) => {
                "unavailable"
            }
            Err(_) => "bad_request",
        };
        self.metrics.logins_total.with_label_values(&[label]).inc();
        result
    }

    async fn login_inner(
        &self,
        body: &[u8],
        client_ip: Option<IpAddr>,
    ) -> Result<Reply, AuthError> {
        let input = validation::credentials(&parse_object(body)?)?;
        if let Some(ip) = client_ip {
            if let Err(retry_after_secs) = self.login_throttle.check(&input.username, ip) {
                tracing::info!(target: "audit", event = "login_failed", reason = "throttled");
                return Err(AuthError::TooManyFailures { retry_after_secs });
            }
        }
        let username = input.username.clone();
        let result = self.check_credentials(input).await;
        if let Some(ip) = client_ip {
            match &result {
                Ok(_) => self.login_throttle.record_success(&username, ip),
                Err(AuthError::InvalidCredentials) => {
                    self.login_throttle.record_failure(&username, ip)
                }
                Err(_) => {}
            }
        }
        result
    }

    async fn check_credentials(&self, input: validation::Credentials) -> Result<Reply, AuthError> {
        if input.password.chars().count() > validation::MAX_PASSWORD_CHARS {
            // Cannot match any stored password; refused before any hashing.
            return Err(AuthError::InvalidCredentials);
        }
        let user = self
            .store
            .user_by_username(&input.username)
            .await
            .map_err(store_error)?;
        let matches = self
            .hasher
            .verify(
                input.password,
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        let user = match user {
            Some(user) if matches => user,
            _ => {
                tracing::info!(target: "audit", event = "login_failed", reason = "invalid_credentials");
                return Err(AuthError::InvalidCredentials);
            }
        };
        if !user.active {
            tracing::info!(target: "audit", event = "login_failed", reason = "deactivated", user_id = user.id);
            return Err(AuthError::Deactivated);
        }
        tracing::info!(target: "audit", event = "login", user_id = user.id);
        self.session_reply(&user, StatusCode::OK, "Login successful")
    }
}
