//! TLS for the tests: a throwaway certificate authority (rcgen) issuing short-lived server
//! certificates into PEM files, and a small HTTPS client (rustls) that reports which
//! certificate the server presented.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::ServerName;

use super::http::{parse_responses, Resp};

/// A test CA; its certificate is in `ca.pem` in the directory given.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem_path: PathBuf,
}

/// Valid from yesterday for 90 days: inside the 366 days scanners accept.
fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(90);
}

impl TestCa {
    pub fn new(dir: &Path) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "authgate test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // RFC 5280: a positive serial (rcgen's random one may read as negative).
        params.serial_number = Some(SerialNumber::from_slice(&[0x01]));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem_path = dir.join("ca.pem");
        std::fs::write(&pem_path, cert.pem()).unwrap();
        Self {
            cert,
            key,
            pem_path,
        }
    }

    /// A server certificate for `names` with serial `serial`: `(chain PEM, key PEM)`.
    pub fn issue(&self, names: &[&str], serial: u8) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.serial_number = Some(SerialNumber::from_slice(&[0x42, serial]));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Issues a certificate and writes it to `<stem>.crt` and `<stem>.key` in `dir`.
    pub fn issue_files(&self, dir: &Path, stem: &str, names: &[&str], serial: u8) -> CertFiles {
        let files = CertFiles {
            certificate: dir.join(format!("{stem}.crt")),
            private_key: dir.join(format!("{stem}.key")),
        };
        let (cert, key) = self.issue(names, serial);
        std::fs::write(&files.certificate, cert).unwrap();
        std::fs::write(&files.private_key, key).unwrap();
        files
    }

    /// A rustls client trusting only this CA. It never resumes a session: a resumed
    /// session keeps the certificate of its first handshake, and the tests look at which
    /// certificate the server presents now.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
    /// A rustls client trusting only this CA that speaks only `version` and keeps its
    /// own sessions (tickets and TLS 1.2 session ids), so it resumes when it reconnects:
    /// one such config is one returning client.
    pub fn resuming_client_config(
        &self,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::store(Arc::new(
            rustls::client::ClientSessionMemoryCache::new(4),
        ));
        Arc::new(config)
    }
}

/// A certificate's files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

impl CertFiles {
    /// The `certificate = ... private_key = ...` lines of a config table.
    pub fn toml(&self) -> String {
        format!(
            "certificate = \"{}\"\nprivate_key = \"{}\"\n",
            self.certificate.display(),
            self.private_key.display()
        )
    }

    /// Replaces both files with `(cert, key)` PEM, each by an atomic rename.
    pub fn replace_with(&self, cert: &str, key: &str) {
        for (path, text) in [(&self.private_key, key), (&self.certificate, cert)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }
}

/// What one HTTPS exchange showed the client.
pub struct HttpsExchange {
    /// The serial number of the certificate the server presented, as raw bytes.
    pub serial: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
    pub response: Resp,
}

/// Opens a TLS connection to `addr` with `server_name` as SNI, sends `request` (HTTP/1.1,
/// it should say `Connection: close`) and reads the response; any TLS or I/O failure is an
/// `Err` with its reason.
pub fn https_exchange(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
    request: &str,
) -> Result<HttpsExchange, String> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server closing without close_notify after a complete response is fine here.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate presented")?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
    let response = parse_responses(&raw)
        .into_iter()
        .next()
        .ok_or_else(|| format!("no HTTP response in {} bytes", raw.len()))?;
    Ok(HttpsExchange {
        serial: parsed.raw_serial().to_vec(),
        alpn: conn.alpn_protocol().map(|p| p.to_vec()),
        response,
    })
}

/// A `GET path` with a Bearer token, closing the connection after the response.
pub fn get_request(host: &str, path: &str, token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
}

/// The serial `TestCa::issue` gave serial number `n`, as the client reads it.
pub fn serial(n: u8) -> Vec<u8> {
    vec![0x42, n]
}

/// One request a [`TlsUpstream`] received.
#[derive(Debug, Clone)]
pub struct TlsRecorded {
    /// The SNI the client sent.
    pub server_name: Option<String>,
    /// The request line and headers.
    pub head: String,
}

/// An HTTPS upstream: answers every request with 200 `{"tls": true}` and records it.
/// Connections that fail their handshake record nothing.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    records: Arc<std::sync::Mutex<Vec<TlsRecorded>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl TlsUpstream {
    pub fn start(cert_pem: &str, key_pem: &str) -> Self {
        let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (records, stop) = (records.clone(), stop.clone());
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let (config, records) = (config.clone(), records.clone());
                    std::thread::spawn(move || serve_tls(config, tcp, &records));
                }
            });
        }
        Self {
            addr,
            records,
            stop,
        }
    }

    pub fn requests(&self) -> Vec<TlsRecorded> {
        self.records.lock().unwrap().clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_tls(
    config: Arc<rustls::ServerConfig>,
    mut tcp: TcpStream,
    records: &std::sync::Mutex<Vec<TlsRecorded>>,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let body = b"{\"tls\":true}";
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tls.write_all(response.as_bytes());
    let _ = tls.write_all(body);
    let _ = tls.flush();
    records.lock().unwrap().push(TlsRecorded {
        server_name: conn.server_name().map(str::to_string),
        head: String::from_utf8_lossy(&head).into_owned(),
    });
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
}
