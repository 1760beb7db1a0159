//! Self-service on one's own account: `GET /me` (see it), `POST /password` (change the
//! password; every other session ends) and `DELETE /me` (delete it; every session ends).
//! Transport-free like the rest of the auth API: the gateway hands in the Authorization
//! values and the body and writes out the [`Reply`].

use std::net::IpAddr;

use http::StatusCode;
use serde_json::json;

use super::error::AuthError;
use super::json_body::parse_object;
use super::service::{store_error, AuthService, Reply};
use super::tokens::{TokenType, VerifiedToken};
use super::validation;
use crate::store::User;

impl AuthService {
    /// `GET /me`: the account as stored now (roles included, which may differ from the
    /// token's until the next refresh).
    pub async fn me<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Reply, AuthError> {
        let token = self.verify_bearer(authorization, TokenType::Access)?;
        let user = self.current_user(&token).await?;
        Ok(Reply {
            status: StatusCode::OK,
            body: json!({"user": {
                "id": user.id,
                "username": user.username,
                "email": user.email,
                "roles": user.roles,
                "created_at": user.created_at,
            }}),
            carries_token: false,
        })
    }

    /// `POST /password`: checks the current password (a wrong one counts towards the
    /// login throttle), stores the new hash and ends every session of the user in one
    /// transaction, then starts a fresh session for the caller.
    pub async fn change_password<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
        body: &[u8],
        client_ip: Option<IpAddr>,
    ) -> Result<Reply, AuthError> {
        let token = self.verify_bearer(authorization, TokenType::Access)?;
        let input = validation::password_change(&parse_object(body)?)?;
        let user = self
            .confirm_password(&token, input.current_password, client_ip)
            .await?;
        let password_hash = self.hasher.hash(input.new_password).await?;
        let cutoff = self.cutoff_now(user.id);
        let cutoff = self
            .store
            .change_password(user.id, password_hash, cutoff)
            .await
            .map_err(store_error)?;
        self.revocations.insert_cutoff(&cutoff);
        self.metrics.tokens_revoked_total.inc();
        tracing::info!(target: "audit", event = "password_changed", user_id = user.id);
        // Issued after the cutoff (`issue_time`), so the fresh pair is not caught by it.
        self.session_reply(&user, StatusCode::OK, "Password changed")
    }

    /// `DELETE /me`: checks the password, then deletes the account and ends every session
    /// in one transaction. The cutoff outlives the row, so every token it held stays
    /// refused; the username and email are free again at once.
    pub async fn delete_account<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
        body: &[u8],
        client_ip: Option<IpAddr>,
    ) -> Result<Reply, AuthError> {
        let token = self.verify_bearer(authorization, TokenType::Access)?;
        let password = validation::account_deletion(&parse_object(body)?)?;
        let user = self.confirm_password(&token, password, client_ip).await?;
        let cutoff = self.cutoff_now(user.id);
        let cutoff = self
            .store
            .delete_user(user.id, cutoff)
            .await
            .map_err(store_error)?;
        self.revocations.insert_cutoff(&cutoff);
        self.metrics.tokens_revoked_total.inc();
        tracing::info!(target: "audit", event = "account_deleted", user_id = user.id);
        Ok(Reply {
            status: StatusCode::OK,
            body: json!({"msg": "Account deleted"}),
            carries_token: false,
        })
    }

    /// The token's account, which must still exist and be active.
    async fn current_user(&self, token: &VerifiedToken) -> Result<User, AuthError> {
        let user = self
            .store
            .user_by_id(token.user_id)
            .await
            .map_err(store_error)?
            .ok_or(AuthError::UserNotFound)?;
        if !user.active {
            return Err(AuthError::Deactivated);
        }
        Ok(user)
    }

    /// The token's account when `password` is its password. Throttled like `/login`, per
    /// username and client IP, so a stolen access token cannot be used to guess it.
    async fn confirm_password(
        &self,
        token: &VerifiedToken,
        password: String,
        client_ip: Option<IpAddr>,
    ) -> Result<User, AuthError> {
        if let Some(ip) = client_ip {
            if let Err(retry_after_secs) = self.login_throttle.check(&token.username, ip) {
                tracing::info!(target: "audit", event = "password_check_failed", reason = "throttled", user_id = token.user_id);
                return Err(AuthError::TooManyFailures { retry_after_secs });
            }
        }
        let user = self.current_user(token).await?;
        let matches = password.chars().count() <= validation::MAX_PASSWORD_CHARS
            && self
                .hasher
                .verify(password, Some(user.password_hash.clone()))
                .await?;
        if !matches {
            if let Some(ip) = client_ip {
                self.login_throttle.record_failure(&token.username, ip);
            }
            tracing::info!(target: "audit", event = "password_check_failed", reason = "invalid_credentials", user_id = user.id);
            return Err(AuthError::InvalidCredentials);
        }
        if let Some(ip) = client_ip {
            self.login_throttle.record_success(&token.username, ip);
        }
        Ok(user)
    }
}
