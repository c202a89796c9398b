//! `[security] mode = "certificate"` (alias `"x509"`): where device certificates come from and
//! how the server's is checked. Paths are relative to the fleet file; nothing is read here.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use super::super::FleetError;
use super::super::raw::RawSecurity;
use super::super::span::{At, invalid};
use super::Master;
use crate::security::x509::PeerVerifier;

/// Certificate security: the devices' certificates and the server check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSecurity {
    pub devices: DeviceCertSource,
    pub server: ServerCheck,
    pub(in crate::fleet) line: usize,
}

/// Where device certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceCertSource {
    /// Issued under this CA at handshake time, CN = endpoint name, for a P-256 key derived from
    /// `master` (`None`: from the CA key itself) and the endpoint name.
    Issued {
        ca_cert: PathBuf,
        ca_key: PathBuf,
        master: Option<Master>,
    },
    /// Given per device: a directory of `ENDPOINT.pem` + `ENDPOINT.key`, or a CSV file of
    /// `endpoint,cert_path,key_path` lines.
    Files { path: PathBuf },
}

/// How a client checks the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerCheck {
    /// It chains to a CA in this file, is valid now, and names `name` when given.
    Ca { file: PathBuf, name: Option<String> },
    /// Its SHA-256 is this.
    Pinned([u8; 32]),
    /// Not checked at all (`insecure_skip_server_verification = true`).
    Insecure,
    /// Not set: only allowed against the embedded server, whose certificate the fleet's CA
    /// issues; clients check it against `ca_cert`.
    FleetCa,
}

impl fmt::Display for CertificateSecurity {
    /// Mode, sources and the server check, never a key: for `check` and reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.devices {
            DeviceCertSource::Issued {
                ca_cert, master, ..
            } => {
                write!(
                    f,
                    "certificate, issued by {} (CN = endpoint",
                    ca_cert.display()
                )?;
                match master {
                    None => write!(f, ", keys derived from the CA key)")?,
                    Some(Master::Hex(_)) => write!(f, ", keys derived from key_master)")?,
                    Some(Master::Env(var)) => write!(f, ", keys derived from ${var})")?,
                }
            }
            DeviceCertSource::Files { path } => {
                write!(f, "certificate, per device from {}", path.display())?;
            }
        }
        match &self.server {
            ServerCheck::Ca { file, name } => {
                write!(f, "; server checked against {}", file.display())?;
                if let Some(name) = name {
                    write!(f, " as {name:?}")?;
                }
                Ok(())
            }
            ServerCheck::Pinned(pin) => write!(f, "; server pinned sha256:{}", hex::encode(pin)),
            ServerCheck::Insecure => write!(f, "; server certificate NOT CHECKED (insecure)"),
            ServerCheck::FleetCa => write!(f, "; server checked against the fleet CA"),
        }
    }
}

/// The certificate settings of a `[security]` table.
pub(super) fn security(
    r: &RawSecurity,
    at: &At,
    file: &str,
) -> Result<CertificateSecurity, FleetError> {
    for (name, set) in [
        ("identity", r.identity.is_some()),
        ("key", r.key.is_some()),
        ("key_file", r.key_file.is_some()),
        ("derive", r.derive.is_some()),
        ("cipher", r.cipher.is_some()),
    ] {
        if set {
            return Err(at.err(name, "a PSK setting: certificates have no keys to share"));
        }
    }
    let devices = devices(r, at, file)?;
    let server = server_check(r, at, file)?;
    Ok(CertificateSecurity {
        devices,
        server,
        line: at.line(),
    })
}

