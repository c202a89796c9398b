//! The fleet file's `[security]`: how each device's DTLS PSK identity and key, or its
//! certificate, are made. Parsing only (no file or environment is read here);
//! `Fleet::credentials` turns it into keys and certificates.

use std::fmt::{self, Write};
use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;

use toml::Spanned;

mod certificate;

pub use certificate::{CertificateSecurity, DeviceCertSource, ServerCheck};

use super::raw::{RawDerive, RawSecurity};
use super::span::{At, invalid};
use super::{FleetError, Naming, Overrides, Scheme, ServerUri};
use crate::security::PskCipher;

/// Key bytes. Debug shows only the length, so a key cannot reach a log or report by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Parses hex digits, two per byte. The error never quotes the text: it may be a key.
    pub fn from_hex(text: &str) -> Result<Secret, String> {
        let bytes = hex::decode(text)
            .map_err(|_| "not a hex key: give two hex digits per byte".to_string())?;
        if bytes.is_empty() {
            return Err("the key is empty".into());
        }
        Ok(Secret(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key itself, for the DTLS handshake and the `credentials` export only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// A PSK identity pattern: text with `{endpoint}`, `{index}` (0-based) and `{number}` (the
/// naming number: start + index, zero-padded like the endpoint); `{{` and `}}` are braces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityPattern {
    text: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Endpoint,
    Index,
    Number,
}

impl FromStr for IdentityPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(ch) = rest.chars().next() {
            rest = &rest[ch.len_utf8()..];
            match ch {
                '{' if rest.starts_with('{') => {
                    literal.push('{');
                    rest = &rest[1..];
                }
                '}' if rest.starts_with('}') => {
                    literal.push('}');
                    rest = &rest[1..];
                }
                '{' => {
                    let (name, after) = rest
                        .split_once('}')
                        .ok_or_else(|| format!("{text:?}: unclosed '{{'"))?;
                    let part = match name {
                        "endpoint" => Part::Endpoint,
                        "index" => Part::Index,
                        "number" => Part::Number,
                        _ => {
                            return Err(format!(
                                "{text:?}: unknown placeholder {{{name}}}: use {{endpoint}}, \
                                 {{index}} or {{number}}"
                            ));
                        }
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    rest = after;
                }
                '}' => return Err(format!("{text:?}: lone '}}': write '}}}}' for a brace")),
                _ => literal.push(ch),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        if parts.is_empty() {
            return Err("the identity pattern is empty".into());
        }
        Ok(IdentityPattern {
            text: text.to_string(),
            parts,
        })
    }
}

impl IdentityPattern {
    /// The identity of client `index`, named `endpoint`.
    pub fn render(&self, index: u64, endpoint: &str, naming: &Naming) -> String {
        let mut out = String::with_capacity(endpoint.len() + 8);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Endpoint => out.push_str(endpoint),
                Part::Index => {
                    let _ = write!(out, "{index}");
                }
                Part::Number => {
                    let number = naming.start.saturating_add(index);
                    let _ = write!(out, "{number:0width$}", width = naming.width);
                }
            }
        }
        out
    }
}

impl fmt::Display for IdentityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where the master secret of derived keys comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Master {
    Hex(Secret),
    /// `env:VAR`: read when the credentials are built, so it need not be in the file.
    Env(String),
}

/// Where each device's key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// One key for every device.
    Fixed(Secret),
    /// CSV lines `endpoint,identity,key_hex`; `path` is relative to the working directory
    /// (the file's is resolved against the fleet file's directory).
    File { path: PathBuf },
    /// HMAC-SHA256(master, endpoint), the first `length` bytes.
    Derived { master: Master, length: usize },
}

/// A fleet's security mode and its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// Pre-shared keys (`LwM2M` Security Mode 0).
    Psk(PskSecurity),
    /// X.509 certificates (`LwM2M` Security Mode 2, "Certificate").
    Certificate(CertificateSecurity),
}

impl Security {
    /// The line of the `[security]` table (0 when made from the command line).
    pub fn line(&self) -> usize {
        match self {
            Security::Psk(psk) => psk.line,
            Security::Certificate(cert) => cert.line,
        }
    }
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Psk(psk) => psk.fmt(f),
            Security::Certificate(cert) => cert.fmt(f),
        }
    }
}

/// PSK security: each device's identity and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PskSecurity {
    /// `None` with a key file: each device's identity is the file's.
    pub identity: Option<IdentityPattern>,
    pub key: KeySource,
    /// `cipher`: CCM-8 (dimpl) unless the file asks for GCM (OpenSSL).
    pub cipher: PskCipher,
    /// Of the `[security]` table (0 when made from the command line).
    pub(super) line: usize,
}

