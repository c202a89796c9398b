//! Device credentials, as the engine hands them to clients: where they come from (a fleet file's
//! `[security]`, the command line) is the fleet's business; what they are is here.

use std::fmt;
use std::sync::Arc;

use crate::x509::DeviceCertificates;

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

/// What a client authenticates with.
#[derive(Clone, Debug)]
pub enum Credential {
    Psk(Psk),
    /// Certificate mode: the fleet's certificates, shared; the client's own is made (or looked
    /// up) by endpoint name when a handshake starts.
    Certificate(Arc<DeviceCertificates>),
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
