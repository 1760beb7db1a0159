//! Role names: short lowercase identifiers an operator grants to accounts and a route or a
//! forward-auth call requires. Checked wherever they enter (CLI, config, query string).

use std::sync::LazyLock;

use regex::Regex;

/// Most roles one account may hold (they travel in every access token).
pub const MAX_ROLES: usize = 16;

static ROLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_-]{0,31}$").expect("valid regex"));

/// True for a well-formed role name: `^[a-z][a-z0-9_-]{0,31}$`.
pub fn is_valid_role(name: &str) -> bool {
    ROLE.is_match(name)
}

/// Why a role or a list of roles was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("{0:?} is not a role name (a lowercase letter, then up to 31 of a-z 0-9 _ -)")]
    InvalidName(String),
    #[error("names no role")]
    Empty,
}

/// Parses a comma-separated list of roles (`admin,ops`), each checked; at least one.
pub fn parse_role_list(list: &str) -> Result<Vec<String>, RoleError> {
    let roles = list
        .split(',')
        .map(|r| {
            if is_valid_role(r) {
                Ok(r.to_string())
            } else {
                Err(RoleError::InvalidName(r.to_string()))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if roles.is_empty() {
        return Err(RoleError::Empty);
    }
    Ok(roles)
}

/// True when `held` has any of `required`; an empty `required` asks for nothing.
pub fn has_any(held: &[String], required: &[String]) -> bool {
    required.is_empty() || required.iter().any(|r| held.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_short_lowercase_identifiers() {
        for ok in ["admin", "a", "ops-team", "read_only2", &"a".repeat(32)] {
            assert!(is_valid_role(ok), "{ok}");
        }
        for bad in [
            "",
            "Admin",
            "1admin",
            "-x",
            "a,b",
            "a b",
            "é",
            &"a".repeat(33),
        ] {
            assert!(!is_valid_role(bad), "{bad}");
        }
    }

    #[test]
    fn lists_are_checked_name_by_name() {
        assert_eq!(parse_role_list("admin,ops").unwrap(), vec!["admin", "ops"]);
        assert_eq!(
            parse_role_list("admin,,ops"),
            Err(RoleError::InvalidName(String::new()))
        );
        assert_eq!(
            parse_role_list("Admin"),
            Err(RoleError::InvalidName("Admin".into()))
        );
    }

    #[test]
    fn any_required_role_passes() {
        let held = vec!["ops".to_string()];
        assert!(has_any(&held, &["admin".into(), "ops".into()]));
        assert!(!has_any(&held, &["admin".into()]));
        assert!(!has_any(&[], &["admin".into()]));
        assert!(has_any(&[], &[]));
    }
}