impl fmt::Display for PskSecurity {
    /// The mode, identity and key source, never the key: for `check` and reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.identity {
            Some(pattern) => write!(f, "psk, identity \"{pattern}\", key: ")?,
            None => write!(f, "psk, identity and key: ")?,
        }
        match &self.key {
            KeySource::Fixed(key) => write!(f, "fixed ({} bytes)", key.len()),
            KeySource::File { path } => write!(f, "from {}", path.display()),
            KeySource::Derived { master, length } => {
                write!(f, "derived hmac-sha256 ({length} bytes)")?;
                match master {
                    Master::Hex(_) => Ok(()),
                    Master::Env(var) => write!(f, ", master from ${var}"),
                }
            }
        }?;
        match self.cipher {
            PskCipher::Aes128Ccm8 => Ok(()),
            #[cfg(feature = "openssl")]
            PskCipher::Aes128Gcm => write!(f, ", {GCM} (OpenSSL)"),
        }
    }
}

const CCM8: &str = "aes-128-ccm8";
const GCM: &str = "aes-128-gcm";

/// `cipher`: the PSK suite. GCM needs the `openssl` feature; a build without it says so.
fn cipher(r: &RawSecurity, at: &At) -> Result<PskCipher, FleetError> {
    match r.cipher.as_deref() {
        None | Some(CCM8) => Ok(PskCipher::Aes128Ccm8),
        #[cfg(feature = "openssl")]
        Some(GCM) => Ok(PskCipher::Aes128Gcm),
        #[cfg(not(feature = "openssl"))]
        Some(GCM) => Err(at.err(
            "cipher",
            "\"aes-128-gcm\" needs OpenSSL: build with `cargo build --release --features \
             openssl`, or use \"aes-128-ccm8\"",
        )),
        Some(other) => Err(at.err(
            "cipher",
            format!("{other:?}: expected \"{CCM8}\" (the default) or \"{GCM}\""),
        )),
    }
}

pub(super) const DEFAULT_IDENTITY: &str = "{endpoint}";
/// HMAC-SHA256 gives 32 bytes; 16 is a common PSK length (AES-128 cipher suites).
const DEFAULT_KEY_LENGTH: usize = 16;
const MAX_KEY_LENGTH: usize = 32;

/// `[security]` with the command line's `--psk-identity` and `--psk-key` replacing its values
/// (either of them alone on a fleet without `[security]` makes one).
pub(super) fn security(
    raw: Option<&Spanned<RawSecurity>>,
    overrides: &Overrides,
    file: &str,
    text: &str,
) -> Result<Option<Security>, FleetError> {
    let Some(raw) = raw else {
        return command_line_security(overrides, file);
    };
    let at = At {
        file,
        text,
        span: raw.span(),
    };
    let r = raw.get_ref();
    match r.mode.as_str() {
        "psk" => psk_fields_only(r, &at)?,
        "certificate" | "x509" => {
            if overrides.psk_key.is_some() || overrides.psk_identity.is_some() {
                return Err(at.err(
                    "mode",
                    "--psk-key and --psk-identity need mode = \"psk\", not certificates",
                ));
            }
            return certificate::security(r, &at, file).map(|c| Some(Security::Certificate(c)));
        }
        "rpk" => {
            return Err(at.err(
                "mode",
                "\"rpk\": raw public keys are not supported (the DTLS library has no \
                 certificate_type negotiation): use \"psk\" or \"certificate\"",
            ));
        }
        other => {
            return Err(at.err(
                "mode",
                format!("{other:?}: expected \"psk\" or \"certificate\" (also \"x509\")"),
            ));
        }
    }
    let key = match &overrides.psk_key {
        Some(key) => KeySource::Fixed(key.clone()),
        None => key_source(r, &at, file)?,
    };
    let from_file = matches!(key, KeySource::File { .. });
    let identity = match (&overrides.psk_identity, &r.identity) {
        (Some(pattern), _) => Some(pattern.clone()),
        (None, Some(_)) if from_file => {
            return Err(at.err(
                "identity",
                "the key file gives each device's identity: remove `identity`",
            ));
        }
        (None, Some(text)) => Some(text.parse().map_err(|e| at.err("identity", e))?),
        (None, None) if from_file => None,
        (None, None) => Some(default_identity()),
    };
    Ok(Some(Security::Psk(PskSecurity {
        identity,
        key,
        cipher: cipher(r, &at)?,
        line: at.line(),
    })))
}

/// A PSK table names none of the certificate fields.
fn psk_fields_only(r: &RawSecurity, at: &At) -> Result<(), FleetError> {
    let certificate_fields = [
        ("ca_cert", r.ca_cert.is_some()),
        ("ca_key", r.ca_key.is_some()),
        ("key_master", r.key_master.is_some()),
        ("certificates", r.certificates.is_some()),
        ("server_ca", r.server_ca.is_some()),
        ("server_name", r.server_name.is_some()),
        ("server_pin", r.server_pin.is_some()),
        (
            "insecure_skip_server_verification",
            r.insecure_skip_server_verification.is_some(),
        ),
    ];
    match certificate_fields.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(at.err(
            name,
            "a certificate setting: use it with mode = \"certificate\"",
        )),
        None => Ok(()),
    }
}

