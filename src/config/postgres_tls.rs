//! TLS to PostgreSQL with libpq's `sslmode` meanings. tokio-postgres parses only
//! `disable`, `prefer` and `require` and knows no `sslrootcert`, so authgate reads both off
//! the URL, hands tokio-postgres the rest with `sslmode=require` (TLS) or `disable`, and
//! sets up the certificate check itself:
//!
//! | `sslmode` | link | certificate |
//! |---|---|---|
//! | absent, `disable`, `allow`, `prefer` | plain, as before | — |
//! | `require` | TLS | not checked (a warning at start); with `sslrootcert`, as `verify-ca` (libpq does the same) |
//! | `verify-ca` | TLS | signed by a CA in `sslrootcert` |
//! | `verify-full` | TLS | `verify-ca`, and issued for the host connected to |

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// How the link to PostgreSQL is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresTlsMode {
    Off,
    /// Encrypted, certificate not checked.
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS part of a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTls {
    pub mode: PostgresTlsMode,
    /// The CA certificates (PEM) a server's certificate must chain to.
    pub root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` off `url`: the URL tokio-postgres is given, and the
/// TLS settings. The error says what is wrong, without the URL (which holds a password).
pub fn split_tls_options(url: &str) -> Result<(String, PostgresTls), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = PostgresTlsMode::Off;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("{key} is not UTF-8"))
        };
        match key {
            "sslmode" => {
                mode = match decoded()?.as_str() {
                    "disable" | "allow" | "prefer" => PostgresTlsMode::Off,
                    "require" => PostgresTlsMode::Require,
                    "verify-ca" => PostgresTlsMode::VerifyCa,
                    "verify-full" => PostgresTlsMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other:?} is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(decoded()?)),
            _ => kept.push(pair),
        }
    }
    match (mode, &root_cert) {
        (PostgresTlsMode::VerifyCa | PostgresTlsMode::VerifyFull, None) => {
            return Err(
                "sslmode=verify-ca and verify-full need sslrootcert=<PEM file of the CA>".into(),
            )
        }
        (PostgresTlsMode::Off, Some(_)) => {
            return Err("sslrootcert needs sslmode=require, verify-ca or verify-full".into())
        }
        // libpq: with a root certificate, require checks the chain like verify-ca.
        (PostgresTlsMode::Require, Some(_)) => mode = PostgresTlsMode::VerifyCa,
        _ => {}
    }
    kept.push(match mode {
        PostgresTlsMode::Off => "sslmode=disable",
        _ => "sslmode=require",
    });
    Ok((
        format!("{base}?{}", kept.join("&")),
        PostgresTls { mode, root_cert },
    ))
}

/// The certificates of the PEM file `path`, as a root store.
pub fn read_root_certs(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("sslrootcert {} is not PEM: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_become_tokio_postgres_ones_plus_our_check() {
        let (url, tls) = split_tls_options("postgres://u:p@db:5432/x").unwrap();
        assert_eq!(url, "postgres://u:p@db:5432/x?sslmode=disable");
        assert_eq!(tls.mode, PostgresTlsMode::Off);

        let (url, tls) = split_tls_options(
            "postgres://u:p@db/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://u:p@db/x?application_name=a&sslmode=require"
        );
        assert_eq!(tls.mode, PostgresTlsMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));

        let (_, tls) = split_tls_options("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(tls.mode, PostgresTlsMode::Require);
        let (_, tls) =
            split_tls_options("postgres://db/x?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(tls.mode, PostgresTlsMode::VerifyCa);

        assert!(split_tls_options("postgres://db/x?sslmode=verify-ca").is_err());
        assert!(split_tls_options("postgres://db/x?sslrootcert=/ca.pem").is_err());
        assert!(split_tls_options("postgres://db/x?sslmode=strict").is_err());
    }
}
