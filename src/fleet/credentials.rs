//! A fleet's `[security]` made into keys or certificates: the `CredentialSource` the engine
//! hands to clients, and the `credentials` export for provisioning the server under test.

mod certificates;
mod key_file;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};

pub use certificates::CertificateCredentials;

use super::security::{IdentityPattern, KeySource, Master, PskSecurity, Secret, Security};
use super::span::invalid;
use super::{Fleet, FleetError, Naming};
use crate::security::{Credential, CredentialSource, Psk, PskCipher, derive_key};

/// A fleet's credentials, by security mode.
#[derive(Debug)]
pub enum Credentials {
    Psk(PskCredentials),
    Certificate(CertificateCredentials),
}

impl CredentialSource for Credentials {
    fn credential(&self, index: u64, endpoint: &str) -> Credential {
        match self {
            Credentials::Psk(psk) => Credential::psk(psk.psk(index, endpoint), psk.cipher),
            Credentials::Certificate(certs) => certs.credential(),
        }
    }
}

/// Each client's PSK, computed when asked: only a key file is held per device (as a map).
#[derive(Clone, PartialEq, Eq)]
pub struct PskCredentials {
    /// `None`: from the key file.
    identity: Option<IdentityPattern>,
    naming: Naming,
    keys: Keys,
    cipher: PskCipher,
}

#[derive(Clone, PartialEq, Eq)]
enum Keys {
    Fixed(Secret),
    Derived {
        master: Secret,
        length: usize,
    },
    /// Endpoint -> (identity, key).
    File(HashMap<String, (String, Secret)>),
}

/// Keys never appear in logs: Debug names the kind of source and the key length.
impl fmt::Debug for PskCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.keys {
            Keys::Fixed(k) => format!("fixed <{} bytes>", k.len()),
            Keys::Derived { length, .. } => format!("derived hmac-sha256 <{length} bytes>"),
            Keys::File(map) => format!("key file <{} devices>", map.len()),
        };
        f.debug_struct("PskCredentials")
            .field("identity", &self.identity.as_ref().map(ToString::to_string))
            .field("keys", &format_args!("{keys}"))
            .finish_non_exhaustive()
    }
}

impl PskCredentials {
    /// The PSK of client `index`, named `endpoint`.
    pub fn psk(&self, index: u64, endpoint: &str) -> Psk {
        let (file_identity, key) = match &self.keys {
            Keys::Fixed(key) => (None, key.expose().to_vec()),
            Keys::Derived { master, length } => {
                (None, derive_key(master.expose(), endpoint, *length))
            }
            // Every endpoint of the fleet was checked to be in the file; another gets no key.
            Keys::File(map) => map.get(endpoint).map_or((None, Vec::new()), |(id, key)| {
                (Some(id.as_str()), key.expose().to_vec())
            }),
        };
        let identity = match &self.identity {
            Some(pattern) => pattern.render(index, endpoint, &self.naming),
            None => file_identity.unwrap_or(endpoint).to_string(),
        };
        Psk {
            identity: identity.into_bytes(),
            key,
        }
    }
}

impl PskCredentials {
    /// Every client's identity and key, for the embedded server's handshakes. Built once at
    /// start and held for the run: ~100 bytes per client (10 MB for 100,000). Two clients with
    /// one identity keep the later one's key.
    pub fn server_keys(&self, clients: u64) -> HashMap<Vec<u8>, Vec<u8>> {
        (0..clients)
            .map(|index| {
                let psk = self.psk(index, &self.naming.endpoint(index));
                (psk.identity, psk.key)
            })
            .collect()
    }
}

/// How `credentials` writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// `endpoint,identity,key` with a header line: the key file format.
    Csv,
    /// An array of `{"endpoint", "identity", "key"}` objects, one per line.
    Json,
}

impl PskCredentials {
    /// The `clients`' (fleet-wide indices, in order) endpoint, identity and key (hex). The one place keys
    /// are written out, on purpose.
    pub fn export(
        &self,
        clients: impl IntoIterator<Item = u64>,
        format: ExportFormat,
        out: &mut impl Write,
    ) -> io::Result<()> {
        match format {
            ExportFormat::Csv => writeln!(out, "endpoint,identity,key")?,
            ExportFormat::Json => writeln!(out, "[")?,
        }
        let mut clients = clients.into_iter().peekable();
        while let Some(index) = clients.next() {
            let endpoint = self.naming.endpoint(index);
            let psk = self.psk(index, &endpoint);
            let identity = String::from_utf8_lossy(&psk.identity);
            let key = hex::encode(&psk.key);
            match format {
                ExportFormat::Csv => {
                    writeln!(
                        out,
                        "{},{},{key}",
                        csv_field(&endpoint),
                        csv_field(&identity)
                    )?;
                }
                ExportFormat::Json => {
                    let comma = if clients.peek().is_some() { "," } else { "" };
                    writeln!(
                        out,
                        "  {{\"endpoint\": {}, \"identity\": {}, \"key\": \"{key}\"}}{comma}",
                        serde_json::Value::from(endpoint.as_str()),
                        serde_json::Value::from(identity.as_ref()),
                    )?;
                }
            }
        }
        if format == ExportFormat::Json {
            writeln!(out, "]")?;
        }
        Ok(())
    }
}

/// RFC 4180 quoting, only where needed (the key file reader takes no quotes: a comma in an
/// endpoint or identity is its one limit).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

impl Fleet {
    /// The fleet's credentials, `None` without `[security]`: reads the key file (checking it
    /// holds every client), the certificate files, and the master secret's environment variable.
    pub fn credentials(&self) -> Result<Option<Credentials>, FleetError> {
        match &self.security {
            None => Ok(None),
            Some(Security::Psk(psk)) => {
                self.psk_credentials(psk).map(|c| Some(Credentials::Psk(c)))
            }
            Some(Security::Certificate(cert)) => {
                certificates::load(self, cert).map(|c| Some(Credentials::Certificate(c)))
            }
        }
    }

    fn psk_credentials(&self, security: &PskSecurity) -> Result<PskCredentials, FleetError> {
        let keys = match &security.key {
            KeySource::Fixed(key) => Keys::Fixed(key.clone()),
            KeySource::Derived { master, length } => Keys::Derived {
                master: self.master(master, security.line)?,
                length: *length,
            },
            KeySource::File { path } => Keys::File(key_file::load(path, self)?),
        };
        Ok(PskCredentials {
            identity: security.identity.clone(),
            naming: self.naming.clone(),
            keys,
            cipher: security.cipher,
        })
    }

    fn master(&self, master: &Master, line: usize) -> Result<Secret, FleetError> {
        self.master_as(master, line, "derive.master")
    }

    /// `field` names the setting in errors.
    fn master_as(&self, master: &Master, line: usize, field: &str) -> Result<Secret, FleetError> {
        match master {
            Master::Hex(secret) => Ok(secret.clone()),
            Master::Env(var) => {
                let value = std::env::var(var).map_err(|_| {
                    invalid(
                        &self.file,
                        line,
                        field,
                        format!("environment variable {var} is not set (or not UTF-8)"),
                    )
                })?;
                Secret::from_hex(value.trim())
                    .map_err(|e| invalid(&self.file, line, field, format!("${var}: {e}")))
            }
        }
    }
}
