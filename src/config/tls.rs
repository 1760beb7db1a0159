//! `[tls]`: the HTTPS listener, its certificates (a default and any chosen by SNI), HSTS
//! and the plain listener's redirect. The certificate files are read and matched to their
//! keys here, so a missing, unreadable or mismatched file is refused at start-up with the
//! key that names it (pingora's own loader panics on them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::validated::ServerConfig;
use super::values::{duration, socket_addr};
use crate::tls::certificates::LoadedCertificate;

/// `[tls]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub listen: String,
    pub certificate: String,
    pub private_key: String,
    #[serde(default = "default_hsts")]
    pub hsts: String,
    #[serde(default)]
    pub redirect_http: bool,
    #[serde(default = "default_watch_interval")]
    pub watch_interval: String,
    #[serde(default)]
    pub certificates: Vec<TlsCertificateFile>,
    #[serde(default = "default_read_buffer_size")]
    pub read_buffer_size: usize,
}

/// `[[tls.certificates]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificateFile {
    pub server_names: Vec<String>,
    pub certificate: String,
    pub private_key: String,
}

fn default_hsts() -> String {
    "max-age=63072000".into()
}

fn default_watch_interval() -> String {
    "10s".into()
}

/// pingora's own L4 read buffer: rustls reads a record in small pieces, which the buffer
/// turns into one read; a smaller one saves memory per idle connection (BENCHMARKS.md).
fn default_read_buffer_size() -> usize {
    pingora::listeners::DEFAULT_L4_READ_BUFFER_SIZE
}

/// A certificate chain and its private key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePaths {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// The config key the pair was given under (`tls` or `tls.certificates[N]`), for errors.
    pub key: String,
}

/// A certificate served to clients asking for one of `server_names` (lowercase; a name may
/// start with `*.` to match one label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCertificate {
    pub server_names: Vec<String>,
    pub paths: CertificatePaths,
}

/// The checked `[tls]` table.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// Served when the client sends no SNI or one no named certificate matches.
    pub default: CertificatePaths,
    pub named: Vec<NamedCertificate>,
    /// The `Strict-Transport-Security` value; `None`: not sent.
    pub hsts: Option<String>,
    /// The plain listener answers every request with a 308 to HTTPS.
    pub redirect_http: bool,
    /// How often the certificate files are checked for a change.
    pub watch_interval: Duration,
    /// The HTTPS listener's read buffer per connection (pingora's L4 buffer); 0: none.
    pub read_buffer_size: usize,
}

impl TlsConfig {
    /// Every certificate, the default first.
    pub fn all_paths(&self) -> impl Iterator<Item = &CertificatePaths> {
        std::iter::once(&self.default).chain(self.named.iter().map(|n| &n.paths))
    }
}

pub(super) fn tls(file: TlsFile) -> Result<TlsConfig, ConfigError> {
    let listen = socket_addr("tls.listen", &file.listen)?;
    let default = paths("tls", &file.certificate, &file.private_key)?;
    let mut named = Vec::with_capacity(file.certificates.len());
    let mut seen = std::collections::HashSet::new();
    for (i, c) in file.certificates.into_iter().enumerate() {
        let key = format!("tls.certificates[{i}]");
        if c.server_names.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.server_names"),
                "needs at least one name",
            ));
        }
        let mut server_names = Vec::with_capacity(c.server_names.len());
        for name in c.server_names {
            let name = name.to_ascii_lowercase();
            if !is_server_name(&name) {
                return Err(ConfigError::invalid(
                    &format!("{key}.server_names"),
                    format!("{name:?} is not a DNS name (a leading \"*.\" is allowed)"),
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(ConfigError::invalid(
                    &format!("{key}.server_names"),
                    format!("{name:?} is given to two certificates"),
                ));
            }
            server_names.push(name);
        }
        named.push(NamedCertificate {
            server_names,
            paths: paths(&key, &c.certificate, &c.private_key)?,
        });
    }
    let watch_interval = duration("tls.watch_interval", &file.watch_interval)?;
    if watch_interval.is_zero() {
        return Err(ConfigError::invalid(
            "tls.watch_interval",
            "must be above zero",
        ));
    }
    let hsts = match file.hsts.trim() {
        "" => None,
        value if http::HeaderValue::from_str(value).is_ok() => Some(value.to_string()),
        value => {
            return Err(ConfigError::invalid(
                "tls.hsts",
                format!("{value:?} is not a valid header value"),
            ))
        }
    };
    Ok(TlsConfig {
        listen,
        default,
        named,
        hsts,
        redirect_http: file.redirect_http,
        watch_interval,
        read_buffer_size: super::connections::read_buffer_size_of(
            "tls.read_buffer_size",
            file.read_buffer_size,
        )?,
    })
}

/// `[tls]` against `[server]`: something must listen, and listeners must not collide.
pub(super) fn check_listeners(
    server: &ServerConfig,
    tls: Option<&TlsConfig>,
) -> Result<(), ConfigError> {
    let Some(t) = tls else {
        if server.listen.is_none() {
            return Err(ConfigError::invalid(
                "server.listen",
                "\"off\" needs a [tls] listener: the gateway would listen nowhere",
            ));
        }
        return Ok(());
    };
    // Port 0 asks the system for a free port each time: no clash.
    let taken = [server.listen, server.metrics_listen].contains(&Some(t.listen));
    if t.listen.port() != 0 && taken {
        return Err(ConfigError::invalid(
            "tls.listen",
            format!("{} is already another listener's address", t.listen),
        ));
    }
    if t.redirect_http && server.listen.is_none() {
        return Err(ConfigError::invalid(
            "tls.redirect_http",
            "needs the plain listener ([server] listen is \"off\")",
        ));
    }
    Ok(())
}

/// Checks that the pair can be served: both files readable, the chain and the key parsed,
/// the key the certificate's.
fn paths(key: &str, certificate: &str, private_key: &str) -> Result<CertificatePaths, ConfigError> {
    for (name, value) in [("certificate", certificate), ("private_key", private_key)] {
        if value.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.{name}"),
                "must name a PEM file",
            ));
        }
    }
    let paths = CertificatePaths {
        certificate: PathBuf::from(certificate),
        private_key: PathBuf::from(private_key),
        key: key.to_string(),
    };
    LoadedCertificate::load(&paths)
        .map_err(|e| ConfigError::invalid(&e.key(&paths), e.to_string()))?;
    Ok(paths)
}

/// A DNS name, or `*.` followed by one.
fn is_server_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_dns_names_or_one_wildcard() {
        assert!(is_server_name("api.example.com"));
        assert!(is_server_name("*.example.com"));
        assert!(is_server_name("localhost"));
        assert!(!is_server_name("*"));
        assert!(!is_server_name("a.*.example.com"));
        assert!(!is_server_name("exa mple.com"));
        assert!(!is_server_name("-bad.example.com"));
        assert!(!is_server_name(""));
    }
}
