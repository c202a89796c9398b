//! Device credentials, as the engine hands them to clients: where they come from (a fleet file's
//! `[security]`, the command line) is the fleet's business; what they are is here.

use std::fmt;

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

/// Gives each client its credentials: client `index` of the fleet, named `endpoint`.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    fn psk(&self, index: u64, endpoint: &str) -> Psk;
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

impl CredentialSource for SharedKey {
    fn psk(&self, _index: u64, endpoint: &str) -> Psk {
        Psk {
            identity: endpoint.as_bytes().to_vec(),
            key: self.key.clone(),
        }
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
        let psk = source.psk(3, "dev-0003");
        assert_eq!(psk.identity, b"dev-0003");
        for shown in [format!("{psk:?}"), format!("{source:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("10 bytes"), "{shown}");
        }
    }
}
