//! The listener's certificate resolver: picks a certificate by the client's SNI from the
//! current [`CertificateSet`], which a reload replaces whole with one atomic swap, so a
//! handshake sees either the old set or the new one, never a mix.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certificates::{CertificateError, LoadedCertificate};
use crate::config::{CertificatePaths, TlsConfig};

/// Every certificate of `[tls]`, loaded and checked, indexed by server name.
#[derive(Debug)]
pub struct CertificateSet {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Each certificate with its label for the expiry metric, the default first.
    pub loaded: Vec<(String, LoadedCertificate)>,
}

/// A certificate that failed to load, with the config key of the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {source}")]
pub struct SetError {
    pub key: String,
    pub source: CertificateError,
}

impl CertificateSet {
    /// Loads every certificate of `tls` from disk; one bad pair fails the whole set.
    pub fn load(tls: &TlsConfig) -> Result<Self, SetError> {
        let mut loaded = Vec::with_capacity(1 + tls.named.len());
        for paths in tls.all_paths() {
            loaded.push(load_one(paths)?);
        }
        Ok(Self::from_loaded(tls, loaded))
    }

    /// Builds the set from pairs already loaded, in [`TlsConfig::all_paths`] order.
    pub fn from_loaded(tls: &TlsConfig, loaded: Vec<LoadedCertificate>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (named, cert) in tls.named.iter().zip(loaded.iter().skip(1)) {
            for name in &named.server_names {
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.insert(suffix.to_string(), cert.certified.clone()),
                    None => exact.insert(name.clone(), cert.certified.clone()),
                };
            }
        }
        let labels = std::iter::once("default".to_string())
            .chain(tls.named.iter().map(|n| n.server_names[0].clone()));
        Self {
            default: loaded[0].certified.clone(),
            exact,
            wildcard,
            loaded: labels.zip(loaded).collect(),
        }
    }

    /// The certificate for `server_name`: an exact name, else a wildcard one label up, else
    /// the default.
    pub fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(cert) = self.exact.get(&name) {
            return cert.clone();
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
            .clone()
    }
}

fn load_one(paths: &CertificatePaths) -> Result<LoadedCertificate, SetError> {
    LoadedCertificate::load(paths).map_err(|source| SetError {
        key: source.key(paths),
        source,
    })
}

/// The rustls resolver over the swappable set.
pub struct CertificateResolver {
    current: ArcSwap<CertificateSet>,
}

impl CertificateResolver {
    pub fn new(set: CertificateSet) -> Self {
        Self {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// The set handshakes use now.
    pub fn current(&self) -> Arc<CertificateSet> {
        self.current.load_full()
    }

    /// Makes `set` the one new handshakes use.
    pub fn replace(&self, set: CertificateSet) {
        self.current.store(Arc::new(set));
    }
}

impl std::fmt::Debug for CertificateResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateResolver")
            .field("certificates", &self.current.load().loaded.len())
            .finish()
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(client_hello.server_name()))
    }
}
