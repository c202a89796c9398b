//! The `lwm2m-swarm` binary as a user runs it: exit codes, messages, the summary.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/cli.rs"]
mod cli;
use cli::{swarm, text};

fn write_fleet(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

const SMALL: &str = "[client]\nlifetime = \"60s\"\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 10\nrate = 100\nhold = \"1s\"\nstop_timeout = \"2s\"\n";

#[test]
fn check_prints_the_plan_of_every_shipped_fleet() {
    for fleet in [
        "fleets/demo.toml",
        "fleets/sleepy-meters.toml",
        "fleets/registration-storm.toml",
        "fleets/notification-flood.toml",
        "fleets/dtls-psk.toml",
    ] {
        let out = swarm(&["check", fleet]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{fleet}: {stderr}");
        assert!(stdout.contains("clients"), "{stdout}");
        assert!(stdout.contains("  layout    "), "{stdout}");
        assert!(stdout.contains(" engine thread"), "{stdout}");
        assert!(stdout.contains("  security  "), "{stdout}");
    }
    // Overrides show in the plan.
    let out = swarm(&[
        "check",
        "fleets/demo.toml",
        "--clients",
        "50",
        "--rate",
        "5",
        "--duration",
        "30s",
    ]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("clients   50 "), "{stdout}");
    assert!(stdout.contains("ramp      5 clients/s"), "{stdout}");
    assert!(stdout.contains("duration  30s"), "{stdout}");
}

#[test]
fn bad_input_exits_2_naming_file_line_and_field() {
    let broken = write_fleet("broken.toml", &SMALL.replace("rate = 100", "rate = -1"));
    let out = swarm(&["check", broken.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.toml:"), "{stderr}");
    assert!(stderr.contains("field `rate`"), "{stderr}");

    let unknown = write_fleet("unknown.toml", &format!("{SMALL}colour = \"red\"\n"));
    let out = swarm(&["run", unknown.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");

    // A bad option value (its messages are checked in-process, src/cli/tests.rs) exits 2 too.
    let out = swarm(&["run", "fleets/demo.toml", "--server", "http://x"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("'--server <SERVER>'"), "{stderr}");
    let out = swarm(&["check", "fleets/no-such-fleet.toml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no-such-fleet.toml"), "{stderr}");
    // IPv6 sources for an IPv4 server, whatever the transport: refused by check too.
    for transport in ["shared", "per-client"] {
        let out = swarm(&[
            "check",
            "fleets/demo.toml",
            "--bind",
            "fd00:5::/64",
            "--transport",
            transport,
        ]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{transport}: {stderr}");
        assert!(
            stderr.contains("different IP families"),
            "{transport}: {stderr}"
        );
    }
}

#[test]
fn run_against_the_embedded_server_prints_progress_and_a_summary() {
    let fleet = write_fleet("small.toml", SMALL);
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--no-tui",
        "--ports",
        "22000-22099",
        "--progress-every",
        "500ms",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("embedded LWM2M server on 127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("registered 10"), "{stdout}");
    let register = stdout
        .lines()
        .find(|l| l.starts_with("register "))
        .expect("a register row");
    let numbers: Vec<&str> = register.split_whitespace().collect();
    assert_eq!(&numbers[1..3], ["10", "10"], "{register}");
    let deregister = stdout
        .lines()
        .find(|l| l.starts_with("deregister "))
        .expect("a deregister row");
    assert!(deregister.contains(" 10 "), "{deregister}");
    assert!(
        stdout.contains("embedded server: registered 0, registers 10"),
        "{stdout}"
    );
    // Nothing wraps on a terminal: the header, the layout, progress and summary fit.
    let wide: Vec<&str> = stdout.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(wide.is_empty(), "lines over 100 columns: {wide:#?}");
    // The layout in a few words: which sources, how many engine threads.
    let header = stdout
        .find(" clients against ")
        .and_then(|at| stdout[at..].split("; at most ").next())
        .expect("the run's header");
    assert!(header.contains(":22000"), "{header}");
    assert!(header.contains(" engine thread"), "{header}");
}

#[test]
fn a_server_that_never_answers_exits_3() {
    // A bound socket that never reads: datagrams to it vanish without an ICMP error.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uri = format!("coap://{}", silent.local_addr().unwrap());
    let fleet = write_fleet("silent.toml", SMALL);
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--server",
        &uri,
        "--duration",
        "1s",
        "--ports",
        "22100-22199",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("never answered"), "{stderr}");
    // Every Register is accounted for: aborted at the end of the stop timeout, none in flight.
    let register = stdout
        .lines()
        .find(|l| l.starts_with("register "))
        .expect("a register row");
    let numbers: Vec<u64> = register
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|n| n.parse().unwrap())
        .collect();
    let [sent, ok, error, timeout, aborted, _non, in_flight] = numbers[..] else {
        panic!("{register}");
    };
    assert_eq!(sent, 10, "{register}");
    assert_eq!((ok, error, in_flight), (0, 0, 0), "{register}");
    assert_eq!(timeout + aborted, 10, "{register}");
}

/// A fleet with `[security]` and no server runs against the embedded server over DTLS.
#[test]
fn the_dtls_demo_fleet_runs_against_the_embedded_server() {
    let json = write_fleet("dtls-demo.json", "");
    let out = swarm(&[
        "run",
        "fleets/dtls-demo.toml",
        "--no-tui",
        "--duration",
        "2s",
        "--ports",
        "24500-24599",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("over DTLS (PSK, 200 identities)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("against embedded coaps://127.0.0.1:"),
        "{stdout}"
    );
    // Both sides counted the handshakes: the clients' summary and the server's line.
    let clients = stdout
        .lines()
        .find(|l| l.starts_with("dtls handshakes: ok "))
        .expect("a handshake line");
    let ok: u64 = clients["dtls handshakes: ok ".len()..]
        .split(',')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("a count");
    assert!(ok >= 100, "{clients}");
    assert!(clients.contains("failed 0"), "{clients}");
    let server = cli::broken_line(&stdout, "embedded server: ").expect("the server's line");
    assert!(
        server.contains(&format!("handshakes ok {ok} failed 0")),
        "{server}"
    );
    assert!(server.contains("registered 0"), "{server}");
    // The report has the same handshakes, their latency histogram, and no key.
    let report = std::fs::read_to_string(&json).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&report).unwrap();
    let handshakes = &parsed["dtls_handshakes"];
    assert_eq!(handshakes["ok"], ok, "{handshakes}");
    assert_eq!(handshakes["failed"], 0, "{handshakes}");
    assert_eq!(handshakes["latency_us"]["count"], ok, "{handshakes}");
    assert!(!handshakes["hdr"].as_str().unwrap().is_empty());
    // The derived keys stay out of everything printed and written.
    for output in [&stdout, &report] {
        assert!(
            !output.contains("00112233445566778899aabbccddeeff"),
            "{output}"
        );
    }
    // `report` reads it back: the same handshake line.
    let merged = swarm(&["report", json.to_str().unwrap()]);
    let (merged_out, merged_err) = text(&merged);
    assert!(merged.status.success(), "{merged_out}\n{merged_err}");
    assert!(merged_out.contains(clients), "{clients}\n{merged_out}");
}

#[test]
fn serve_speaks_dtls_with_one_key() {
    let out = swarm(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "1s",
        "--psk-key",
        "5ec12e75ec12e75ec12e75ec12e75ec1",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("over DTLS (PSK, one key for every identity)"),
        "{stdout}"
    );
    assert!(!stdout.contains("5ec12e7"), "{stdout}");

    let out = swarm(&["serve", "--psk-key", "5ec12e7z", "--duration", "1s"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--psk-key: not a hex key"), "{stderr}");
    assert!(!stderr.contains("5ec12e7"), "{stderr}");
}

#[test]
fn serve_runs_alone_for_a_while() {
    let out = swarm(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "1s",
        "--read",
        "/3/0/0@10s",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("LWM2M server on 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("read /3/0/0 every 10s"), "{stdout}");
    assert!(stdout.contains("registers 0"), "{stdout}");
}

#[test]
fn ctrl_c_deregisters_everyone_and_exits_130() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let fleet = write_fleet("interrupted.toml", SMALL);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args([
            "run",
            fleet.to_str().unwrap(),
            "--duration",
            "1h",
            "--ports",
            "22200-22299",
            "--progress-every",
            "200ms",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("registered 10 ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(line) = lines.recv_timeout(left) {
            seen.push(line);
        } else {
            let _ = child.kill();
            panic!("never saw 10 registered clients: {seen:#?}");
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(15)) {
        seen.push(line);
    }
    let exit = child.wait().unwrap();
    let all = seen.join("\n");
    assert_eq!(exit.code(), Some(130), "{all}");
    assert!(all.contains("interrupted: de-registering"), "{all}");
    let deregister = seen
        .iter()
        .find(|l| l.starts_with("deregister "))
        .unwrap_or_else(|| panic!("no summary: {all}"));
    let numbers: Vec<&str> = deregister.split_whitespace().collect();
    assert_eq!(&numbers[1..3], ["10", "10"], "{deregister}");
}

// `fleets/dtls-psk.toml`'s master secret and the keys it gives its first and last client:
// python3 -c "import hmac,hashlib; m=bytes.fromhex('000102030405060708090a0b0c0d0e0f');
//   print(hmac.new(m, b'psk-0000', hashlib.sha256).hexdigest()[:32])"  (and b'psk-0999')
const PSK_MASTER: &str = "000102030405060708090a0b0c0d0e0f";
const PSK_0000: &str = "2934e76c307bf0491aa8e7f0550a2651";
const PSK_0999: &str = "6d920b312295c689e14e9554fcfe78da";

#[test]
fn check_describes_the_security_without_the_key() {
    let out = swarm(&["check", "fleets/dtls-psk.toml"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "security  psk, identity \"{endpoint}\", key: derived hmac-sha256 (16 bytes)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("server    coaps://127.0.0.1:5684"),
        "{stdout}"
    );
    for secret in [PSK_MASTER, PSK_0000] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}"
        );
    }
    let out = swarm(&["check", "fleets/demo.toml"]);
    assert!(text(&out).0.contains("security  none (NoSec)"));

    // The command line replaces the file's identity and key.
    let key = "5ec12e75ec12e75ec12e75ec12e75ec1";
    let out = swarm(&[
        "check",
        "fleets/dtls-psk.toml",
        "--psk-identity",
        "dev{number}",
        "--psk-key",
        key,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("security  psk, identity \"dev{number}\", key: fixed (16 bytes)"),
        "{stdout}"
    );
    assert!(!stdout.contains(key), "{stdout}");
}

#[test]
fn credentials_exports_every_client_as_csv_or_json() {
    let out = swarm(&["credentials", "fleets/dtls-psk.toml", "--format", "csv"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1001, "{stderr}");
    assert_eq!(lines[0], "endpoint,identity,key");
    assert_eq!(lines[1], format!("psk-0000,psk-0000,{PSK_0000}"));
    assert_eq!(lines[1000], format!("psk-0999,psk-0999,{PSK_0999}"));

    let path = write_fleet("exported.json", "");
    // A new file: an existing one keeps its mode.
    std::fs::remove_file(&path).unwrap();
    let out = swarm(&[
        "credentials",
        "fleets/dtls-psk.toml",
        "--format",
        "json",
        "--output",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(out.stdout.is_empty());
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[999]["endpoint"], "psk-0999");
    assert_eq!(rows[999]["identity"], "psk-0999");
    assert_eq!(rows[999]["key"], PSK_0999);
    // Keys: readable by their owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[test]
fn credentials_take_the_command_line_and_the_environment() {
    let out = swarm(&[
        "credentials",
        "fleets/dtls-psk.toml",
        "--clients",
        "2",
        "--psk-identity",
        "id-{index}",
        "--psk-key",
        "00ff",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "endpoint,identity,key\npsk-0000,id-0,00ff\npsk-0001,id-1,00ff\n"
    );

    // The master from an environment variable: the same keys as the file's master gives.
    let fleet = std::fs::read_to_string("fleets/dtls-psk.toml")
        .unwrap()
        .replace(PSK_MASTER, "env:SWARM_TEST_MASTER");
    let path = write_fleet("env-master.toml", &fleet);
    let run = |value: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"));
        command
            .args(["credentials", path.to_str().unwrap(), "--clients", "1"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("SWARM_TEST_MASTER");
        if let Some(value) = value {
            command.env("SWARM_TEST_MASTER", value);
        }
        command.output().unwrap()
    };
    let out = run(Some(PSK_MASTER));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.ends_with(&format!("psk-0000,psk-0000,{PSK_0000}\n")),
        "{stdout}"
    );
    let out = run(None);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("field `derive.master`: environment variable SWARM_TEST_MASTER is not set"),
        "{stderr}"
    );
}

#[test]
fn credentials_refuse_what_has_none() {
    let out = swarm(&["credentials", "fleets/demo.toml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no [security] table"), "{stderr}");
    // A bad key on the command line is reported without being quoted back.
    let out = swarm(&["check", "fleets/dtls-psk.toml", "--psk-key", "5ec12e7x"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--psk-key: not a hex key"), "{stderr}");
    assert!(!stderr.contains("5ec12e7"), "{stderr}");
    // run's options are named as run's, not guessed from their spelling (`--private-keys`).
    let out = swarm(&["credentials", "fleets/dtls-psk.toml", "--rate", "5"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.starts_with("lwm2m-swarm: credentials takes no --rate: it is an option of run"),
        "{stderr}"
    );
    // A missing fleet file in plain words.
    let out = swarm(&["run", "fleets/nope.toml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr.trim_end(),
        "lwm2m-swarm: fleets/nope.toml: cannot read: no such file"
    );
}

/// Keys appear in `credentials` output only: not in what `run` prints, its JSON report (whose
/// config holds the command line) or its errors.
#[test]
fn run_never_shows_a_key() {
    let key = "5ec12e75ec12e75ec12e75ec12e75ec1";
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uri = format!("coaps://{}", silent.local_addr().unwrap());
    let json = write_fleet("leak-report.json", "");
    std::fs::remove_file(&json).unwrap();
    let fleet = write_fleet("leak.toml", SMALL);
    let mut outputs = Vec::new();
    let mut codes = Vec::new();
    for extra in [
        // Against a coaps:// server, with the key in --psk-key.
        &["--server", uri.as_str(), "--psk-key", key][..],
        // Against a plain coap:// server: refused, naming no key.
        &["--psk-key", key, "--server", "coap://127.0.0.1:9"][..],
        &[&format!("--psk-key={key}"), "--server", uri.as_str()][..],
    ] {
        let mut args = vec![
            "run",
            fleet.to_str().unwrap(),
            "--no-tui",
            "--duration",
            "1s",
            "--ports",
            "22300-22399",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = swarm(&args);
        let (stdout, stderr) = text(&out);
        assert_ne!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        codes.push(out.status.code());
        outputs.push(stdout);
        outputs.push(stderr);
    }
    // The silent coaps:// server never finished a handshake: it never answered.
    assert_eq!(codes[0], Some(3), "{outputs:#?}");
    assert!(outputs[1].contains("handshakes begun"), "{}", outputs[1]);
    // The DTLS run against a silent server writes its report: the security without the key.
    let report = std::fs::read_to_string(&json).expect("the coaps:// run wrote its report");
    assert!(report.contains("key: fixed (16 bytes)"), "{report}");
    assert!(report.contains("<hidden>"), "{report}");
    outputs.push(report);
    assert!(
        outputs[3].contains("need a coaps:// server"),
        "{}",
        outputs[3]
    );
    for output in &outputs {
        assert!(!output.contains(key), "{output}");
        assert!(!output.contains("5ec12e75ec"), "{output}");
    }
}

#[test]
fn a_tcp_server_that_refuses_every_connection_exits_3() {
    // Bound, never listening (port 25650): every SYN is answered with RST.
    let closed = std::net::TcpListener::bind("127.0.0.1:25650").unwrap();
    drop(closed);
    let fleet = write_fleet("refused.toml", SMALL);
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--server",
        "coap+tcp://127.0.0.1:25650",
        "--duration",
        "1s",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("10 connections begun"), "{stderr}");
    assert!(stdout.contains("one TCP connection per client"), "{stdout}");
    assert!(
        stdout.contains("tcp connections: ok 0, failed 10, aborted 0")
            && stdout.contains("failures: refused x10"),
        "{stdout}"
    );
}

#[test]
fn check_describes_tls_and_the_open_files_budget() {
    let body = format!(
        "[server]\nuri = \"coaps+tcp://localhost:25651\"\n[tls]\ninsecure_skip_verify = true\n{SMALL}"
    );
    let fleet = write_fleet("tls.toml", &body);
    let out = swarm(&["check", fleet.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("binding T"), "{stdout}");
    assert!(stdout.contains("tls       INSECURE"), "{stdout}");
    assert!(stdout.contains("one TLS connection per client"), "{stdout}");
    assert!(stdout.contains("files     10 TCP connections"), "{stdout}");
    // More clients than the open-files hard limit allows: said before anything runs.
    let out = swarm(&["check", fleet.to_str().unwrap(), "--clients", "1000000"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("this run needs 1,000,000 sockets (one TCP connection per client)"),
        "{stderr}"
    );
}
