//! `authgate keys ...`: signing-key administration straight on the database. Running
//! gateways that share it pick a rotation or retirement up on their next key sync
//! (`[database] sync_interval`), without a restart.

use serde_json::{json, Value};

use crate::auth::keys::lifecycle::{self, KeyWindow};
use crate::auth::keys::{rotation, KeyEncryptionKey, KeyError};
use crate::auth::revocation::now_ms;
use crate::config::Config;
use crate::store::{AddKeyOutcome, Store, StoredSigningKey};

/// One key action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCommand {
    List,
    Rotate,
    Retire(String),
}

/// Why a key action failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("[tokens] algorithm is HS256: set it to EdDSA or ES256 to make signing keys")]
    Hs256Configured,
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Where a key is in its life at `now`.
fn state(
    rows: &[StoredSigningKey],
    index: usize,
    now: i64,
    config: &Config,
) -> (String, Option<i64>) {
    if rows[index].retired_at.is_some() {
        return ("retired".into(), None);
    }
    let live: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].retired_at.is_none())
        .collect();
    let windows: Vec<KeyWindow> = live
        .iter()
        .map(|i| KeyWindow {
            signs_from: rows[*i].signs_from,
            retired: false,
        })
        .collect();
    let me = live.iter().position(|i| *i == index).unwrap_or(0);
    let longest = config
        .tokens
        .refresh_ttl
        .max(config.tokens.access_ttl)
        .as_secs() as i64;
    let until = lifecycle::verifies_until(
        lifecycle::signing_ends(&windows, me),
        longest,
        config.tokens.leeway.as_secs() as i64,
    );
    let name = if lifecycle::signer(&windows, now) == Some(me) {
        "signing"
    } else if rows[index].signs_from > now {
        "published"
    } else if until.is_some_and(|u| now > u) {
        "expired"
    } else {
        "verifying"
    };
    (name.into(), until)
}

fn key_json(rows: &[StoredSigningKey], index: usize, now: i64, config: &Config) -> Value {
    let row = &rows[index];
    let (state, verifies_until) = state(rows, index, now, config);
    json!({
        "kid": row.kid,
        "algorithm": row.algorithm,
        "state": state,
        "created_at": row.created_at,
        "signs_from": row.signs_from,
        "verifies_until": verifies_until,
        "retired_at": row.retired_at,
    })
}

fn table(keys: &[Value]) -> String {
    let mut out = vec![format!(
        "{:<43}  {:<5}  {:<9}  {:>10}  {:>10}  {:>14}",
        "KID", "ALG", "STATE", "CREATED", "SIGNS_FROM", "VERIFIES_UNTIL"
    )];
    for k in keys {
        let text = |f: &str| match &k[f] {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        out.push(format!(
            "{:<43}  {:<5}  {:<9}  {:>10}  {:>10}  {:>14}",
            text("kid"),
            text("algorithm"),
            text("state"),
            text("created_at"),
            text("signs_from"),
            text("verifies_until")
        ));
    }
    out.join("\n")
}

/// Runs `command`; returns what to print (a table or JSON).
pub async fn run(
    store: &dyn Store,
    config: &Config,
    command: &KeyCommand,
    as_json: bool,
) -> Result<String, KeyAdminError> {
    let now = now_ms() / 1000;
    Ok(match command {
        KeyCommand::List => {
            let rows = store.signing_keys().await.map_err(KeyError::from)?;
            let keys: Vec<Value> = (0..rows.len())
                .map(|i| key_json(&rows, i, now, config))
                .collect();
            if as_json {
                Value::Array(keys).to_string()
            } else {
                table(&keys)
            }
        }
        KeyCommand::Rotate => {
            let algorithm = config
                .tokens
                .algorithm
                .ok_or(KeyAdminError::Hs256Configured)?;
            let kek = config
                .tokens
                .key_encryption_secret
                .as_deref()
                .map(KeyEncryptionKey::from_secret)
                .ok_or(KeyError::NoKeyEncryptionSecret)?;
            let delay = config.tokens.key_publish_delay.as_secs() as i64;
            let outcome = rotation::rotate(store, &kek, algorithm, now, delay, None).await?;
            debug_assert_eq!(outcome, AddKeyOutcome::Added);
            let rows = store.signing_keys().await.map_err(KeyError::from)?;
            let newest = (0..rows.len())
                .max_by_key(|i| (rows[*i].created_at, rows[*i].signs_from))
                .map(|i| key_json(&rows, i, now, config))
                .unwrap_or(Value::Null);
            if as_json {
                json!({"action": "rotated", "key": newest}).to_string()
            } else {
                format!(
                    "rotated: new {algorithm} key {} is published now and signs from {} (in {}s); the previous key verifies until its tokens expire",
                    newest["kid"].as_str().unwrap_or_default(),
                    newest["signs_from"],
                    delay
                )
            }
        }
        KeyCommand::Retire(kid) => {
            rotation::retire(store, kid, now).await?;
            if as_json {
                json!({"action": "retired", "kid": kid}).to_string()
            } else {
                format!("retired: {kid} no longer signs, verifies or is published")
            }
        }
    })
}
