//! `[security] mode = "certificate"`: parsing, loading the CA or per-device files, the export.

use std::path::PathBuf;

use super::super::ExportFormat;
use super::CertificateCredentials;
use crate::fleet::{Credentials, Fleet, FleetError};
use crate::security::x509::tests::{NOW, ca_pem, shows_secret};
use crate::security::x509::{self, PeerVerifier, Usage};
use crate::toml_span::Located;

const REST: &str = "[client]\nendpoint_prefix = \"dev-\"\nwidth = 4\nstart = 1\n\
    [[population]]\nname = \"a\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
    [load]\nclients = 3\nrate = 1\nhold = \"0s\"\n";

const SERVER: &str = "[server]\nuri = \"coaps://127.0.0.1:5684\"\n";

/// A fleet of dev-0001 .. dev-0003 with this `[security]` body, with `server` before it.
fn text(server: &str, security: &str) -> String {
    format!("{server}[security]\nmode = \"certificate\"\n{security}\n{REST}")
}

/// A fresh directory holding the "Fleet CA" as ca.pem and ca.key.
fn dir_with_ca(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-x509-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca_pem("Fleet CA");
    std::fs::write(dir.join("ca.pem"), cert).unwrap();
    std::fs::write(dir.join("ca.key"), key).unwrap();
    dir
}

fn fleet_in(dir: &std::path::Path, text: &str) -> Result<Fleet, FleetError> {
    Fleet::from_toml(text, dir.join("f.toml").to_str().unwrap())
}

fn certificates(fleet: &Fleet) -> CertificateCredentials {
    match fleet.credentials().unwrap_or_else(|e| panic!("{e}")) {
        Some(Credentials::Certificate(c)) => c,
        other => panic!("{other:?}"),
    }
}

/// `(line, field, message)` of a fleet that does not parse.
fn rejected(server: &str, security: &str) -> (usize, String, String) {
    let err = Fleet::from_toml(&text(server, security), "f.toml").unwrap_err();
    let FleetError::Invalid(Located { line, field, .. }) = &err else {
        panic!("{err}");
    };
    (*line, field.clone(), err.to_string())
}

#[test]
fn issued_certificates_name_each_endpoint_and_chain_to_the_ca() {
    let dir = dir_with_ca("issued");
    let body = text(
        SERVER,
        "ca_cert = \"ca.pem\"\nca_key = \"ca.key\"\nserver_ca = \"ca.pem\"\n\
         server_name = \"localhost\"",
    );
    let fleet = fleet_in(&dir, &body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fleet.security.as_ref().unwrap().to_string(),
        format!(
            "certificate, issued by {} (CN = endpoint, keys derived from the CA key); server \
             checked against {} as \"localhost\"",
            dir.join("ca.pem").display(),
            dir.join("ca.pem").display()
        )
    );
    let creds = certificates(&fleet);
    let clients = PeerVerifier::chain(&ca_pem("Fleet CA").0, None, Usage::Client, "ca").unwrap();
    for index in 0..3 {
        let (endpoint, cert) = creds.device(index).unwrap();
        assert_eq!(endpoint, format!("dev-{:04}", index + 1));
        assert_eq!(x509::common_name(&cert.certificate), Some(endpoint));
        assert_eq!(clients.verify(&cert.certificate, NOW), Ok(()));
    }
    // A second load (another run) issues the very same certificate and key.
    let again = certificates(&fleet_in(&dir, &body).unwrap());
    assert_eq!(
        creds.device(1).unwrap().1.certificate,
        again.device(1).unwrap().1.certificate
    );
    assert_eq!(
        creds.device(1).unwrap().1.private_key,
        again.device(1).unwrap().1.private_key
    );
    // The alias names the same mode.
    let alias = text(
        SERVER,
        "ca_cert = \"ca.pem\"\nca_key = \"ca.key\"\nserver_ca = \"ca.pem\"",
    )
    .replace("\"certificate\"", "\"x509\"");
    assert!(matches!(
        fleet_in(&dir, &alias).unwrap().security,
        Some(crate::fleet::Security::Certificate(_))
    ));
}

#[test]
fn a_key_master_changes_every_key_and_must_be_set() {
    let dir = dir_with_ca("master");
    let body = |master: &str| {
        text(
            "",
            &format!("ca_cert = \"ca.pem\"\nca_key = \"ca.key\"\nkey_master = \"{master}\""),
        )
    };
    let own = certificates(&fleet_in(&dir, &body("00112233")).unwrap());
    let other = certificates(&fleet_in(&dir, &body("44556677")).unwrap());
    assert_ne!(
        own.device(0).unwrap().1.private_key,
        other.device(0).unwrap().1.private_key
    );
    let unset = fleet_in(&dir, &body("env:LWM2M_SWARM_TEST_UNSET_MASTER")).unwrap();
    let err = unset.credentials().unwrap_err().to_string();
    assert!(
        err.contains("key_master") && err.contains("not set"),
        "{err}"
    );
}

