//! `credentials`: every client's endpoint, identity and key (PSK), or its certificate (and
//! private key, to files only): the one output with keys in it.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use clap::{Args, ValueEnum};

use super::args::{FleetArgs, TimingArgs};
use super::setup::load;
use super::{Failure, bad_input, failed};
use crate::fleet::{CertificateCredentials, Credentials, ExportFormat};
use crate::security::x509;

#[derive(Args, Debug)]
pub(super) struct CredentialsArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// What to print.
    #[arg(long, value_enum, default_value_t = FormatArg::Csv, help_heading = "Output")]
    pub format: FormatArg,
    /// Write to this file (created readable by its owner only) instead of stdout.
    #[arg(long, short, value_name = "PATH", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Certificate mode: write ENDPOINT.pem per client into this directory instead.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "output",
        help_heading = "Output"
    )]
    pub output_dir: Option<PathBuf>,
    /// Certificate mode: include each client's private key (to files only: ENDPOINT.key
    /// readable by its owner, or a JSON --output).
    #[arg(long, help_heading = "Output")]
    pub private_keys: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum FormatArg {
    /// `endpoint,identity,key` lines after a header: also the key file format (certificates:
    /// `endpoint,subject,sha256`).
    Csv,
    /// A JSON array of {"endpoint", "identity", "key"} objects (certificates: "endpoint",
    /// "subject", "sha256", "certificate" PEM).
    Json,
}

pub(super) fn credentials(args: &CredentialsArgs) -> Result<(), Failure> {
    let loaded = load(&args.fleet, &TimingArgs::default())?;
    let credentials = loaded.credentials.ok_or_else(|| {
        bad_input(format!(
            "{}: no [security] table, so no credentials: add one or give --psk-key",
            loaded.fleet.file
        ))
    })?;
    let format = match args.format {
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Json => ExportFormat::Json,
    };
    let clients = args.fleet.shard.clients(loaded.fleet.clients);
    let credentials = match credentials.as_ref() {
        Credentials::Psk(psk) => psk,
        Credentials::Certificate(certs) => {
            return export_certificates(args, certs, clients, format);
        }
    };
    if args.output_dir.is_some() || args.private_keys {
        return Err(bad_input(
            "--output-dir and --private-keys are for certificate mode; PSK keys are the export",
        ));
    }
    let mut out = std::io::BufWriter::new(output(args.output.as_deref())?);
    let written = credentials
        .export(clients, format, &mut out)
        .and_then(|()| out.flush());
    ended(written, "credentials")
}

/// A reader that closed the pipe early (`credentials ... | head`) is a quiet end, not a failure.
fn ended(written: std::io::Result<()>, what: &str) -> Result<(), Failure> {
    match written {
        Err(e) if !super::output::is_closed_pipe(&e) => {
            Err(failed(format!("cannot write the {what}: {e}")))
        }
        _ => Ok(()),
    }
}

/// `--output`, created readable by its owner only, else stdout.
fn output(path: Option<&FsPath>) -> Result<Box<dyn Write>, Failure> {
    Ok(if let Some(path) = path {
        let file = create_private(path)
            .map_err(|e| bad_input(format!("{}: cannot create: {e}", path.display())))?;
        Box::new(file)
    } else {
        Box::new(std::io::stdout().lock())
    })
}

/// Certificates: CSV or JSON (certificates, and keys with `--private-keys` into a private
/// `--output` file), or `--output-dir`: `ENDPOINT.pem` per client and, with `--private-keys`,
/// `ENDPOINT.key` readable by its owner only (what `certificates = DIR` reads).
fn export_certificates(
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
    let mut out = std::io::BufWriter::new(output(args.output.as_deref())?);
    let written = credentials
        .export(clients, format, args.private_keys, &mut out)
        .and_then(|()| out.flush());
    ended(written, "certificates")
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

/// A new file (or truncated) that only its owner can read: it holds keys.
fn create_private(path: &FsPath) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The mode above applies to a new file only: an existing one may be readable by others.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

#[cfg(all(test, unix))]
mod private_file_tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_file_is_owner_only_even_when_it_existed() {
        let path = std::env::temp_dir().join(format!("lwm2m-swarm-private-{}", std::process::id()));
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(super::create_private(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_file(&path).unwrap();
        assert_eq!(mode, 0o600, "{mode:o}");
    }
}