fn devices(r: &RawSecurity, at: &At, file: &str) -> Result<DeviceCertSource, FleetError> {
    let path = |field: &str, text: &str| relative(field, text, at, file);
    match (&r.ca_key, &r.certificates) {
        (Some(_), Some(_)) => Err(at.err(
            "certificates",
            "give either ca_key (issue each device's certificate) or certificates (given \
             per device), not both",
        )),
        (None, None) => Err(at.err(
            "ca_key",
            "give ca_cert and ca_key (certificates issued per device), or certificates (a \
             directory or CSV file of per-device PEM files)",
        )),
        (Some(ca_key), None) => {
            let Some(ca_cert) = &r.ca_cert else {
                return Err(at.err("ca_cert", "ca_key needs its CA certificate: give ca_cert"));
            };
            let master = r
                .key_master
                .as_deref()
                .map(|m| super::master(m).map_err(|e| at.err("key_master", e)))
                .transpose()?;
            Ok(DeviceCertSource::Issued {
                ca_cert: path("ca_cert", ca_cert)?,
                ca_key: path("ca_key", ca_key)?,
                master,
            })
        }
        (None, Some(certificates)) => {
            for (name, set) in [
                ("ca_cert", r.ca_cert.is_some()),
                ("key_master", r.key_master.is_some()),
            ] {
                if set {
                    return Err(at.err(
                        name,
                        "only with ca_key (issued certificates); per-device files bring their own",
                    ));
                }
            }
            Ok(DeviceCertSource::Files {
                path: path("certificates", certificates)?,
            })
        }
    }
}

fn server_check(r: &RawSecurity, at: &At, file: &str) -> Result<ServerCheck, FleetError> {
    let insecure = r.insecure_skip_server_verification == Some(true);
    let given: Vec<&str> = [
        ("server_ca", r.server_ca.is_some()),
        ("server_pin", r.server_pin.is_some()),
        ("insecure_skip_server_verification", insecure),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if let [_, second, ..] = given[..] {
        return Err(at.err(
            second,
            "give only one of server_ca, server_pin, insecure_skip_server_verification",
        ));
    }
    if r.server_name.is_some() && r.server_ca.is_none() {
        return Err(at.err(
            "server_name",
            "server_name is checked with server_ca: give it too",
        ));
    }
    if let Some(ca) = &r.server_ca {
        if let Some(name) = &r.server_name {
            rustls_pki_types::ServerName::try_from(name.as_str()).map_err(|_| {
                at.err(
                    "server_name",
                    format!("{name:?}: not a DNS name or IP address"),
                )
            })?;
        }
        return Ok(ServerCheck::Ca {
            file: relative("server_ca", ca, at, file)?,
            name: r.server_name.clone(),
        });
    }
    if let Some(pin) = &r.server_pin {
        return PeerVerifier::parse_pin(pin)
            .map(ServerCheck::Pinned)
            .map_err(|e| at.err("server_pin", format!("{e}: give sha256:HEX (64 digits)")));
    }
    Ok(if insecure {
        ServerCheck::Insecure
    } else {
        ServerCheck::FleetCa
    })
}

/// A path relative to the fleet file, so a fleet and its certificates move together.
fn relative(field: &str, text: &str, at: &At, file: &str) -> Result<PathBuf, FleetError> {
    if text.trim().is_empty() {
        return Err(at.err(field, "give a path"));
    }
    let dir = FsPath::new(file).parent().unwrap_or(FsPath::new(""));
    Ok(dir.join(text))
}

/// With a server of its own the fleet must say how to check it; the embedded server's
/// certificate is issued by the fleet's CA, so that needs one.
pub(super) fn check_server(
    security: &CertificateSecurity,
    has_server: bool,
    file: &str,
) -> Result<(), FleetError> {
    let issued = matches!(security.devices, DeviceCertSource::Issued { .. });
    if has_server && security.server == ServerCheck::FleetCa {
        return Err(invalid(
            file,
            security.line,
            "server_ca",
            "say how to check the server's certificate: server_ca (with server_name), \
             server_pin, or insecure_skip_server_verification = true",
        ));
    }
    if !has_server && !issued {
        return Err(invalid(
            file,
            security.line,
            "ca_key",
            "the embedded server issues its own certificate from the fleet's CA: give ca_cert \
             and ca_key, or a [server]",
        ));
    }
    Ok(())
}
