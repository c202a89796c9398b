//! Issuing: P-256 keys derived from a seed, certificates signed by a CA (rcgen).

use std::fmt;
use std::net::IpAddr;

use dimpl::DtlsCertificate;
use hmac::{Hmac, KeyInit, Mac};
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::X509Error;

/// A device's (or server's) P-256 key. Debug never shows it.
#[derive(Clone)]
pub struct DeviceKey(p256::SecretKey);

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(<P-256>)")
    }
}

impl DeviceKey {
    /// The key of `name`: HMAC-SHA256(master, "lwm2m-swarm p256 " + name [+ counter]) as the
    /// scalar, the first that is a valid one (all but ~2^-32 of them are). Domain-separated
    /// from PSK derivation, so one master may serve both.
    pub fn derive(master: &[u8], name: &str) -> DeviceKey {
        for counter in 0u8..=255 {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes keys of any length");
            mac.update(b"lwm2m-swarm p256 ");
            mac.update(name.as_bytes());
            if counter > 0 {
                mac.update(&[counter]);
            }
            if let Ok(key) = p256::SecretKey::from_slice(&mac.finalize().into_bytes()) {
                return DeviceKey(key);
            }
        }
        unreachable!("256 HMAC outputs in a row outside the P-256 scalar range")
    }

    /// PKCS#8 DER, the form dimpl loads.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.0
            .to_pkcs8_der()
            .expect("a P-256 key encodes as PKCS#8")
            .as_bytes()
            .to_vec()
    }

    fn public(&self) -> P256Public {
        P256Public(self.0.public_key().to_sec1_point(false).as_bytes().to_vec())
    }
}

/// An uncompressed P-256 point: the subject key of a certificate being issued.
struct P256Public(Vec<u8>);

impl PublicKeyData for P256Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// A CA's signing key: P-256 signs deterministically (RFC 6979); any other key rcgen loads
/// (P-384, Ed25519, RSA) signs through ring.
enum CaKey {
    P256 {
        key: p256::ecdsa::SigningKey,
        public: P256Public,
    },
    Other(KeyPair),
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::P256 { public, .. } => public.der_bytes(),
            CaKey::Other(pair) => pair.der_bytes(),
        }
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            CaKey::P256 { public, .. } => public.algorithm(),
            CaKey::Other(pair) => pair.algorithm(),
        }
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::P256 { key, .. } => {
                let signature: p256::ecdsa::Signature = key.sign(msg);
                Ok(signature.to_der().as_bytes().to_vec())
            }
            CaKey::Other(pair) => pair.sign(msg),
        }
    }
}

/// What a certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A device: `clientAuth`, the endpoint name as common name.
    Client,
    /// A server: `serverAuth`, and these DNS names or IP addresses as subject alternative names.
    Server(Vec<String>),
}

/// A certificate's validity period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A CA that issues certificates: its certificate and its key.
pub struct Authority {
    der: Vec<u8>,
    issuer: Issuer<'static, CaKey>,
    /// Issued certificates are valid as long as the CA is, so they are the same every run.
    validity: Validity,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("subject", &super::common_name(&self.der))
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// From PEM text: the CA's certificate (the first one) and its private key. `what` names
    /// the files in errors.
    pub fn from_pem(cert_pem: &str, key_pem: &str, what: &str) -> Result<Authority, X509Error> {
        let der = certificates_from_pem(cert_pem, what)?.swap_remove(0);
        let key = ca_key_from_pem(key_pem, what)?;
        if key.der_bytes() != subject_public_key(&der, what)? {
            return Err(X509Error::new(format!(
                "{what}: the CA key is not the key of the CA certificate"
            )));
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| X509Error::new(format!("{what}: the CA certificate: {e}")))?;
        let validity = Validity {
            not_before: parsed.validity().not_before.to_datetime(),
            not_after: parsed.validity().not_after.to_datetime(),
        };
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)
            .map_err(|e| X509Error::new(format!("{what}: the CA certificate: {e}")))?;
        Ok(Authority {
            der,
            issuer,
            validity,
        })
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// A certificate for `name` (its common name) and `key`, valid as long as the CA unless
    /// `validity` says otherwise. The serial number is SHA-256 of the name: same name, same
    /// certificate.
    pub fn issue(
        &self,
        name: &str,
        key: &DeviceKey,
        role: &Role,
        validity: Option<Validity>,
    ) -> Result<DtlsCertificate, X509Error> {
        let mut params = CertificateParams::default();
        let validity = validity.unwrap_or(self.validity);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let mut serial = Sha256::digest(name.as_bytes())[..16].to_vec();
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        match role {
            Role::Client => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
            Role::Server(names) => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.subject_alt_names = names
                    .iter()
                    .map(|n| subject_alt_name(n))
                    .collect::<Result<_, _>>()?;
            }
        }
        let cert = params
            .signed_by(&key.public(), &self.issuer)
            .map_err(|e| X509Error::new(format!("cannot issue a certificate for {name}: {e}")))?;
        Ok(DtlsCertificate {
            certificate: cert.der().to_vec(),
            private_key: key.pkcs8_der(),
        })
    }
}

