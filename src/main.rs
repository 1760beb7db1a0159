//! The `authgate` command: runs the gateway, checks a config file, administers accounts.

use std::path::PathBuf;
use std::process::ExitCode;

use authgate::admin::UserCommand;
use authgate::config::Config;
use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default when no command is given).
    Run,
    /// Validate the config file and exit: 0 when it is valid, 1 with the bad key when not.
    Check,
    /// Administer accounts in the configured database; a running gateway picks the changes
    /// up within its `sync_interval`.
    Users {
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: UsersAction,
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
}

impl From<UsersAction> for UserCommand {
    fn from(a: UsersAction) -> Self {
        match a {
            UsersAction::List => UserCommand::List,
            UsersAction::Show { username } => UserCommand::Show(username),
            UsersAction::Deactivate { username } => UserCommand::Deactivate(username),
            UsersAction::Activate { username } => UserCommand::Activate(username),
            UsersAction::RevokeSessions { username } => UserCommand::RevokeSessions(username),
        }
    }
}

fn run_gateway(config: &Config) -> ExitCode {
    authgate::telemetry::init(&config.log);
    match authgate::build_server(config) {
        Ok(server) => {
            tracing::info!(listen = %config.server.listen, "authgate starting");
            server.run_forever()
        }
        Err(e) => {
            tracing::error!(error = %e, "authgate cannot start");
            eprintln!("authgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_users(config: &Config, command: UserCommand, json: bool) -> anyhow::Result<String> {
    let store = authgate::store::SqliteStore::open(&config.database.path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(authgate::admin::run(&store, config, &command, json))?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match authgate::config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("authgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            println!(
                "{}: valid ({} upstreams, {} routes)",
                cli.config.display(),
                config.upstreams.len(),
                config.routes.len()
            );
            ExitCode::SUCCESS
        }
        Command::Run => run_gateway(&config),
        Command::Users { json, action } => match run_users(&config, action.into(), json) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("authgate: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
