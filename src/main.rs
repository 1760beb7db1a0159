//! The `authgate` command: runs the gateway, or checks a config file.

use std::path::PathBuf;
use std::process::ExitCode;

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
        Command::Run => {
            authgate::telemetry::init(&config.log);
            match authgate::build_server(&config) {
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
    }
}
