//! Reading one certificate chain and its private key from PEM files into what rustls
//! serves, checked: both files readable, at least one certificate, a key rustls can sign
//! with, and the key the one the first certificate was issued for.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::config::CertificatePaths;

/// Why a certificate and key pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {source}")]
    ReadCertificate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("the certificate in {path} cannot be parsed: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("the private key in {path} cannot be used: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the private key in {key} is not the key of the certificate in {certificate}")]
    Mismatch { certificate: PathBuf, key: PathBuf },
}

impl CertificateError {
    /// The config key of the file at fault (`tls.certificate`, `tls.certificates[0].private_key`...).
    pub fn key(&self, paths: &CertificatePaths) -> String {
        let field = match self {
            Self::ReadCertificate { .. }
            | Self::NoCertificate { .. }
            | Self::BadCertificate { .. } => "certificate",
            Self::ReadKey { .. }
            | Self::NoKey { .. }
            | Self::BadKey { .. }
            | Self::Mismatch { .. } => "private_key",
        };
        format!("{}.{field}", paths.key)
    }
}

/// A certificate chain with its signing key, ready for rustls, and what alerts need.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    pub certified: Arc<CertifiedKey>,
    /// The leaf certificate's `notAfter`, in seconds since the Unix epoch.
    pub not_after: i64,
    /// The leaf certificate's serial number, hex, for the logs.
    pub serial: String,
    /// SHA-256 of the files read, so a change on disk can be told from none.
    pub fingerprint: [u8; 32],
}

/// The bytes of a certificate file and its key file, as read. Not `Debug`: the key is
/// secret; it is wiped from memory when dropped.
pub struct FileContents {
    pub certificate: Vec<u8>,
    pub private_key: zeroize::Zeroizing<Vec<u8>>,
}

impl FileContents {
    /// Reads both files.
    pub fn read(paths: &CertificatePaths) -> Result<Self, CertificateError> {
        Ok(Self {
            certificate: read(&paths.certificate).map_err(|source| {
                CertificateError::ReadCertificate {
                    path: paths.certificate.clone(),
                    source,
                }
            })?,
            private_key: read(&paths.private_key)
                .map_err(|source| CertificateError::ReadKey {
                    path: paths.private_key.clone(),
                    source,
                })?
                .into(),
        })
    }

    /// SHA-256 over both files, each prefixed with its length.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for part in [&self.certificate[..], &self.private_key[..]] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

impl LoadedCertificate {
    /// Reads and checks the pair named by `paths`.
    pub fn load(paths: &CertificatePaths) -> Result<Self, CertificateError> {
        Self::parse(paths, &FileContents::read(paths)?)
    }

    /// Checks the pair from bytes already read from `paths`.
    pub fn parse(
        paths: &CertificatePaths,
        contents: &FileContents,
    ) -> Result<Self, CertificateError> {
        let chain = rustls_pemfile::certs(&mut contents.certificate.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertificateError::BadCertificate {
                path: paths.certificate.clone(),
                reason: e.to_string(),
            })?;
        let Some(leaf) = chain.first() else {
            return Err(CertificateError::NoCertificate {
                path: paths.certificate.clone(),
            });
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
            CertificateError::BadCertificate {
                path: paths.certificate.clone(),
                reason: e.to_string(),
            }
        })?;
        let not_after = parsed.validity().not_after.timestamp();
        let serial = parsed.raw_serial_as_string();
        let key = rustls_pemfile::private_key(&mut contents.private_key.as_slice())
            .map_err(|e| CertificateError::BadKey {
                path: paths.private_key.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| CertificateError::NoKey {
                path: paths.private_key.clone(),
            })?;
        let provider = rustls::crypto::ring::default_provider();
        let signing_key =
            provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| CertificateError::BadKey {
                    path: paths.private_key.clone(),
                    reason: e.to_string(),
                })?;
        let certified = CertifiedKey::new(chain, signing_key);
        // Every key ring loads (RSA, ECDSA, Ed25519) exposes its public half, so the match
        // is always checked: a key that cannot say is refused rather than served blind.
        certified
            .keys_match()
            .map_err(|_| CertificateError::Mismatch {
                certificate: paths.certificate.clone(),
                key: paths.private_key.clone(),
            })?;
        Ok(Self {
            certified: Arc::new(certified),
            not_after,
            serial,
            fingerprint: contents.fingerprint(),
        })
    }
}
