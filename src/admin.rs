//! `authgate users ...`: account administration straight on the database, SQLite or
//! PostgreSQL alike. Running gateways pick the changes up through their revocation sync: at
//! once with PostgreSQL (NOTIFY), within `[database] sync_interval` with SQLite.

use serde_json::{json, Value};

use crate::auth::revocation::now_ms;
use crate::auth::sessions::revocation_horizon;
use crate::config::Config;
use crate::store::{Store, StoreError, User, UserCutoff};

/// One admin action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    List,
    Show(String),
    Deactivate(String),
    Activate(String),
    RevokeSessions(String),
}

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "email": u.email, "active": u.active, "created_at": u.created_at})
}

fn table(users: &[User]) -> String {
    let rows: Vec<[String; 4]> = users
        .iter()
        .map(|u| {
            [
                u.id.to_string(),
                u.username.clone(),
                u.email.clone(),
                if u.active { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let header = ["ID", "USERNAME", "EMAIL", "ACTIVE"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String; 4]| {
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

/// Ends every session of `user` issued up to now.
async fn revoke_sessions(
    store: &dyn Store,
    config: &Config,
    user: &User,
) -> Result<(), AdminError> {
    let now = now_ms() / 1000;
    let horizon = revocation_horizon(
        now,
        config.tokens.refresh_ttl.as_secs() as i64,
        config.tokens.access_ttl.as_secs() as i64,
    );
    store
        .revoke_user_sessions(UserCutoff {
            user_id: user.id,
            not_before: now,
            expires_at: horizon,
        })
        .await?;
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
    })
}