fn subject_alt_name(name: &str) -> Result<SanType, X509Error> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|_| X509Error::new(format!("{name:?} is not a DNS name or IP address")))
}

/// A self-signed CA for `name` with `key`: `(certificate PEM, private key PEM)`. For tests,
/// demos and the embedded server's own CA.
pub fn self_signed_ca(
    name: &str,
    key: &DeviceKey,
    validity: Validity,
) -> Result<(String, String), X509Error> {
    let mut params = CertificateParams::default();
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let signing = CaKey::P256 {
        key: p256::ecdsa::SigningKey::from(&key.0),
        public: key.public(),
    };
    let cert = params
        .self_signed(&signing)
        .map_err(|e| X509Error::new(format!("cannot make the CA {name}: {e}")))?;
    Ok((
        pem("CERTIFICATE", cert.der()),
        pem("PRIVATE KEY", &key.pkcs8_der()),
    ))
}

/// Every certificate in PEM text, DER; at least one.
pub(super) fn certificates_from_pem(text: &str, what: &str) -> Result<Vec<Vec<u8>>, X509Error> {
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| X509Error::new(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(X509Error::new(format!(
            "{what}: no \"BEGIN CERTIFICATE\" block"
        )));
    }
    Ok(certs)
}

fn private_key_der(text: &str, what: &str) -> Result<PrivateKeyDer<'static>, X509Error> {
    // Never echo the parser's message: it may quote the text, which is a key.
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|_| {
        X509Error::new(format!(
            "{what}: no PEM private key (\"BEGIN PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\")"
        ))
    })
}

/// A P-256 private key, PKCS#8 or SEC1 PEM: the only kind dimpl's ECDSA suites sign with here.
pub(super) fn p256_key_from_pem(text: &str, what: &str) -> Result<DeviceKey, X509Error> {
    let key = match private_key_der(text, what)? {
        PrivateKeyDer::Pkcs8(der) => p256::SecretKey::from_pkcs8_der(der.secret_pkcs8_der()).ok(),
        PrivateKeyDer::Sec1(der) => p256::SecretKey::from_sec1_der(der.secret_sec1_der()).ok(),
        _ => None,
    };
    key.map(DeviceKey)
        .ok_or_else(|| X509Error::new(format!("{what}: not an ECDSA P-256 private key")))
}

fn ca_key_from_pem(text: &str, what: &str) -> Result<CaKey, X509Error> {
    if let Ok(key) = p256_key_from_pem(text, what) {
        return Ok(CaKey::P256 {
            key: p256::ecdsa::SigningKey::from(&key.0),
            public: key.public(),
        });
    }
    let der = private_key_der(text, what)?;
    KeyPair::try_from(&der)
        .map(CaKey::Other)
        .map_err(|_| X509Error::new(format!("{what}: a private key rcgen cannot sign with")))
}

/// The raw public key of a DER certificate.
fn subject_public_key(der: &[u8], what: &str) -> Result<Vec<u8>, X509Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| X509Error::new(format!("{what}: the certificate: {e}")))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

pub(super) fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}
