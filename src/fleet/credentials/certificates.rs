//! Certificate mode made real: the CA (or the per-device PEM files) read, the server check
//! built, and the export of device certificates for provisioning the server under test.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path as FsPath;
use std::sync::Arc;

use dimpl::DtlsCertificate;
use sha2::{Digest, Sha256};

use super::super::security::{CertificateSecurity, DeviceCertSource, ServerCheck};
use super::super::span::invalid;
use super::super::{Fleet, FleetError, Naming};
use super::ExportFormat;
use crate::security::Credential;
use crate::security::x509::{
    self, Authority, DeviceCertificates, DeviceSource, PeerVerifier, Usage, X509Error,
};

#[cfg(test)]
mod tests;

/// The fleet's certificates, shared by every client.
#[derive(Debug)]
pub struct CertificateCredentials {
    naming: Naming,
    devices: Arc<DeviceCertificates>,
}

impl CertificateCredentials {
    pub fn credential(&self) -> Credential {
        Credential::Certificate(Arc::clone(&self.devices))
    }

    pub fn devices(&self) -> &Arc<DeviceCertificates> {
        &self.devices
    }

    /// Client `index`'s endpoint name, certificate and key.
    pub fn device(&self, index: u64) -> Result<(String, DtlsCertificate), X509Error> {
        let endpoint = self.naming.endpoint(index);
        let certificate = self.devices.certificate(&endpoint)?;
        Ok((endpoint, certificate))
    }

    /// The `clients`' (fleet-wide indices) endpoint, certificate subject and SHA-256 (CSV: `endpoint,subject,sha256`
    /// with that header), or as JSON objects that also carry the certificate PEM, and the
    /// private key PEM only when `private_keys` (the caller makes sure it goes to a private file).
    pub fn export(
        &self,
        clients: impl IntoIterator<Item = u64>,
        format: ExportFormat,
        private_keys: bool,
        out: &mut impl Write,
    ) -> io::Result<()> {
        match format {
            ExportFormat::Csv => writeln!(out, "endpoint,subject,sha256")?,
            ExportFormat::Json => writeln!(out, "[")?,
        }
        let mut clients = clients.into_iter().peekable();
        while let Some(index) = clients.next() {
            let (endpoint, cert) = self.device(index).map_err(io::Error::other)?;
            let subject = x509::common_name(&cert.certificate).unwrap_or_default();
            let sha256 = x509::fingerprint(&cert.certificate);
            match format {
                ExportFormat::Csv => writeln!(out, "{endpoint},{subject},{sha256}")?,
                ExportFormat::Json => {
                    let mut row = serde_json::json!({
                        "endpoint": endpoint,
                        "subject": subject,
                        "sha256": sha256,
                        "certificate": x509::certificate_pem(&cert.certificate),
                    });
                    if private_keys {
                        row["private_key"] = x509::private_key_pem(&cert.private_key).into();
                    }
                    let comma = if clients.peek().is_some() { "," } else { "" };
                    writeln!(out, "  {row}{comma}")?;
                }
            }
        }
        if format == ExportFormat::Json {
            writeln!(out, "]")?;
        }
        Ok(())
    }
}

