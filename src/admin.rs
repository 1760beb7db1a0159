//! `authgate users ...`: account administration straight on the database, SQLite or
//! PostgreSQL alike: list, show, create, (de)activate, grant and revoke roles, end
//! sessions. Running gateways pick the changes up through their revocation sync: at once
//! with PostgreSQL (NOTIFY), within `[database] sync_interval` with SQLite.

use serde_json::{json, Value};

use crate::auth::revocation::now_ms;
use crate::auth::roles::{is_valid_role, MAX_ROLES};
use crate::auth::sessions::revocation_horizon;
use crate::config::Config;
use crate::store::{NewUser, Store, StoreError, User, UserCutoff};

/// One admin action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    List,
    Show(String),
    Deactivate(String),
    Activate(String),
    RevokeSessions(String),
    /// Creates an account (the first admin, without the HTTP API).
    Create {
        username: String,
        email: String,
        password: String,
        roles: Vec<String>,
    },
    /// Adds a role; it reaches tokens at the next login or refresh.
    Grant {
        username: String,
        role: String,
    },
    /// Removes a role and ends every session of the account at once.
    RevokeRole {
        username: String,
        role: String,
    },
}

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check_role(role: &str) -> Result<(), AdminError> {
    if is_valid_role(role) {
        Ok(())
    } else {
        Err(AdminError::Invalid(
            crate::auth::roles::RoleError::InvalidName(role.to_string()).to_string(),
        ))
    }
}

/// Checks a new account the way `/register` does, and its roles; hashes the password.
fn new_user(
    username: &str,
    email: &str,
    password: &str,
    roles: &[String],
) -> Result<NewUser, AdminError> {
    let body = json!({"username": username, "email": email, "password": password});
    let input = crate::auth::validation::registration(body.as_object().expect("an object"))
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let mut roles = roles.to_vec();
    for role in &roles {
        check_role(role)?;
    }
    roles.sort();
    roles.dedup();
    if roles.len() > MAX_ROLES {
        return Err(StoreError::TooManyRoles(MAX_ROLES).into());
    }
    let password_hash = crate::auth::password::hash_blocking(&input.password)
        .map_err(|e| AdminError::Invalid(format!("cannot hash the password: {e}")))?;
    Ok(NewUser {
        username: input.username,
        email: input.email,
        password_hash,
        roles,
    })
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email, "active": u.active, "roles": u.roles, "created_at": u.created_at})
}

fn table(users: &[User]) -> String {
    let rows: Vec<[String; 5]> = users
        .iter()
        .map(|u| {
            [
                u.id.to_string(),
                u.username.clone(),
                u.email.clone(),
                if u.active { "yes" } else { "no" }.into(),
                u.roles.join(","),
            ]
        })
        .collect();
    let header = ["ID", "USERNAME", "EMAIL", "ACTIVE", "ROLES"].map(String::from);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String; 5]| {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(&header)];
    out.extend(rows.iter().map(line));
    out.join("\n")
}

async fn find(store: &dyn Store, name: &str) -> Result<User, AdminError> {
    store
        .user_by_username(name)
        .await?
        .ok_or_else(|| AdminError::NoSuchUser(name.to_string()))
}

/// A cutoff ending every session of `user` issued up to now.
fn cutoff_now(config: &Config, user: &User) -> UserCutoff {
    let now = now_ms() / 1000;
    let horizon = revocation_horizon(
        now,
        config.tokens.refresh_ttl.as_secs() as i64,
        config.tokens.access_ttl.as_secs() as i64,
    );
    UserCutoff {
        user_id: user.id,
        not_before: now,
        expires_at: horizon,
    }
}

/// Ends every session of `user` issued up to now.
async fn revoke_sessions(
    store: &dyn Store,
    config: &Config,
    user: &User,
) -> Result<(), AdminError> {
    store.revoke_user_sessions(cutoff_now(config, user)).await?;
    Ok(())
}

/// Runs `command`; returns what to print (a table or JSON).
pub async fn run(
    store: &dyn Store,
    config: &Config,
    command: &UserCommand,
    as_json: bool,
) -> Result<String, AdminError> {
    let done = |user: &User, action: &str| {
        if as_json {
            json!({"user": user_json(user), "action": action}).to_string()
        } else {
            format!("{action}: {} (id {})", user.username, user.id)
        }
    };
    Ok(match command {
        UserCommand::List => {
            let users = store.list_users().await?;
            if as_json {
                Value::Array(users.iter().map(user_json).collect()).to_string()
            } else {
                table(&users)
            }
        }
        UserCommand::Show(name) => {
            let user = find(store, name).await?;
            if as_json {
                user_json(&user).to_string()
            } else {
                table(std::slice::from_ref(&user))
            }
        }
        UserCommand::Deactivate(name) => {
            let user = find(store, name).await?;
            store.set_active(user.id, false).await?;
            revoke_sessions(store, config, &user).await?;
            done(
                &User {
                    active: false,
                    ..user
                },
                "deactivated",
            )
        }
        UserCommand::Activate(name) => {
            let user = find(store, name).await?;
            store.set_active(user.id, true).await?;
            done(
                &User {
                    active: true,
                    ..user
                },
                "activated",
            )
        }
        UserCommand::RevokeSessions(name) => {
            let user = find(store, name).await?;
            revoke_sessions(store, config, &user).await?;
            done(&user, "sessions revoked")
        }
        UserCommand::Create {
            username,
            email,
            password,
            roles,
        } => {
            let new = new_user(username, email, password, roles)?;
            let user = store.create_user(new).await?;
            done(&user, "created")
        }
        UserCommand::Grant { username, role } => {
            check_role(role)?;
            let user = find(store, username).await?;
            let added = store.grant_role(user.id, role, MAX_ROLES).await?;
            let user = find(store, username).await?;
            done(
                &user,
                if added {
                    "role granted"
                } else {
                    "role already held"
                },
            )
        }
        UserCommand::RevokeRole { username, role } => {
            check_role(role)?;
            let user = find(store, username).await?;
            let cutoff = cutoff_now(config, &user);
            let removed = store.revoke_role(user.id, role, cutoff).await?.is_some();
            let user = find(store, username).await?;
            done(
                &user,
                if removed {
                    "role revoked, sessions ended"
                } else {
                    "role not held"
                },
            )
        }
    })
}
