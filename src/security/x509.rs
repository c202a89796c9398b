//! X.509 for DTLS certificate mode (`LwM2M` Security Mode 2, "Certificate"): device keys derived
//! from a seed, certificates issued under a CA when a handshake needs them, and peer
//! certificates verified (chain to a CA, validity, name; or a pin). No I/O: PEM text comes in
//! (the fleet reads the files), DER goes out.
//!
//! Signing with a P-256 CA key is RFC 6979 (deterministic) ECDSA, so a device's certificate is
//! the same bytes on every run and in every `credentials` export.

mod issue;
mod verify;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use dimpl::DtlsCertificate;

pub use issue::{Authority, DeviceKey, Role, Validity, self_signed_ca};
pub use verify::{CertProblem, PeerVerifier, Usage};

/// Bad PEM, a key of the wrong kind, a certificate rcgen cannot issue. The message never
/// quotes key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct X509Error(pub String);

impl X509Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        X509Error(message.into())
    }
}

/// Where each device's certificate and key come from.
pub enum DeviceSource {
    /// Issued under this CA when a handshake needs one, for a key derived from `master` and the
    /// endpoint name: nothing is stored per device.
    Issued {
        authority: Box<Authority>,
        master: Vec<u8>,
    },
    /// Given per endpoint (from PEM files, read at load).
    Given(HashMap<String, DtlsCertificate>),
}

/// The clients' side of certificate mode: their certificates and how they check the server's.
/// One per fleet, shared by every client (`Arc`); a client holds a pointer to it.
pub struct DeviceCertificates {
    source: DeviceSource,
    server: Arc<PeerVerifier>,
}

impl fmt::Debug for DeviceCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            DeviceSource::Issued { .. } => "issued under the CA".to_string(),
            DeviceSource::Given(map) => format!("given <{} devices>", map.len()),
        };
        f.debug_struct("DeviceCertificates")
            .field("source", &format_args!("{source}"))
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl DeviceCertificates {
    pub fn new(source: DeviceSource, server: PeerVerifier) -> Self {
        DeviceCertificates {
            source,
            server: Arc::new(server),
        }
    }

    /// The certificate and private key of `endpoint`, issued now when they are not given.
    pub fn certificate(&self, endpoint: &str) -> Result<DtlsCertificate, X509Error> {
        match &self.source {
            DeviceSource::Issued { authority, master } => {
                let key = DeviceKey::derive(master, endpoint);
                authority.issue(endpoint, &key, &Role::Client, None)
            }
            DeviceSource::Given(map) => map
                .get(endpoint)
                .cloned()
                .ok_or_else(|| X509Error::new(format!("no certificate for {endpoint}"))),
        }
    }

    /// The CA devices are issued under, when they are.
    pub fn authority(&self) -> Option<&Authority> {
        match &self.source {
            DeviceSource::Issued { authority, .. } => Some(authority),
            DeviceSource::Given(_) => None,
        }
    }

    pub fn source(&self) -> &DeviceSource {
        &self.source
    }

    /// The embedded server's own certificate, issued by the devices' CA for `names` (DNS names
    /// or IP addresses), with a key derived like a device's.
    pub fn issue_server(&self, names: &[String]) -> Result<DtlsCertificate, X509Error> {
        let DeviceSource::Issued { authority, master } = &self.source else {
            return Err(X509Error::new(
                "the embedded server needs the devices' CA key to issue its certificate",
            ));
        };
        let key = DeviceKey::derive(master, SERVER_NAME);
        authority.issue(SERVER_NAME, &key, &Role::Server(names.to_vec()), None)
    }

    /// How a server checks device certificates: chained to the devices' CA.
    pub fn client_verifier(&self) -> Result<PeerVerifier, X509Error> {
        let authority = self
            .authority()
            .ok_or_else(|| X509Error::new("checking devices needs their CA"))?;
        PeerVerifier::chain_der(&[authority.der().to_vec()], None, Usage::Client, "the CA")
    }

    /// How the server's certificate is checked.
    pub fn server_verifier(&self) -> &Arc<PeerVerifier> {
        &self.server
    }
}

/// The common name of the embedded server's certificate.
const SERVER_NAME: &str = "lwm2m-swarm embedded server";

/// A certificate and key from PEM text: the first certificate, and a PKCS#8 or SEC1 P-256 key
/// (what dimpl signs with). `what` names the source in errors.
pub fn certificate_from_pem(
    cert_pem: &str,
    key_pem: &str,
    what: &str,
) -> Result<DtlsCertificate, X509Error> {
    let certificate = issue::certificates_from_pem(cert_pem, what)?
        .into_iter()
        .next()
        .expect("at least one certificate");
    let key = issue::p256_key_from_pem(key_pem, what)?;
    Ok(DtlsCertificate {
        certificate,
        private_key: key.pkcs8_der(),
    })
}

/// PEM text of a DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    issue::pem("CERTIFICATE", der)
}

/// PEM text of a PKCS#8 private key: for the `credentials` export only, on request.
pub fn private_key_pem(pkcs8_der: &[u8]) -> String {
    issue::pem("PRIVATE KEY", pkcs8_der)
}

/// The subject's common name of a DER certificate (`None` when it has none or does not parse).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// SHA-256 of a DER certificate, lower-case hex: what `server_pin` takes and exports show.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}