#[test]
fn bad_certificate_tables_are_refused_naming_the_field() {
    let ca = "ca_cert = \"ca.pem\"\nca_key = \"ca.key\"";
    for (server, body, field, says) in [
        (
            "",
            "ca_cert = \"ca.pem\"",
            "ca_key",
            "give ca_cert and ca_key",
        ),
        ("", "ca_key = \"ca.key\"", "ca_cert", "give ca_cert"),
        (
            "",
            "ca_key = \"k\"\nca_cert = \"c\"\ncertificates = \"d\"",
            "certificates",
            "not both",
        ),
        (
            "",
            "certificates = \"d\"\nkey_master = \"00\"",
            "key_master",
            "only with ca_key",
        ),
        ("", &format!("{ca}\nkey = \"00\""), "key", "a PSK setting"),
        (
            "",
            &format!("{ca}\nserver_name = \"x\""),
            "server_name",
            "with server_ca",
        ),
        (
            "",
            &format!("{ca}\nserver_pin = \"sha256:00\""),
            "server_pin",
            "64 hex digits",
        ),
        (
            "",
            &format!("{ca}\nserver_ca = \"a\"\ninsecure_skip_server_verification = true"),
            "insecure_skip_server_verification",
            "only one",
        ),
        (SERVER, ca, "server_ca", "how to check the server"),
        (
            "",
            "certificates = \"d\"",
            "ca_key",
            "the embedded server issues",
        ),
    ] {
        let (line, got, message) = rejected(server, body);
        assert_eq!(got, field, "{message}");
        assert!(line > 0, "{message}");
        assert!(message.contains(says), "{says:?} in {message}");
    }
}

#[test]
fn per_device_files_from_a_directory_or_a_csv() {
    let dir = dir_with_ca("files");
    // What `credentials --output-dir --private-keys` writes, read back.
    let issued = certificates(
        &fleet_in(&dir, &text("", "ca_cert = \"ca.pem\"\nca_key = \"ca.key\"")).unwrap(),
    );
    let devices = dir.join("devices");
    std::fs::create_dir_all(&devices).unwrap();
    let mut csv = String::from("endpoint,certificate,key\n");
    for index in 0..3 {
        let (endpoint, cert) = issued.device(index).unwrap();
        std::fs::write(
            devices.join(format!("{endpoint}.pem")),
            x509::certificate_pem(&cert.certificate),
        )
        .unwrap();
        std::fs::write(
            devices.join(format!("{endpoint}.key")),
            x509::private_key_pem(&cert.private_key),
        )
        .unwrap();
        csv += &[
            endpoint.as_str(),
            ",devices/",
            &endpoint,
            ".pem,devices/",
            &endpoint,
            ".key
",
        ]
        .concat();
    }
    std::fs::write(dir.join("certs.csv"), &csv).unwrap();
    for source in ["devices", "certs.csv"] {
        let body = format!("certificates = \"{source}\"\ninsecure_skip_server_verification = true");
        let fleet = fleet_in(&dir, &text(SERVER, &body)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            fleet
                .security
                .as_ref()
                .unwrap()
                .to_string()
                .contains("NOT CHECKED")
        );
        let given = certificates(&fleet);
        assert_eq!(
            given.device(2).unwrap().1.certificate,
            issued.device(2).unwrap().1.certificate
        );
    }
    // A client without its files: the error names the file.
    std::fs::remove_file(devices.join("dev-0002.key")).unwrap();
    let body = "certificates = \"devices\"\ninsecure_skip_server_verification = true";
    let err = fleet_in(&dir, &text(SERVER, body))
        .unwrap()
        .credentials()
        .unwrap_err()
        .to_string();
    assert!(err.contains("dev-0002.key"), "{err}");
    std::fs::write(
        dir.join("short.csv"),
        "dev-0001,devices/dev-0001.pem,devices/dev-0001.key\n",
    )
    .unwrap();
    let body = "certificates = \"short.csv\"\ninsecure_skip_server_verification = true";
    let err = fleet_in(&dir, &text(SERVER, body))
        .unwrap()
        .credentials()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("short.csv") && err.contains("no line for dev-0002"),
        "{err}"
    );
}

#[test]
fn the_export_lists_certificates_and_keys_only_when_asked() {
    let dir = dir_with_ca("export");
    let creds = certificates(
        &fleet_in(&dir, &text("", "ca_cert = \"ca.pem\"\nca_key = \"ca.key\"")).unwrap(),
    );
    let mut csv = Vec::new();
    creds
        .export(0..3, ExportFormat::Csv, false, &mut csv)
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(lines[0], "endpoint,subject,sha256");
    let first = creds.device(0).unwrap().1;
    assert_eq!(
        lines[1],
        format!(
            "dev-0001,dev-0001,{}",
            x509::fingerprint(&first.certificate)
        )
    );
    let mut json = Vec::new();
    creds
        .export(0..3, ExportFormat::Json, false, &mut json)
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(
        rows[0]["certificate"],
        x509::certificate_pem(&first.certificate)
    );
    let shown = String::from_utf8(json).unwrap();
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let mut with_keys = Vec::new();
    creds
        .export(0..3, ExportFormat::Json, true, &mut with_keys)
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&with_keys).unwrap();
    assert_eq!(
        rows[2]["private_key"],
        x509::private_key_pem(&creds.device(2).unwrap().1.private_key)
    );
    // Debug output of the credentials shows no key.
    let shown = format!("{creds:?}");
    assert!(shown.contains("issued"), "{shown}");
    let ca_key = crate::security::x509::DeviceKey::derive(b"test ca", "Fleet CA").pkcs8_der();
    for secret in [ca_key, creds.device(2).unwrap().1.private_key] {
        assert!(!shows_secret(&shown, &secret), "{shown}");
    }
}
