//! TLS for CoAP over TCP (`coaps+tcp://`, RFC 8323 §9): one rustls client connection per
//! simulated client, used sans-IO like the DTLS session (ciphertext and plaintext in and out,
//! no socket). X.509 server verification against a CA file, an explicitly insecure mode for test
//! servers, an optional client certificate, ALPN "coap" and SNI from the server's host.
//!
//! Certificate validity is checked against the system's wall clock (rustls' default time
//! provider): the one clock this module does not take from its caller.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, RootCertStore};

use crate::security::x509::CertProblem;

/// ALPN protocol name for CoAP over TLS (RFC 8323 §9.1).
pub const ALPN_COAP: &[u8] = b"coap";

/// Where a population's TLS credentials come from: PEM files, as the fleet names them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Trust anchors for the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (its signatures are still checked). Test servers only.
    pub insecure_skip_verify: bool,
    /// Client certificate chain and its private key, for mutual authentication.
    pub certificate_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, and the SNI sent (an IP address sends
    /// none); default: the server URI's host.
    pub server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{file}: cannot read PEM: {problem}")]
    Pem { file: String, problem: String },
    #[error("{file}: no {what} in it")]
    Empty { file: String, what: &'static str },
    #[error("{file}: certificate rejected as a trust anchor: {problem}")]
    Anchor { file: String, problem: String },
    #[error(
        "the server's certificate cannot be verified without a CA file: set ca_file (or, \
             for a test server, insecure_skip_verify = true)"
    )]
    NoTrustAnchor,
    #[error("a client certificate needs its key, and a key its certificate: give both")]
    HalfClientIdentity,
    #[error("client certificate and key: {0}")]
    ClientIdentity(String),
    #[error("{0:?} is not a DNS name or IP address for the server's certificate")]
    ServerName(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// What every TLS client of a run shares: the rustls configuration and the server's name.
#[derive(Clone)]
pub struct TlsClientConfig {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    insecure: bool,
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// Equal when built once and shared (rustls configurations do not compare).
impl PartialEq for TlsClientConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl TlsClientConfig {
    /// Reads the PEM files and builds the configuration; `host` is the server URI's host.
    pub fn build(settings: &TlsSettings, host: &str) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if settings.insecure_skip_verify {
            let verifier = AnyServerCertificate(provider.signature_verification_algorithms);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        } else {
            let ca = settings.ca_file.as_deref().ok_or(TlsError::NoTrustAnchor)?;
            builder.with_root_certificates(trust_anchors(ca)?)
        };
        let mut config = match (&settings.certificate_file, &settings.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(|e| TlsError::ClientIdentity(e.to_string()))?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::HalfClientIdentity),
        };
        config.alpn_protocols = vec![ALPN_COAP.to_vec()];
        let name = settings.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| TlsError::ServerName(name.to_string()))?;
        Ok(TlsClientConfig {
            config: Arc::new(config),
            server_name,
            insecure: settings.insecure_skip_verify,
        })
    }

    /// Whether server certificates go unverified (`insecure_skip_verify`).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }
}

