//! The HTTPS listener's settings for pingora: TLS 1.2 and 1.3 only (pingora's rustls
//! listener offers no other), rustls's default cipher suites (all AEAD with forward
//! secrecy, within Mozilla's "intermediate" list), session resumption through rustls's
//! in-memory session cache, certificates from our resolver, and ALPN `h2` then
//! `http/1.1` (pingora serves HTTP/2 for any HTTP app when the client picks `h2`).

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::protocols::ALPN;

use super::resolver::CertificateResolver;

/// The listener's TLS settings, certificates coming from `resolver`.
pub fn tls_settings(resolver: Arc<CertificateResolver>) -> pingora::Result<TlsSettings> {
    // No paths: with a resolver set, pingora reads no certificate file (its file loader
    // would panic on a bad one; ours has checked them).
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(resolver);
    settings.set_alpn(ALPN::H2H1);
    Ok(settings)
}
