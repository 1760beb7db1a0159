//! Input rules of the auth API, in the order the contract checks them.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::error::AuthError;

static USERNAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_]{1,64}$").expect("valid regex"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$").expect("valid regex")
});

/// Longest password accepted, in characters (NIST 800-63B asks for at least 64).
pub const MAX_PASSWORD_CHARS: usize = 128;
const MAX_EMAIL_CHARS: usize = 254;

/// A checked registration.
#[derive(Debug)]
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
}

/// A login attempt with both fields present and non-empty.
#[derive(Debug)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The named fields that are absent or null, as `Missing required fields: a, b`.
fn require(body: &Map<String, Value>, fields: &[&str]) -> Result<(), AuthError> {
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| body.get(*f).is_none_or(Value::is_null))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AuthError::MissingFields(missing.join(", ")))
    }
}

fn string_field(body: &Map<String, Value>, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_string)
}

/// Any printable character counts, spaces and Unicode included; nothing is truncated.
pub fn check_password(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if chars > MAX_PASSWORD_CHARS {
        return Err(AuthError::PasswordTooLong);
    }
    let printable = password.chars().all(|c| !c.is_control());
    let has_letter = password.chars().any(char::is_alphabetic);
    let has_digit = password.chars().any(char::is_numeric);
    if chars < 8 || !printable || !has_letter || !has_digit {
        return Err(AuthError::WeakPassword);
    }
    Ok(())
}

/// Checks a `/register` body: fields, then username, email and password formats.
pub fn registration(body: &Map<String, Value>) -> Result<Registration, AuthError> {
    require(body, &["username", "email", "password"])?;
    let username = string_field(body, "username")
        .filter(|u| USERNAME.is_match(u))
        .ok_or(AuthError::InvalidUsername)?;
    let email = string_field(body, "email")
        .map(|e| e.trim().to_string())
        .filter(|e| e.len() <= MAX_EMAIL_CHARS && EMAIL.is_match(e))
        .ok_or(AuthError::InvalidEmail)?;
    let password = string_field(body, "password").ok_or(AuthError::WeakPassword)?;
    check_password(&password)?;
    Ok(Registration {
        username,
        email,
        password,
    })
}

/// Checks a `/login` body: both fields present, then both non-empty.
pub fn credentials(body: &Map<String, Value>) -> Result<Credentials, AuthError> {
    require(body, &["username", "password"])?;
    let username = string_field(body, "username").unwrap_or_default();
    let password = string_field(body, "password").unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        return Err(AuthError::EmptyCredentials);
    }
    Ok(Credentials { username, password })
}

/// A non-empty string field named `name` that [`require`] found present.
fn password_field(body: &Map<String, Value>, name: &str) -> Result<String, AuthError> {
    string_field(body, name)
        .filter(|p| !p.is_empty())
        .ok_or(AuthError::PasswordRequired)
}

/// A checked `POST /password` body.
#[derive(Debug)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Checks a `POST /password` body: both fields, then the new password's strength, which
/// follows the registration rules.
pub fn password_change(body: &Map<String, Value>) -> Result<PasswordChange, AuthError> {
    require(body, &["current_password", "new_password"])?;
    let current_password = password_field(body, "current_password")?;
    let new_password = string_field(body, "new_password").ok_or(AuthError::WeakPassword)?;
    check_password(&new_password)?;
    Ok(PasswordChange {
        current_password,
        new_password,
    })
}

/// Checks a `DELETE /me` body: the account's password, present and non-empty.
pub fn account_deletion(body: &Map<String, Value>) -> Result<String, AuthError> {
    require(body, &["password"])?;
    password_field(body, "password")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn missing_fields_are_listed_in_order() {
        let e = registration(&obj(json!({"password": "x", "email": null}))).unwrap_err();
        assert_eq!(e.to_string(), "Missing required fields: username, email");
    }

    #[test]
    fn passwords_follow_nist_not_the_old_charset() {
        assert!(check_password("correct horse 9 battery").is_ok());
        assert!(check_password("pässwörd1日本").is_ok());
        assert_eq!(check_password("short1"), Err(AuthError::WeakPassword));
        assert_eq!(check_password("nodigitshere"), Err(AuthError::WeakPassword));
        assert!(check_password(&format!("a1{}", "x".repeat(126))).is_ok());
        assert_eq!(
            check_password(&format!("a1{}", "x".repeat(127))),
            Err(AuthError::PasswordTooLong)
        );
    }

    #[test]
    fn formats_checked_before_anything_else() {
        let e = registration(&obj(
            json!({"username": "bad name", "email": "nope", "password": "x"}),
        ))
        .unwrap_err();
        assert_eq!(e, AuthError::InvalidUsername);
        let e = registration(&obj(
            json!({"username": "ok", "email": "nope", "password": "x"}),
        ))
        .unwrap_err();
        assert_eq!(e, AuthError::InvalidEmail);
    }
}
