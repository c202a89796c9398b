//! Checking a peer's certificate (rustls-webpki): dimpl hands over the leaf only, and leaves
//! trusting it to us.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use super::X509Error;
use super::issue::certificates_from_pem;

/// Why a peer's certificate was refused, over DTLS (webpki) and TLS (rustls) alike: one set of
/// names in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertProblem {
    /// It does not chain to the CA (or was signed by another key).
    UnknownIssuer,
    Expired,
    NotYetValid,
    /// It does not name the server expected.
    WrongName,
    /// Its SHA-256 is not the pinned one.
    NotPinned,
    /// Anything else: bad encoding, a CA as leaf, the wrong key usage, an unsupported algorithm.
    Invalid,
}

impl CertProblem {
    /// A stable name for reports; distinct from the peer's alerts (`certificate_expired` is the
    /// peer refusing ours).
    pub fn name(self) -> &'static str {
        match self {
            CertProblem::UnknownIssuer => "peer_certificate_unknown_issuer",
            CertProblem::Expired => "peer_certificate_expired",
            CertProblem::NotYetValid => "peer_certificate_not_yet_valid",
            CertProblem::WrongName => "peer_certificate_wrong_name",
            CertProblem::NotPinned => "peer_certificate_not_pinned",
            CertProblem::Invalid => "peer_certificate_invalid",
        }
    }

    /// The alert that tells the peer (RFC 5246 §7.2.2).
    pub fn alert(self) -> u8 {
        match self {
            CertProblem::UnknownIssuer => 48,                      // unknown_ca
            CertProblem::Expired | CertProblem::NotYetValid => 45, // certificate_expired
            CertProblem::WrongName | CertProblem::NotPinned => 46, // certificate_unknown
            CertProblem::Invalid => 42,                            // bad_certificate
        }
    }

    fn from_webpki(error: &webpki::Error) -> CertProblem {
        match error {
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
                CertProblem::UnknownIssuer
            }
            webpki::Error::CertExpired { .. } => CertProblem::Expired,
            webpki::Error::CertNotValidYet { .. } => CertProblem::NotYetValid,
            webpki::Error::CertNotValidForName(_) => CertProblem::WrongName,
            _ => CertProblem::Invalid,
        }
    }

    /// The same problems as rustls (TLS over TCP) reports them.
    pub fn from_rustls(error: &rustls::CertificateError) -> CertProblem {
        use rustls::CertificateError as E;
        match error {
            E::UnknownIssuer | E::BadSignature => CertProblem::UnknownIssuer,
            E::Expired | E::ExpiredContext { .. } => CertProblem::Expired,
            E::NotValidYet | E::NotValidYetContext { .. } => CertProblem::NotYetValid,
            E::NotValidForName | E::NotValidForNameContext { .. } => CertProblem::WrongName,
            _ => CertProblem::Invalid,
        }
    }
}

/// How a peer's certificate is trusted.
pub enum PeerVerifier {
    /// It must chain to one of these CAs (directly: dimpl passes no intermediates), be valid
    /// now, be meant for `usage`, and (for a server) name `name` when one is given.
    Chain {
        anchors: Vec<TrustAnchor<'static>>,
        name: Option<ServerName<'static>>,
        usage: Usage,
    },
    /// Its SHA-256 must be one of these.
    Pinned(Vec<[u8; 32]>),
    /// Anything goes: the fleet asked for it by name (`insecure_skip_server_verification`).
    AcceptAny,
}

/// Which end the verified certificate belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerVerifier::Chain { anchors, name, .. } => write!(
                f,
                "Chain({} CA(s), name {:?})",
                anchors.len(),
                name.as_ref().map(ServerName::to_str)
            ),
            PeerVerifier::Pinned(pins) => write!(f, "Pinned({})", pins.len()),
            PeerVerifier::AcceptAny => f.write_str("AcceptAny"),
        }
    }
}

impl PeerVerifier {
    /// Chains to the CA certificates in `ca_pem` (all of them are trusted). `what` names the
    /// file in errors.
    pub fn chain(
        ca_pem: &str,
        name: Option<&str>,
        usage: Usage,
        what: &str,
    ) -> Result<PeerVerifier, X509Error> {
        PeerVerifier::chain_der(&certificates_from_pem(ca_pem, what)?, name, usage, what)
    }

    /// Chains to these DER CA certificates.
    pub fn chain_der(
        cas: &[Vec<u8>],
        name: Option<&str>,
        usage: Usage,
        what: &str,
    ) -> Result<PeerVerifier, X509Error> {
        let anchors = cas
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                    .map(|anchor| anchor.to_owned())
                    .map_err(|e| X509Error::new(format!("{what}: not a CA certificate: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let name = name
            .map(|n| {
                ServerName::try_from(n.to_string())
                    .map_err(|_| X509Error::new(format!("{n:?} is not a DNS name or IP address")))
            })
            .transpose()?;
        Ok(PeerVerifier::Chain {
            anchors,
            name,
            usage,
        })
    }

    /// A pin: `sha256:HEX` or bare hex of the certificate's SHA-256 (64 digits).
    pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
        let digits = text.strip_prefix("sha256:").unwrap_or(text);
        let bytes = hex::decode(digits).map_err(|_| "not hex".to_string())?;
        bytes
            .try_into()
            .map_err(|_| "a SHA-256 pin has 64 hex digits".to_string())
    }

    /// Checks `der` at Unix time `unix_secs`.
    pub fn verify(&self, der: &[u8], unix_secs: i64) -> Result<(), CertProblem> {
        match self {
            PeerVerifier::AcceptAny => Ok(()),
            PeerVerifier::Pinned(pins) => {
                let digest: [u8; 32] = {
                    use sha2::Digest;
                    sha2::Sha256::digest(der).into()
                };
                if pins.contains(&digest) {
                    Ok(())
                } else {
                    Err(CertProblem::NotPinned)
                }
            }
            PeerVerifier::Chain {
                anchors,
                name,
                usage,
            } => {
                let der = CertificateDer::from(der);
                let cert = EndEntityCert::try_from(&der).map_err(|_| CertProblem::Invalid)?;
                let now = UnixTime::since_unix_epoch(Duration::from_secs(
                    u64::try_from(unix_secs).unwrap_or(0),
                ));
                let usage = match usage {
                    Usage::Server => KeyUsage::server_auth(),
                    Usage::Client => KeyUsage::client_auth(),
                };
                cert.verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    anchors,
                    &[],
                    now,
                    usage,
                    None,
                    None,
                )
                .map_err(|e| CertProblem::from_webpki(&e))?;
                if let Some(name) = name {
                    cert.verify_is_valid_for_subject_name(name)
                        .map_err(|e| CertProblem::from_webpki(&e))?;
                }
                Ok(())
            }
        }
    }
}
