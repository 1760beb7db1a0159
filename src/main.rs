//! The `authgate` command: runs the gateway, checks a config file, administers accounts,
//! and migrates an SQLite database into PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;

use authgate::admin::UserCommand;
use authgate::config::Config;
use authgate::key_admin::KeyCommand;
use authgate::pid_file::PidFile;
use clap::{Parser, Subcommand};

/// mimalloc: the proxied path allocates small, short-lived buffers on every request, and
/// mimalloc's per-thread free lists serve those cheaper than glibc's malloc (BENCHMARKS.md).
/// The `system-allocator` feature leaves it out, so that heap profilers see every
/// allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// authgate: a reverse-proxy authentication gateway.
///
/// Serves /register, /login, /logout and /refresh, checks the Bearer token on every other
/// route, injects the verified identity as headers and forwards to the upstream services
/// configured in the TOML file.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Path of the TOML config file.
    #[arg(
        long,
        global = true,
        env = "AUTHGATE_CONFIG",
        default_value = "config/authgate.toml"
    )]
    config: PathBuf,
    /// Binary upgrade: take the listening sockets over from the gateway running with the
    /// same config (over `[server] upgrade_socket`) instead of binding them; send the old
    /// process SIGQUIT within 5 s and it hands them over, drains and exits. Only with
    /// `run` (the default command).
    #[arg(long, global = true)]
    upgrade: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default when no command is given).
    Run,
    /// Tell the running gateway (found by `[server] pid_file`) to reload its config file:
    /// sends it SIGHUP. Whether the file was applied is in its log and in
    /// `authgate_config_last_reload_successful`.
    Reload,
    /// Validate the config file and exit: 0 when it is valid, 1 with the bad key when not.
    Check {
        /// Also print which keys differ from this (running) config file, and which of
        /// those changes a reload (SIGHUP) applies and which need a restart.
        #[arg(long, value_name = "OLD")]
        diff: Option<PathBuf>,
    },
    /// Administer accounts in the configured database (SQLite or PostgreSQL); a running
    /// gateway picks the changes up at once with PostgreSQL, within its `sync_interval`
    /// with SQLite.
    Users {
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Administer the signing keys of EdDSA / ES256 tokens in the configured database;
    /// running gateways pick the changes up within their `sync_interval`.
    Keys {
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Copy an SQLite database into an empty PostgreSQL one: accounts (with their ids,
    /// hashes and active flags), live revocations and user cutoffs, spent refresh tokens,
    /// signing keys (still sealed: keep the same key_encryption_secret).
    /// Needs no config file.
    /// Copy the configured SQLite database to a new file at PATH while gateways keep
    /// running on it (SQLite's online backup). Restore by pointing a gateway's
    /// `[database] url` at the copy, with the same token secret.
    Backup {
        /// Where the copy goes; an existing file is never overwritten.
        path: PathBuf,
    },
    Migrate {
        /// The SQLite database: sqlite:///path.db, sqlite:////abs/path.db or a path.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: postgres://user:pass@host:5432/db.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// List every account.
    List,
    /// Show one account.
    Show { username: String },
    /// Deactivate an account and end all its sessions.
    Deactivate { username: String },
    /// Activate an account again (ended sessions stay ended).
    Activate { username: String },
    /// End every session of an account (logout everywhere).
    RevokeSessions { username: String },
    /// Create an account, e.g. the first admin. The password is read from standard input
    /// (its first line), never from the command line.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: it must not show in `ps`).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// A role to start with (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Grant a role; it reaches the account's tokens at its next login or refresh.
    Grant { username: String, role: String },
    /// Revoke a role; every session of the account ends at once, on every gateway.
    RevokeRole { username: String, role: String },
}

#[derive(Subcommand)]
enum KeysAction {
    /// List every key with its state (signing, published, verifying, expired, retired).
    List,
    /// Add a key of the configured algorithm: published at once, signing after
    /// `[tokens] key_publish_delay`; the previous key verifies until its tokens expire.
    Rotate,
    /// Retire a key at once (a leaked key): its tokens are refused from the next sync on.
    Retire {
        /// The key's id as `keys list` prints it. A thumbprint may start with `-` (base64url),
        /// so a leading hyphen is part of the id, not an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

impl From<KeysAction> for KeyCommand {
    fn from(a: KeysAction) -> Self {
        match a {
            KeysAction::List => KeyCommand::List,
            KeysAction::Rotate => KeyCommand::Rotate,
            KeysAction::Retire { kid } => KeyCommand::Retire(kid),
        }
    }
}

impl UsersAction {
    /// The admin command; `create` reads its password from the first line of `stdin`.
    fn into_command(self, mut stdin: impl std::io::BufRead) -> anyhow::Result<UserCommand> {
        Ok(match self {
            UsersAction::List => UserCommand::List,
            UsersAction::Show { username } => UserCommand::Show(username),
            UsersAction::Deactivate { username } => UserCommand::Deactivate(username),
            UsersAction::Activate { username } => UserCommand::Activate(username),
            UsersAction::RevokeSessions { username } => UserCommand::RevokeSessions(username),
            UsersAction::Grant { username, role } => UserCommand::Grant { username, role },
            UsersAction::RevokeRole { username, role } => {
                UserCommand::RevokeRole { username, role }
            }
            UsersAction::Create {
                username,
                email,
                password_stdin: _,
                roles,
            } => {
                let mut line = String::new();
                stdin.read_line(&mut line)?;
                UserCommand::Create {
                    username,
                    email,
                    password: line.trim_end_matches(['\r', '\n']).to_string(),
                    roles,
                }
            }
        })
    }
}

fn run_gateway(config: &Config, path: &std::path::Path, upgrade: bool) -> ExitCode {
    // Held until the server has shut down, so the last lines are written out.
    let log = authgate::telemetry::init(&config.log);
    authgate::open_files::raise_and_log();
    let launch = authgate::Launch {
        config_path: Some(path),
        log_level: log.level(),
        upgrade,
    };
    match authgate::build_server_from(config, launch) {
        Ok((server, handles)) => {
            let _pid_file = match config.server.pid_file.as_deref().map(PidFile::create) {
                Some(Err(e)) => {
                    tracing::error!(error = %e, "cannot write the pid file");
                    eprintln!("authgate: cannot write the pid file: {e}");
                    return ExitCode::FAILURE;
                }
                Some(Ok(file)) => Some(file),
                None => None,
            };
            tracing::info!(
                listen = %config.server.listen.map_or("off".to_string(), |a| a.to_string()),
                tls_listen = %config.tls.as_ref().map_or("off".to_string(), |t| t.listen.to_string()),
                upgrade,
                "authgate starting"
            );
            authgate::shutdown::run_until_drained(server, handles.drained);
            // Requests that finished while the server stopped queued their lines after the
            // access log's own shutdown flush.
            handles.access_log.flush();
            // pingora's thread may still be stopping (its grace period): what it logs from
            // now on is left out, so the last line is this one, and nothing reaches the log
            // writer once it closes, when main returns. An event already past the level
            // check gets a moment to be queued first.
            let level = log.level();
            let say_stopped = tracing::enabled!(tracing::Level::INFO);
            if let Some(level) = &level {
                if say_stopped {
                    level.only_own_info();
                } else {
                    level.silence();
                }
            }
            tracing::info!("authgate stopped");
            if let Some(level) = &level {
                level.silence();
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "authgate cannot start");
            eprintln!("authgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A one-shot runtime and the configured database, for the admin commands.
fn admin_store(
    config: &Config,
) -> anyhow::Result<(
    tokio::runtime::Runtime,
    std::sync::Arc<dyn authgate::store::Store>,
)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime
        .block_on(authgate::store::open(&config.database.backend))
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", config.database.backend))?;
    Ok((runtime, store))
}

fn run_users(config: &Config, command: UserCommand, json: bool) -> anyhow::Result<String> {
    let (runtime, store) = admin_store(config)?;
    Ok(runtime.block_on(authgate::admin::run(store.as_ref(), config, &command, json))?)
}

fn run_keys(config: &Config, command: KeyCommand, json: bool) -> anyhow::Result<String> {
    let (runtime, store) = admin_store(config)?;
    Ok(runtime.block_on(authgate::key_admin::run(
        store.as_ref(),
        config,
        &command,
        json,
    ))?)
}

fn run_migrate(from: &str, to: &str) -> anyhow::Result<String> {
    use authgate::config::{parse_database_url, redact_url, DatabaseUrl, PostgresConfig};
    let DatabaseUrl::Sqlite(source) = parse_database_url(from)? else {
        anyhow::bail!("--from must name an SQLite database (sqlite:///path.db or a path)");
    };
    let DatabaseUrl::Postgres(url) = parse_database_url(to)? else {
        anyhow::bail!("--to must name a PostgreSQL database (postgres://user:pass@host:5432/db)");
    };
    let destination = PostgresConfig {
        url: url.clone(),
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(10),
        // One transaction carries the whole copy.
        query_timeout: std::time::Duration::from_secs(600),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let counts = runtime.block_on(authgate::store::transfer::sqlite_to_postgres(
        &source,
        &destination,
        now,
    ))?;
    Ok(format!(
        "migrated {counts} from {} to {}",
        source.display(),
        redact_url(&url)
    ))
}

fn run_backup(config: &Config, destination: &std::path::Path) -> anyhow::Result<String> {
    use authgate::config::DatabaseBackend;
    let DatabaseBackend::Sqlite(source) = &config.database.backend else {
        anyhow::bail!(
            "backup copies an SQLite database; for PostgreSQL use pg_dump ({})",
            config.database.backend
        );
    };
    let report = authgate::store::sqlite_backup::backup(source, destination)?;
    Ok(format!(
        "backed up {} ({} accounts, {} pages) to {}",
        config.database.backend,
        report.users,
        report.pages,
        std::path::absolute(destination)?.display()
    ))
}

fn load_config(path: &std::path::Path) -> Option<Config> {
    match authgate::config::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("authgate: {e}");
            None
        }
    }
}

fn print_outcome(outcome: anyhow::Result<String>) -> ExitCode {
    match outcome {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("authgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `check --diff OLD`: the keys that differ from `OLD` and how each applies.
fn print_diff(old_path: &std::path::Path, new: &Config) -> ExitCode {
    let Some(old) = load_config(old_path) else {
        return ExitCode::FAILURE;
    };
    let changes = authgate::reload::changes::changes(&old, new);
    print!(
        "changes from {}:\n{}",
        old_path.display(),
        authgate::reload::changes::describe(&changes)
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    if cli.upgrade && !matches!(command, Command::Run) {
        eprintln!("authgate: --upgrade only starts the gateway (the run command)");
        return ExitCode::FAILURE;
    }
    if let Command::Migrate { from, to } = &command {
        return print_outcome(run_migrate(from, to));
    }
    let Some(config) = load_config(&cli.config) else {
        return ExitCode::FAILURE;
    };
    match command {
        Command::Check { diff } => {
            println!(
                "{}: valid ({} upstreams, {} routes, database: {})",
                cli.config.display(),
                config.upstreams.len(),
                config.routes.len(),
                config.database.backend
            );
            match diff {
                Some(old) => print_diff(&old, &config),
                None => ExitCode::SUCCESS,
            }
        }
        Command::Run => run_gateway(&config, &cli.config, cli.upgrade),
        Command::Reload => {
            match authgate::pid_file::signal_reload(config.server.pid_file.as_deref()) {
                Ok(pid) => {
                    println!("sent SIGHUP to authgate (process {pid})");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("authgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Users { json, action } => print_outcome(
            action
                .into_command(std::io::stdin().lock())
                .and_then(|command| run_users(&config, command, json)),
        ),
        Command::Backup { path } => print_outcome(run_backup(&config, &path)),
        Command::Keys { json, action } => print_outcome(run_keys(&config, action.into(), json)),
        Command::Migrate { .. } => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One key id in 64 starts with `-`: it must still be taken as the id.
    #[test]
    fn upgrade_is_taken_before_or_after_run() {
        for args in [
            &["authgate", "--upgrade"][..],
            &["authgate", "--upgrade", "run"],
            &["authgate", "run", "--upgrade"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            assert!(cli.upgrade, "{args:?}");
        }
        assert!(!Cli::try_parse_from(["authgate"]).unwrap().upgrade);
    }

    #[test]
    fn a_kid_starting_with_a_hyphen_is_the_kid() {
        let cli = Cli::try_parse_from(["authgate", "keys", "retire", "-_h84GW8kC4d1gyJxvKe"])
            .expect("parses");
        match cli.command {
            Some(Command::Keys {
                action: KeysAction::Retire { kid },
                ..
            }) => assert_eq!(kid, "-_h84GW8kC4d1gyJxvKe"),
            _ => panic!("not keys retire"),
        }
    }
}
