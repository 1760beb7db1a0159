//! What happens to a login session after it starts: `/refresh` (with rotation and reuse
//! detection), `/logout` (the session), `/logout/all` (every session of the user), and the
//! forward-auth check other proxies call.

use http::StatusCode;
use serde_json::json;

use super::error::{AuthError, TokenError};
use super::service::{now_secs, store_error, AuthService, Reply};
use super::tokens::{Subject, TokenType, VerifiedToken};
use crate::store::{Revocation, RevokedKind, UserCutoff};

/// When a revocation covering tokens issued up to `now` stops mattering: no token of a
/// session outlives its refresh token, nor an access token refreshed at its last moment.
pub fn revocation_horizon(now: i64, refresh_ttl: i64, access_ttl: i64) -> i64 {
    now + refresh_ttl + access_ttl + 60
}

impl AuthService {
    fn revocation_horizon(&self, now: i64) -> i64 {
        revocation_horizon(now, self.tokens.refresh_ttl(), self.tokens.access_ttl())
    }

    /// Revokes session `sid`, durably first, then in the cache.
    async fn revoke_session(&self, token: &VerifiedToken) -> Result<(), AuthError> {
        let revocation = Revocation {
            id: token.sid,
            kind: RevokedKind::Session,
            user_id: token.user_id,
            expires_at: self.revocation_horizon(now_secs()),
        };
        self.store
            .revoke(revocation.clone())
            .await
            .map_err(store_error)?;
        self.revocations.insert(&revocation);
        self.metrics.tokens_revoked_total.inc();
        Ok(())
    }

    /// `POST /logout`: revokes the whole login session, durably, before answering.
    pub async fn logout<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Reply, AuthError> {
        let token = self.verify_bearer(authorization, TokenType::Access)?;
        self.revoke_session(&token).await?;
        tracing::info!(target: "audit", event = "logout", user_id = token.user_id);
        Ok(Reply {
            status: StatusCode::OK,
            body: json!({"msg": "Successfully logged out"}),
            carries_token: false,
        })
    }

    /// A cutoff that ends every token of `user_id` issued up to now.
    pub(super) fn cutoff_now(&self, user_id: i64) -> UserCutoff {
        let now = now_secs();
        UserCutoff {
            user_id,
            not_before: now,
            expires_at: self.revocation_horizon(now),
        }
    }

    /// Revokes every token of `user_id` issued up to now (logout everywhere, deactivation).
    pub async fn revoke_all_sessions(&self, user_id: i64) -> Result<(), AuthError> {
        let cutoff = self.cutoff_now(user_id);
        let cutoff = self
            .store
            .revoke_user_sessions(cutoff)
            .await
            .map_err(store_error)?;
        self.revocations.insert_cutoff(&cutoff);
        self.metrics.tokens_revoked_total.inc();
        Ok(())
    }

    /// `POST /logout/all`: ends every session of the token's user.
    pub async fn logout_all<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Reply, AuthError> {
        let token = self.verify_bearer(authorization, TokenType::Access)?;
        self.revoke_all_sessions(token.user_id).await?;
        tracing::info!(target: "audit", event = "logout_all", user_id = token.user_id);
        Ok(Reply {
            status: StatusCode::OK,
            body: json!({"msg": "Successfully logged out from all sessions"}),
            carries_token: false,
        })
    }

    /// `POST /refresh`: a new access token in the same session and, with rotation on, a new
    /// refresh token that replaces the presented one. A spent refresh token presented again
    /// (outside the grace window) is taken for theft: the whole session is revoked.
    pub async fn refresh<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Reply, AuthError> {
        let token = self.verify_bearer(authorization, TokenType::Refresh)?;
        let user = self
            .store
            .user_by_id(token.user_id)
            .await
            .map_err(store_error)?
            .ok_or(AuthError::UserNotFound)?;
        if !user.active {
            return Err(AuthError::Deactivated);
        }
        let now = now_secs();
        let rotate = self.tokens.rotate_refresh();
        if rotate {
            let spent_before = self
                .store
                .spend_refresh_token(
                    token.jti,
                    token.user_id,
                    token.exp + self.tokens.leeway(),
                    now,
                )
                .await
                .map_err(store_error)?;
            if let Some(spent_at) = spent_before.filter(|at| now - at >= self.tokens.reuse_grace())
            {
                self.revoke_session(&token).await?;
                self.metrics.refresh_reuse_total.inc();
                tracing::warn!(target: "audit", event = "refresh_token_reuse", user_id = token.user_id, spent_at);
                return Err(TokenError::Revoked.into());
            }
        }
        let subject = Subject {
            user_id: user.id,
            username: &user.username,
            sid: token.sid,
            roles: &user.roles,
        };
        let access = self
            .tokens
            .issue(&subject, TokenType::Access, false, now, None)?;
        let mut body = json!({"msg": "Token refreshed", "access_token": access});
        if rotate {
            body["refresh_token"] = self
                .tokens
                .issue(&subject, TokenType::Refresh, false, now, Some(token.exp))?
                .into();
        }
        tracing::info!(target: "audit", event = "refresh", user_id = user.id);
        Ok(Reply {
            status: StatusCode::OK,
            body,
            carries_token: true,
        })
    }
}
