//! The command line's certificate-mode pieces: exporting device certificates, and the embedded
//! server's DTLS configuration for a fleet with certificates.

use std::io::Write;
use std::path::Path as FsPath;
use std::sync::Arc;

use super::{CredentialsArgs, Failure, bad_input, create_private, failed};
use crate::fleet::{CertificateCredentials, ExportFormat};
use crate::security::x509;
use crate::server::{DtlsServerConfig, ServerAuth};

/// `credentials` for certificates: CSV or JSON (certificates, and keys with `--private-keys`
/// into a private `--output` file), or `--output-dir`: `ENDPOINT.pem` per client and, with
/// `--private-keys`, `ENDPOINT.key` readable by its owner only (what `certificates = DIR` reads).
pub(super) fn export(
    args: &CredentialsArgs,
    credentials: &CertificateCredentials,
    clients: impl Iterator<Item = u64>,
    format: ExportFormat,
) -> Result<(), Failure> {
    if let Some(dir) = &args.output_dir {
        return export_dir(credentials, clients, dir, args.private_keys);
    }
    if args.private_keys && args.output.is_none() {
        return Err(bad_input(
            "--private-keys writes private keys to a file only: give --output PATH or \
             --output-dir DIR",
        ));
    }
    if args.private_keys && format == ExportFormat::Csv {
        return Err(bad_input(
            "--private-keys needs --format json or --output-dir (CSV has no room for PEM)",
        ));
    }
    let out: Box<dyn Write> = if let Some(path) = &args.output {
        let file = create_private(path)
            .map_err(|e| bad_input(format!("{}: cannot create: {e}", path.display())))?;
        Box::new(file)
    } else {
        Box::new(std::io::stdout().lock())
    };
    let mut out = std::io::BufWriter::new(out);
    credentials
        .export(clients, format, args.private_keys, &mut out)
        .and_then(|()| out.flush())
        .map_err(|e| failed(format!("cannot write the certificates: {e}")))
}

fn export_dir(
    credentials: &CertificateCredentials,
    clients: impl Iterator<Item = u64>,
    dir: &FsPath,
    private_keys: bool,
) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| bad_input(format!("{}: cannot create: {e}", dir.display())))?;
    for index in clients {
        let (endpoint, cert) = credentials
            .device(index)
            .map_err(|e| failed(format!("cannot issue a certificate: {e}")))?;
        let write = |name: String, text: String, private: bool| {
            let path = dir.join(name);
            let file = if private {
                create_private(&path)
            } else {
                std::fs::File::create(&path)
            };
            file.and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(|e| failed(format!("{}: cannot write: {e}", path.display())))
        };
        write(
            format!("{endpoint}.pem"),
            x509::certificate_pem(&cert.certificate),
            false,
        )?;
        if private_keys {
            write(
                format!("{endpoint}.key"),
                x509::private_key_pem(&cert.private_key),
                true,
            )?;
        }
    }
    Ok(())
}

/// The embedded server over DTLS with certificates: its own issued by the fleet's CA (for
/// `localhost` and 127.0.0.1, which clients check it against), clients' checked against the CA.
pub(super) fn embedded_server(
    credentials: &CertificateCredentials,
) -> Result<DtlsServerConfig, Failure> {
    let devices = credentials.devices();
    let names = ["localhost".to_string(), "127.0.0.1".to_string()];
    let certificate = devices
        .issue_server(&names)
        .map_err(|e| bad_input(format!("the embedded server: {e}")))?;
    let clients = devices
        .client_verifier()
        .map_err(|e| bad_input(format!("the embedded server: {e}")))?;
    Ok(DtlsServerConfig::with_auth(ServerAuth::Certificate {
        certificate,
        clients: Arc::new(clients),
        unix_origin: unix_now(),
    }))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
