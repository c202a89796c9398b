//! Certificate mode as a user runs it: the demo fleet against the embedded server, the export
//! of device certificates (keys only on request, only into owner-only files) read back by a
//! fleet, and no private key in anything printed.

use std::os::unix::fs::PermissionsExt;

#[path = "support/cli.rs"]
mod cli;
use cli::{scratch, swarm, text};

/// The middle line of the demo CA's key: it must never be printed.
fn demo_key_line() -> String {
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fleets/certs/demo-ca.key"
    ))
    .unwrap();
    key.lines().nth(1).unwrap().to_string()
}

/// The count after `prefix` in the line that starts with it.
fn count_after(stdout: &str, prefix: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.contains(prefix))
        .unwrap_or_else(|| panic!("{prefix:?} in {stdout}"));
    let at = line.find(prefix).unwrap() + prefix.len();
    line[at..]
        .split([',', ' '])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn the_x509_demo_fleet_runs_against_the_embedded_server() {
    let dir = scratch("demo");
    let json = dir.join("result.json");
    let out = swarm(&[
        "run",
        "fleets/dtls-x509-demo.toml",
        "--no-tui",
        // Unoptimised ECDSA is slow (both ends run here): a few clients, time to finish.
        "--clients",
        "10",
        "--rate",
        "20",
        "--duration",
        "8s",
        "--ports",
        "26000-26099",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("over DTLS (certificates issued by the fleet's CA)"),
        "{stdout}"
    );
    let ok = count_after(&stdout, "dtls handshakes: ok ");
    assert_eq!(ok, 10, "{stdout}");
    assert!(
        stdout.contains(&format!("dtls handshakes: ok {ok}, failed 0")),
        "{stdout}"
    );
    let server = cli::broken_line(&stdout, "embedded server: ").expect("the server's line");
    assert!(
        server.contains(&format!("handshakes ok {ok} failed 0")),
        "{server}"
    );
    assert!(
        server.contains("registers 10,") && server.contains("deregisters 10,"),
        "{server}"
    );
    let report = std::fs::read_to_string(&json).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(parsed["dtls_handshakes"]["ok"], ok);
    assert!(
        parsed["config"]["security"]
            .as_str()
            .unwrap()
            .starts_with("certificate, issued by")
    );
    for output in [&stdout, &stderr, &report] {
        assert!(!output.contains(&demo_key_line()), "{output}");
        assert!(!output.contains("PRIVATE KEY"), "{output}");
    }
}

#[test]
fn check_describes_certificate_mode() {
    let out = swarm(&["check", "fleets/dtls-x509-demo.toml"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "security  certificate, issued by fleets/certs/demo-ca.pem (CN = endpoint, keys \
             derived from the CA key); server checked against the fleet CA"
        ),
        "{stdout}"
    );
}

#[test]
fn certificates_export_with_keys_only_into_private_files_and_read_back() {
    let fleet = "fleets/dtls-x509-demo.toml";
    let out = swarm(&["credentials", fleet, "--clients", "3"]);
    let (csv, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "endpoint,subject,sha256");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1].starts_with("x509-0000,x509-0000,"), "{csv}");
    // Same certificate, same fingerprint, every time.
    assert_eq!(
        text(&swarm(&["credentials", fleet, "--clients", "3"])).0,
        csv
    );

    let out = swarm(&["credentials", fleet, "--clients", "3", "--format", "json"]);
    let (json, _) = text(&out);
    assert!(
        json.contains("BEGIN CERTIFICATE") && !json.contains("PRIVATE KEY"),
        "{json}"
    );

    // Keys never go to the terminal.
    let out = swarm(&[
        "credentials",
        fleet,
        "--clients",
        "3",
        "--format",
        "json",
        "--private-keys",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stderr.contains("to a file only"), "{stderr}");
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");

    let dir = scratch("export");
    let devices = dir.join("devices");
    let out = swarm(&[
        "credentials",
        fleet,
        "--clients",
        "3",
        "--output-dir",
        devices.to_str().unwrap(),
        "--private-keys",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(out.stdout.is_empty(), "nothing printed");
    let mode = |p: &str| {
        std::fs::metadata(devices.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("x509-0001.key"), 0o600);
    assert_ne!(
        mode("x509-0001.pem") & 0o044,
        0,
        "certificates are not secret"
    );
    let key = std::fs::read_to_string(devices.join("x509-0001.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");

    // A fleet that takes these files presents the same certificates.
    let own = dir.join("own.toml");
    std::fs::write(
        &own,
        "[server]\nuri = \"coaps://127.0.0.1:5684\"\n\
         [client]\nendpoint_prefix = \"x509-\"\nwidth = 4\n\
         [security]\nmode = \"certificate\"\ncertificates = \"devices\"\n\
         insecure_skip_server_verification = true\n\
         [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = 3\nrate = 10\nhold = \"1s\"\n",
    )
    .unwrap();
    let out = swarm(&["credentials", own.to_str().unwrap()]);
    let (again, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(again, csv);
    let out = swarm(&["check", own.to_str().unwrap()]);
    assert!(
        text(&out)
            .0
            .contains("server certificate NOT CHECKED (insecure)"),
        "{}",
        text(&out).0
    );
}
