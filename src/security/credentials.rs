//! Device credentials, as the engine hands them to clients: where they come from (a fleet file's
//! `[security]`, the command line) is the fleet's business; what they are is here.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::security::x509::DeviceCertificates;

/// A pre-shared key and the identity it goes with (DTLS PSK, RFC 4279).
#[derive(Clone, PartialEq, Eq)]
pub struct Psk {
    pub identity: Vec<u8>,
    pub key: Vec<u8>,
}

/// Keys never appear in logs or reports: Debug shows the identity and the key's length only.
impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Psk")
            .field("identity", &String::from_utf8_lossy(&self.identity))
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .finish()
    }
}

/// The cipher suite of a PSK handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PskCipher {
    /// `TLS_PSK_WITH_AES_128_CCM_8` (0xC0A8), the suite `LwM2M` requires.
    #[default]
    Aes128Ccm8,
    /// `TLS_PSK_WITH_AES_128_GCM_SHA256` (0x00A8), through OpenSSL only.
    #[cfg(feature = "openssl")]
    Aes128Gcm,
}

/// HMAC-SHA256(master, endpoint), the first `length` bytes.
pub fn derive_key(master: &[u8], endpoint: &str, length: usize) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes keys of any length");
    mac.update(endpoint.as_bytes());
    let mut key = mac.finalize().into_bytes().to_vec();
    key.truncate(length);
    key
}

/// What a client authenticates with.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A pre-shared key, CCM-8 through dimpl.
    Psk(Psk),
    /// A pre-shared key through OpenSSL, with this suite (CCM-8 too, to compare with dimpl).
    #[cfg(feature = "openssl")]
    OpensslPsk(Psk, PskCipher),
    /// Certificate mode: the fleet's certificates, shared; the client's own is made (or looked
    /// up) by endpoint name when a handshake starts.
    Certificate(Arc<DeviceCertificates>),
}

impl Credential {
    /// A PSK client's credential for `cipher`: dimpl does CCM-8, OpenSSL GCM.
    pub fn psk(psk: Psk, cipher: PskCipher) -> Credential {
        match cipher {
            PskCipher::Aes128Ccm8 => Credential::Psk(psk),
            #[cfg(feature = "openssl")]
            PskCipher::Aes128Gcm => Credential::OpensslPsk(psk, cipher),
        }
    }

    /// What it holds on the heap for one client (certificates are the fleet's, shared).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Credential::Psk(psk) => psk.identity.capacity() + psk.key.capacity(),
            #[cfg(feature = "openssl")]
            Credential::OpensslPsk(psk, _) => psk.identity.capacity() + psk.key.capacity(),
            Credential::Certificate(_) => 0,
        }
    }
}

/// Gives each client its credentials: client `index` of the fleet, named `endpoint`.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    fn credential(&self, index: u64, endpoint: &str) -> Credential;
}

/// Every client uses its endpoint name as identity and one shared key.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey {
    pub key: Vec<u8>,
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedKey(<{} bytes>)", self.key.len())
    }
}

impl SharedKey {
    pub fn psk(&self, endpoint: &str) -> Psk {
        Psk {
            identity: endpoint.as_bytes().to_vec(),
            key: self.key.clone(),
        }
    }
}

impl CredentialSource for SharedKey {
    fn credential(&self, _index: u64, endpoint: &str) -> Credential {
        Credential::Psk(self.psk(endpoint))
    }
}

/// Another PSK source's keys through OpenSSL with `cipher` (tests and figures; a fleet says
/// `[security] cipher`).
#[cfg(feature = "openssl")]
#[derive(Debug)]
pub struct ThroughOpenssl<S> {
    pub source: S,
    pub cipher: PskCipher,
}

#[cfg(feature = "openssl")]
impl<S: CredentialSource> CredentialSource for ThroughOpenssl<S> {
    fn credential(&self, index: u64, endpoint: &str) -> Credential {
        match self.source.credential(index, endpoint) {
            Credential::Psk(psk) => Credential::OpensslPsk(psk, self.cipher),
            other => other,
        }
    }
}

impl CredentialSource for Arc<DeviceCertificates> {
    fn credential(&self, _index: u64, _endpoint: &str) -> Credential {
        Credential::Certificate(Arc::clone(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_key() {
        let source = SharedKey {
            key: b"s3cr3t-key".to_vec(),
        };
        let psk = source.psk("dev-0003");
        assert_eq!(psk.identity, b"dev-0003");
        for shown in [format!("{psk:?}"), format!("{source:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("10 bytes"), "{shown}");
        }
    }
}