fn default_identity() -> IdentityPattern {
    DEFAULT_IDENTITY
        .parse()
        .expect("the default pattern parses")
}

fn command_line_security(
    overrides: &Overrides,
    file: &str,
) -> Result<Option<Security>, FleetError> {
    match (&overrides.psk_key, &overrides.psk_identity) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid(
            file,
            0,
            "security",
            "--psk-identity needs a key: give --psk-key or add a [security] table",
        )),
        (Some(key), identity) => Ok(Some(Security::Psk(PskSecurity {
            identity: Some(identity.clone().unwrap_or_else(default_identity)),
            key: KeySource::Fixed(key.clone()),
            cipher: PskCipher::default(),
            line: 0,
        }))),
    }
}

/// Exactly one of `key`, `key_file`, `derive`.
fn key_source(r: &RawSecurity, at: &At, file: &str) -> Result<KeySource, FleetError> {
    let given: Vec<&str> = [
        ("key", r.key.is_some()),
        ("key_file", r.key_file.is_some()),
        ("derive", r.derive.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match given[..] {
        [] => {
            return Err(at.err(
                "key",
                "give one of `key` (hex), `key_file` (CSV) or `derive` (from a master secret)",
            ));
        }
        [_] => {}
        [_, second, ..] => {
            return Err(at.err(second, "give only one of `key`, `key_file`, `derive`"));
        }
    }
    if let Some(hex) = &r.key {
        return Secret::from_hex(hex)
            .map(KeySource::Fixed)
            .map_err(|e| at.err("key", e));
    }
    if let Some(path) = &r.key_file {
        if path.trim().is_empty() {
            return Err(at.err("key_file", "give the path of a CSV file"));
        }
        // Relative to the fleet file, so a fleet and its keys move together.
        let dir = FsPath::new(file).parent().unwrap_or(FsPath::new(""));
        return Ok(KeySource::File {
            path: dir.join(path),
        });
    }
    let derive = r.derive.as_ref().expect("one source is given");
    derived(
        derive,
        &At {
            span: derive.span(),
            ..*at
        },
    )
}

fn derived(raw: &Spanned<RawDerive>, at: &At) -> Result<KeySource, FleetError> {
    let d = raw.get_ref();
    if let Some(algorithm) = &d.algorithm
        && algorithm != "hmac-sha256"
    {
        return Err(at.err_as(
            "algorithm",
            "derive.algorithm",
            format!("{algorithm:?}: expected \"hmac-sha256\""),
        ));
    }
    let length = d.key_length.unwrap_or(DEFAULT_KEY_LENGTH);
    if !(1..=MAX_KEY_LENGTH).contains(&length) {
        return Err(at.err_as(
            "key_length",
            "derive.key_length",
            format!("must be from 1 to {MAX_KEY_LENGTH} (bytes of HMAC-SHA256)"),
        ));
    }
    let master = master(&d.master).map_err(|e| at.err_as("master", "derive.master", e))?;
    Ok(KeySource::Derived { master, length })
}

/// Hex, or `env:VAR`.
pub(super) fn master(text: &str) -> Result<Master, String> {
    match text.strip_prefix("env:") {
        Some("") => Err("env: needs a variable name".into()),
        Some(var) => Ok(Master::Env(var.to_string())),
        None => Secret::from_hex(text).map(Master::Hex),
    }
}

/// `coaps://` needs credentials and credentials need `coaps://` or the embedded server (which
/// then speaks DTLS): neither is useful alone. `server_err` locates an error on the server's URI.
pub(super) fn check_scheme(
    server: Option<&ServerUri>,
    security: Option<&Security>,
    file: &str,
    server_err: impl FnOnce(&str) -> FleetError,
) -> Result<(), FleetError> {
    let coaps = server.is_some_and(|s| s.scheme == Scheme::Coaps);
    if let Some(Security::Certificate(cert)) = security {
        certificate::check_server(cert, server.is_some(), file)?;
    }
    if let Some(Security::Psk(psk)) = security
        && psk.cipher != PskCipher::Aes128Ccm8
        && server.is_none()
    {
        return Err(invalid(
            file,
            psk.line,
            "cipher",
            "the embedded server speaks AES-128-CCM-8 only: give a coaps:// server, or use \
             cipher = \"aes-128-ccm8\"",
        ));
    }
    match security {
        None if coaps => Err(server_err(
            "coaps:// needs credentials: add a [security] table (mode = \"psk\") or give \
             --psk-key",
        )),
        // No server at all: the embedded one, which speaks DTLS when the fleet has keys.
        Some(s) if server.is_some() && !coaps => Err(invalid(
            file,
            s.line(),
            "security",
            "DTLS credentials need a coaps:// server: set [server] uri = \"coaps://HOST:5684\", \
             give --server coaps://HOST:PORT, or leave the server out to run against the \
             embedded one over DTLS",
        )),
        _ => Ok(()),
    }
}