fn pem_error(file: &Path, e: &rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        file: file.display().to_string(),
        problem: e.to_string(),
    }
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| pem_error(file, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(file, &e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            file: file.display().to_string(),
            what: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn trust_anchors(file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(file)? {
        roots.add(cert).map_err(|e| TlsError::Anchor {
            file: file.display().to_string(),
            problem: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn private_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            file: file.display().to_string(),
            what: "PRIVATE KEY",
        },
        e => pem_error(file, &e),
    })
}

/// `insecure_skip_verify`: any certificate chain, any name; handshake signatures still checked.
#[derive(Debug)]
struct AnyServerCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Why a TLS connection failed or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The peer sent this fatal alert (RFC 8446 §6 description).
    Alert(u8),
    /// We rejected the server's certificate (named as DTLS names it).
    Certificate(CertProblem),
    /// The server chose no or another application protocol than "coap".
    Alpn,
    /// Anything else rustls gave up on (a malformed or unexpected message).
    Protocol,
    /// The peer sent more than rustls holds before it can be processed (a handshake message
    /// still incomplete at 64 KiB): the rest cannot be read, so the connection fails.
    Overflow,
}

impl TlsFailure {
    /// A short stable name for reports.
    pub fn name(self) -> &'static str {
        match self {
            TlsFailure::Alert(code) => crate::security::alert::alert_name(code),
            TlsFailure::Certificate(problem) => problem.name(),
            TlsFailure::Alpn => "no_application_protocol",
            TlsFailure::Protocol => "tls_protocol",
            TlsFailure::Overflow => "tls_buffer_full",
        }
    }

    fn from_rustls(error: &rustls::Error) -> TlsFailure {
        match error {
            rustls::Error::AlertReceived(alert) => TlsFailure::Alert(u8::from(*alert)),
            rustls::Error::InvalidCertificate(problem) => {
                TlsFailure::Certificate(CertProblem::from_rustls(problem))
            }
            rustls::Error::NoApplicationProtocol => TlsFailure::Alpn,
            _ => TlsFailure::Protocol,
        }
    }
}

/// One client's TLS connection, sans-IO.
pub struct TlsSession {
    conn: ClientConnection,
    /// The peer sent `close_notify`.
    peer_closed: bool,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A new connection; its `ClientHello` is ready in [`TlsSession::poll_transmit`].
    pub fn connect(config: &TlsClientConfig) -> Result<Self, TlsFailure> {
        let conn = ClientConnection::new(Arc::clone(&config.config), config.server_name.clone())
            .map_err(|e| TlsFailure::from_rustls(&e))?;
        Ok(TlsSession {
            conn,
            peer_closed: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer sent `close_notify`: nothing more comes.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Ciphertext from the peer; the plaintext it carried is appended to `plaintext`. After an
    /// error, the alert rustls owes the peer (if any) is in [`TlsSession::poll_transmit`]. Bytes
    /// rustls refuses to take are a failure, never dropped unseen.
    pub fn receive(&mut self, bytes: &[u8], plaintext: &mut Vec<u8>) -> Result<(), TlsFailure> {
        let was_handshaking = self.conn.is_handshaking();
        let mut rest = bytes;
        while !rest.is_empty() {
            let read = self.conn.read_tls(&mut rest);
            self.conn
                .process_new_packets()
                .map_err(|e| TlsFailure::from_rustls(&e))?;
            self.read_plaintext(plaintext);
            match read {
                // After close_notify: TLS ignores what follows (RFC 8446 §6.1).
                Ok(0) => break,
                Ok(_) => {}
                // Reading from a slice fails only when rustls's buffers are full.
                Err(_) => return Err(TlsFailure::Overflow),
            }
        }
        if was_handshaking
            && !self.conn.is_handshaking()
            && self.conn.alpn_protocol().is_some_and(|p| p != ALPN_COAP)
        {
            return Err(TlsFailure::Alpn);
        }
        Ok(())
    }

    /// Plaintext for the peer: sent once the handshake is done (buffered until then).
    pub fn send(&mut self, plaintext: &[u8]) {
        // rustls buffers without limit unless one is set; a write cannot fail short.
        let _ = self.conn.writer().write_all(plaintext);
    }

    /// Ciphertext for the peer, if any is waiting.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if !self.conn.wants_write() {
            return None;
        }
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Says goodbye (`close_notify`, in [`TlsSession::poll_transmit`]).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    fn read_plaintext(&mut self, plaintext: &mut Vec<u8>) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut chunk) {
                Ok(0) => {
                    self.peer_closed = true;
                    return;
                }
                Ok(n) => plaintext.extend_from_slice(&chunk[..n]),
                // WouldBlock: no more for now; UnexpectedEof: the peer left without
                // close_notify, which the transport reports itself.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
