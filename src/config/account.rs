//! `[account]`: where the self-service endpoints (`GET`/`DELETE /me`, `POST /password`)
//! are served, each one able to be turned off, since a gateway endpoint takes its path
//! away from the upstreams behind a `prefix = "/"` route.

use super::error::ConfigError;
use super::file::AccountFile;
use super::values::endpoint_path;

/// The self-service paths; `None`: that endpoint is off.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub me_path: Option<String>,
    pub password_path: Option<String>,
}

/// Paths the gateway always serves itself.
const BUILT_IN: [&str; 5] = ["/register", "/login", "/logout", "/logout/all", "/refresh"];

pub(super) fn account(
    file: AccountFile,
    forward_auth_path: Option<&str>,
) -> Result<AccountConfig, ConfigError> {
    let me_path = endpoint_path("account.me_path", &file.me_path)?;
    let password_path = endpoint_path("account.password_path", &file.password_path)?;
    let mut taken: Vec<&str> = BUILT_IN.to_vec();
    taken.extend(forward_auth_path);
    for (key, path) in [
        ("account.me_path", me_path.as_deref()),
        ("account.password_path", password_path.as_deref()),
    ] {
        let Some(path) = path else { continue };
        if taken.contains(&path) {
            return Err(ConfigError::invalid(
                key,
                format!("{path:?} is already served by another gateway endpoint"),
            ));
        }
        taken.push(path);
    }
    Ok(AccountConfig {
        me_path,
        password_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(me: &str, password: &str) -> AccountFile {
        AccountFile {
            me_path: me.into(),
            password_path: password.into(),
        }
    }

    #[test]
    fn paths_can_be_moved_or_turned_off_but_not_shared() {
        let c = account(file("/account/me", ""), Some("/auth/verify")).unwrap();
        assert_eq!(c.me_path.as_deref(), Some("/account/me"));
        assert_eq!(c.password_path, None);
        let clash = account(file("/me", "/me"), None).unwrap_err();
        assert!(
            clash.to_string().contains("account.password_path"),
            "{clash}"
        );
        let clash = account(file("/auth/verify", ""), Some("/auth/verify")).unwrap_err();
        assert!(clash.to_string().contains("account.me_path"), "{clash}");
        assert!(account(file("/login", ""), None).is_err());
        assert!(account(file("me", ""), None).is_err());
    }
}