/// Reads what `[security]` names; every client of the fleet gets a certificate it can present.
pub(super) fn load(
    fleet: &Fleet,
    security: &CertificateSecurity,
) -> Result<CertificateCredentials, FleetError> {
    let line = security.line;
    let x509_err = |field: &'static str| move |e: X509Error| invalid(&fleet.file, line, field, e.0);
    let (source, fleet_ca) = match &security.devices {
        DeviceCertSource::Issued {
            ca_cert,
            ca_key,
            master,
        } => {
            let cert_pem = read(ca_cert)?;
            let key_pem = read(ca_key)?;
            let what = format!("{} and {}", ca_cert.display(), ca_key.display());
            let authority =
                Authority::from_pem(&cert_pem, &key_pem, &what).map_err(x509_err("ca_key"))?;
            let master = match master {
                Some(master) => fleet
                    .master_as(master, line, "key_master")?
                    .expose()
                    .to_vec(),
                // As secret as the CA key, and the same every run.
                None => Sha256::new()
                    .chain_update(b"lwm2m-swarm key master\0")
                    .chain_update(key_pem.trim().as_bytes())
                    .finalize()
                    .to_vec(),
            };
            let source = DeviceSource::Issued {
                authority: Box::new(authority),
                master,
            };
            (source, Some(cert_pem))
        }
        DeviceCertSource::Files { path } => {
            let map = if path.is_dir() {
                from_dir(fleet, path)?
            } else {
                from_csv(fleet, path)?
            };
            (DeviceSource::Given(map), None)
        }
    };
    let server = match &security.server {
        ServerCheck::Ca { file, name } => {
            let what = file.display().to_string();
            PeerVerifier::chain(&read(file)?, name.as_deref(), Usage::Server, &what)
                .map_err(x509_err("server_ca"))?
        }
        ServerCheck::Pinned(pin) => PeerVerifier::Pinned(vec![*pin]),
        ServerCheck::Insecure => PeerVerifier::AcceptAny,
        ServerCheck::FleetCa => {
            let pem = fleet_ca.as_deref().ok_or_else(|| {
                invalid(
                    &fleet.file,
                    line,
                    "server_ca",
                    "no CA to check the server against",
                )
            })?;
            PeerVerifier::chain(pem, None, Usage::Server, "ca_cert").map_err(x509_err("ca_cert"))?
        }
    };
    Ok(CertificateCredentials {
        naming: fleet.naming.clone(),
        devices: Arc::new(DeviceCertificates::new(source, server)),
    })
}

fn read(path: &FsPath) -> Result<String, FleetError> {
    std::fs::read_to_string(path).map_err(|source| FleetError::Io {
        file: path.display().to_string(),
        source,
    })
}

/// `DIR/ENDPOINT.pem` and `DIR/ENDPOINT.key` for every client (what `credentials --output-dir`
/// writes).
fn from_dir(fleet: &Fleet, dir: &FsPath) -> Result<HashMap<String, DtlsCertificate>, FleetError> {
    (0..fleet.clients)
        .map(|index| {
            let endpoint = fleet.naming.endpoint(index);
            let cert = dir.join(format!("{endpoint}.pem"));
            let key = dir.join(format!("{endpoint}.key"));
            let what = cert.display().to_string();
            let pair = x509::certificate_from_pem(&read(&cert)?, &read(&key)?, &what)
                .map_err(|e| invalid(&what, 0, "certificate", e.0))?;
            Ok((endpoint, pair))
        })
        .collect()
}

/// CSV lines `endpoint,cert_path,key_path` (paths relative to the CSV file; an optional header
/// `endpoint,certificate,key`; blank lines and `#` comments): it must name every client.
fn from_csv(fleet: &Fleet, csv: &FsPath) -> Result<HashMap<String, DtlsCertificate>, FleetError> {
    let file = csv.display().to_string();
    let text = read(csv)?;
    let dir = csv.parent().unwrap_or(FsPath::new(""));
    let mut paths = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line == "endpoint,certificate,key" {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [endpoint, cert, key] = fields[..] else {
            return Err(invalid(
                &file,
                i + 1,
                "endpoint",
                format!(
                    "expected 3 fields endpoint,cert_path,key_path, found {}",
                    fields.len()
                ),
            ));
        };
        if paths
            .insert(endpoint.to_string(), (i + 1, dir.join(cert), dir.join(key)))
            .is_some()
        {
            return Err(invalid(
                &file,
                i + 1,
                "endpoint",
                format!("{endpoint:?} twice"),
            ));
        }
    }
    (0..fleet.clients)
        .map(|index| {
            let endpoint = fleet.naming.endpoint(index);
            let Some((line, cert, key)) = paths.get(&endpoint) else {
                return Err(invalid(
                    &file,
                    0,
                    "endpoint",
                    format!("no line for {endpoint}"),
                ));
            };
            let pair =
                x509::certificate_from_pem(&read(cert)?, &read(key)?, &cert.display().to_string())
                    .map_err(|e| invalid(&file, *line, "certificate", e.0))?;
            Ok((endpoint, pair))
        })
        .collect()
}
