//! Every way an auth request can fail, with the status and the message the contract gives.
//! Internal causes are logged where they happen and never sent to the client.

use http::StatusCode;

/// A failure answered as `{"msg": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing JSON in request")]
    MissingJson,
    #[error("Missing required fields: {0}")]
    MissingFields(String),
    #[error("Invalid username format. Use only letters, numbers, and underscores.")]
    InvalidUsername,
    #[error("Invalid email format.")]
    InvalidEmail,
    #[error(
        "Password must be at least 8 characters and contain at least one letter and one number."
    )]
    WeakPassword,
    #[error("Password must be at most 128 characters.")]
    PasswordTooLong,
    #[error("Username already exists")]
    UsernameTaken,
    #[error("Email already exists")]
    EmailTaken,
    #[error("Username and password required")]
    EmptyCredentials,
    #[error("Password required")]
    PasswordRequired,
    #[error("Invalid credentials")]
    InvalidCredentials,
    #[error("Account is deactivated")]
    Deactivated,
    #[error("User not found")]
    UserNotFound,
    #[error("Forbidden: insufficient role")]
    Forbidden,
    #[error("Request body too large")]
    BodyTooLarge,
    #[error("Rate limit exceeded. Try again later.")]
    TooManyFailures { retry_after_secs: u64 },
    #[error("Server busy, try again later")]
    Busy,
    #[error("Service unavailable: the account database cannot be reached")]
    StoreUnavailable,
    #[error("Service unavailable: no signing key")]
    NoSigningKey,
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Why a Bearer token was refused (always 401), in the contract's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Unauthorized: Missing Authorization Header")]
    MissingHeader,
    #[error("Unauthorized: Missing 'Bearer' type in 'Authorization' header. Expected 'Authorization: Bearer <JWT>'")]
    NotBearer,
    #[error("Invalid token: {0}")]
    Invalid(&'static str),
    #[error("Token has expired")]
    Expired,
    #[error("Token has been revoked")]
    Revoked,
    #[error("Invalid token: Only non-refresh tokens are allowed")]
    RefreshNotAllowed,
    #[error("Invalid token: Only refresh tokens are allowed")]
    RefreshRequired,
}

impl TokenError {
    /// Every value [`TokenError::reason`] gives, so metrics can export each one from the
    /// start.
    pub const REASONS: [&'static str; 6] = [
        "missing",
        "malformed",
        "signature",
        "expired",
        "revoked",
        "wrong_type",
    ];

    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::MissingHeader => "missing",
            TokenError::NotBearer => "malformed",
            TokenError::Invalid(m) if m.contains("Signature") || m.contains("alg") => "signature",
            TokenError::Invalid(_) => "malformed",
            TokenError::Expired => "expired",
            TokenError::Revoked => "revoked",
            TokenError::RefreshNotAllowed | TokenError::RefreshRequired => "wrong_type",
        }
    }
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        use AuthError::*;
        match self {
            MissingJson | MissingFields(_) | InvalidUsername | InvalidEmail | WeakPassword
            | PasswordTooLong | EmptyCredentials | PasswordRequired => StatusCode::BAD_REQUEST,
            UsernameTaken | EmailTaken => StatusCode::CONFLICT,
            InvalidCredentials | Deactivated | Token(_) => StatusCode::UNAUTHORIZED,
            UserNotFound => StatusCode::NOT_FOUND,
            Forbidden => StatusCode::FORBIDDEN,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            Busy | StoreUnavailable | NoSigningKey => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenError;

    #[test]
    fn every_reason_is_listed_for_the_metrics() {
        let errors = [
            TokenError::MissingHeader,
            TokenError::NotBearer,
            TokenError::Invalid("Not enough segments"),
            TokenError::Invalid("Signature verification failed"),
            TokenError::Expired,
            TokenError::Revoked,
            TokenError::RefreshNotAllowed,
            TokenError::RefreshRequired,
        ];
        for e in errors {
            assert!(TokenError::REASONS.contains(&e.reason()), "{}", e.reason());
        }
    }
}
