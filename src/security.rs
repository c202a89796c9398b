//! Everything a client proves itself with and checks its server by: credentials (pre-shared keys,
//! certificates), DTLS 1.2 sessions, TLS over TCP, and X.509 issuing and verification. All of it
//! sans-IO: bytes and a clock in, bytes and deadlines out.
//!
//! Inside, `x509` and `alert` depend on nothing here, `credentials` on `x509`, and `dtls` and
//! `tls` on those three.

pub mod alert;
pub mod credentials;
pub mod dtls;
pub mod tls;
pub mod x509;

#[cfg(feature = "openssl")]
pub use credentials::ThroughOpenssl;
pub use credentials::{Credential, CredentialSource, Psk, PskCipher, SharedKey, derive_key};
