//! Pulls the token out of the `Authorization` header without allocating.

use super::error::TokenError;

/// Longest token accepted; anything larger is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Parses `Bearer <token>` from the values of every `Authorization` header the request
/// carried. Several headers are refused: which one a backend would read is anyone's guess.
pub fn bearer_token<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<&'a str, TokenError> {
    let value = values.next().ok_or(TokenError::MissingHeader)?;
    if values.next().is_some() {
        return Err(TokenError::Invalid("Multiple Authorization headers"));
    }
    let value = std::str::from_utf8(value)
        .map_err(|_| TokenError::NotBearer)?
        .trim();
    let mut parts = value.splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().map(str::trim).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(TokenError::NotBearer);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Invalid("Token is too large"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<String, TokenError> {
        bearer_token(values.iter().map(|v| v.as_bytes())).map(str::to_string)
    }

    #[test]
    fn accepts_bearer_in_any_case() {
        assert_eq!(parse(&["Bearer abc.def.ghi"]).unwrap(), "abc.def.ghi");
        assert_eq!(parse(&["bearer abc"]).unwrap(), "abc");
    }

    #[test]
    fn refuses_what_is_not_one_bearer_token() {
        assert_eq!(parse(&[]), Err(TokenError::MissingHeader));
        assert_eq!(parse(&["Basic dXNlcjpwdw=="]), Err(TokenError::NotBearer));
        assert_eq!(parse(&["Bearer"]), Err(TokenError::NotBearer));
        assert_eq!(parse(&["Bearer a b"]), Err(TokenError::NotBearer));
        assert_eq!(
            parse(&["Bearer a", "Bearer b"]),
            Err(TokenError::Invalid("Multiple Authorization headers"))
        );
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            parse(&[&huge]),
            Err(TokenError::Invalid("Token is too large"))
        );
    }
}
