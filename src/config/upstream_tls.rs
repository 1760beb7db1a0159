//! `[[upstreams]] tls = true`: HTTPS to an upstream's servers, verified by default. The
//! servers are IP addresses, so the name the certificate is checked against (and sent as
//! SNI) must be given as `sni`; pingora's connector verifies nothing when the SNI is
//! empty, so an unnamed TLS upstream is refused instead. `ca_file` replaces the system
//! roots; `verify = false` turns verification off (with a warning at start).

use std::path::PathBuf;
use std::sync::Arc;

use super::error::ConfigError;
use super::file::UpstreamFile;

/// How the gateway speaks TLS to an upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    /// Sent as SNI, and the name the certificate must carry.
    pub sni: String,
    /// DER certificates trusted instead of the system roots; `None`: the system roots.
    pub ca: Option<Arc<Vec<Vec<u8>>>>,
    pub ca_file: Option<PathBuf>,
    /// Verify the certificate chain and name (default true).
    pub verify: bool,
}

pub(super) fn upstream_tls(
    key: &dyn Fn(&str) -> String,
    file: &UpstreamFile,
) -> Result<Option<UpstreamTls>, ConfigError> {
    if !file.tls {
        for (name, set) in [
            ("sni", file.sni.is_some()),
            ("ca_file", file.ca_file.is_some()),
            ("verify", file.verify.is_some()),
        ] {
            if set {
                return Err(ConfigError::invalid(&key(name), "needs tls = true"));
            }
        }
        return Ok(None);
    }
    let sni =
        match file.sni.as_deref().map(str::trim) {
            None | Some("") => return Err(ConfigError::invalid(
                &key("sni"),
                "must be set with tls = true: the servers are IP addresses, and the upstream's \
                 certificate is checked against this name",
            )),
            Some(name) => name.to_ascii_lowercase(),
        };
    if rustls::pki_types::ServerName::try_from(sni.as_str()).is_err() {
        return Err(ConfigError::invalid(
            &key("sni"),
            format!("{sni:?} is not a DNS name"),
        ));
    }
    let ca_file = file.ca_file.as_ref().map(PathBuf::from);
    let ca = ca_file
        .as_ref()
        .map(|path| {
            read_ca_file(path).map_err(|reason| ConfigError::invalid(&key("ca_file"), reason))
        })
        .transpose()?
        .map(Arc::new);
    Ok(Some(UpstreamTls {
        sni,
        ca,
        ca_file,
        verify: file.verify.unwrap_or(true),
    }))
}

/// The certificates of a PEM file, each checked to parse as X.509.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    certs
        .into_iter()
        .map(|der| {
            x509_parser::parse_x509_certificate(&der)
                .map(|_| der.to_vec())
                .map_err(|e| format!("a certificate in {} cannot be parsed: {e}", path.display()))
        })
        .collect()
}
