//! Configuration: the TOML file format (`file`), the environment overlay (`env`), and the
//! validated [`Config`] the gateway runs on (`validated`, with `[database]` in `database`
//! and `[tls]` in `tls`).

mod account;
mod connections;
mod cors;
mod database;
mod env;
mod error;
mod file;
mod postgres_tls;
mod routing;
mod tls;
mod upgrade;
mod upstream_tls;
mod validated;
mod values;

use std::path::Path;

pub use error::ConfigError;
pub use file::FileConfig;
pub use postgres_tls::{read_root_certs, split_tls_options, PostgresTls, PostgresTlsMode};
pub use tls::{CertificatePaths, NamedCertificate, TlsConfig};
pub use upstream_tls::UpstreamTls;
pub use validated::*;

/// Reads, overlays the environment on, and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file = parse(path, &text)?;
    env::overlay(&mut file, |k| std::env::var(k).ok());
    Config::try_from(file)
}

/// Parses the TOML text; unknown keys are an error.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
