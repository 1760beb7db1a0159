//! One command for a first look: the gateway on the shipped `config/authgate.toml`
//! (127.0.0.1:5000, SQLite in `data/`) with the example protected service behind it on
//! 127.0.0.1:8000, in one process.
//!
//! `cargo run --release --example demo`

#[path = "protected_api.rs"]
mod protected_api;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let path =
        std::env::var("AUTHGATE_CONFIG").unwrap_or_else(|_| "config/authgate.toml".to_string());
    let config = match authgate::config::load(Path::new(&path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _log = authgate::telemetry::init(&config.log);
    let (mut server, handles) = match authgate::build_server_with_handles(&config) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    server.add_service(protected_api::service("127.0.0.1:8000"));
    tracing::info!(listen = ?config.server.listen, "authgate demo: gateway and example protected api running");
    authgate::shutdown::run_until_drained(server, handles.drained);
    handles.access_log.flush();
    ExitCode::SUCCESS
}
