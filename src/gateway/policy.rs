//! Authorization policy: which roles may pass a route (`[[routes]] roles`) or a
//! forward-auth call (`?roles=` in the calling proxy's URL), checked after the token
//! verified.

use std::sync::Arc;

use crate::auth::{AuthError, VerifiedToken};

/// Lets `token` through when `required` is empty or the token holds any of its roles;
/// otherwise the 403 `Forbidden: insufficient role`. The roles are the token's, fixed when
/// it was issued: a revoked role has ended every session that carried it.
pub fn require_roles(
    required: &[String],
    token: Arc<VerifiedToken>,
) -> Result<Arc<VerifiedToken>, AuthError> {
    if crate::auth::roles::has_any(&token.roles, required) {
        return Ok(token);
    }
    tracing::info!(target: "audit", event = "forbidden", user_id = token.user_id);
    Err(AuthError::Forbidden)
}

/// The roles a forward-auth call requires, from its own URL's query only
/// (`/auth/verify?roles=admin,ops`): the calling proxy's configuration writes it, while a
/// request header could come from the client through the proxy. No `roles` parameter:
/// none required. An unreadable one is an error, never "none required".
pub fn roles_from_query(query: Option<&str>) -> Result<Vec<String>, String> {
    let mut found = None;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "roles" {
            continue;
        }
        if found.is_some() {
            return Err("the roles parameter is given twice".into());
        }
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| "the roles parameter is not UTF-8".to_string())?;
        found =
            Some(crate::auth::roles::parse_role_list(&value).map_err(|e| format!("roles: {e}"))?);
    }
    Ok(found.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_auth_roles_come_from_the_query() {
        assert_eq!(roles_from_query(None).unwrap(), Vec::<String>::new());
        assert_eq!(roles_from_query(Some("x=1")).unwrap(), Vec::<String>::new());
        assert_eq!(
            roles_from_query(Some("x=1&roles=admin,ops")).unwrap(),
            vec!["admin", "ops"]
        );
        assert_eq!(
            roles_from_query(Some("roles=admin%2Cops")).unwrap(),
            vec!["admin", "ops"]
        );
        assert!(roles_from_query(Some("roles=")).is_err());
        assert!(roles_from_query(Some("roles=Admin")).is_err());
        assert!(roles_from_query(Some("roles=a&roles=b")).is_err());
    }
}
