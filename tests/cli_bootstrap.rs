//! The binary with bootstrapping fleets: the shipped demos against the embedded pair, and a
//! fleet against `serve --bootstrap`. Client ports 25300-25399, servers on 25400-25401.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
use cli::{swarm, text};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-cli-bs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn check_says_the_server_is_a_bootstrap_server() {
    let out = swarm(&["check", "fleets/bootstrap-demo.toml"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("server    embedded (a bootstrap server, and the LWM2M server"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bootstrap Bootstrap-Request first, Finish within 1m33s"),
        "{stdout}"
    );
}

#[test]
fn the_bootstrap_demo_runs_out_of_the_box() {
    let json = temp("bootstrap.json");
    let log = temp("bootstrap.hlog");
    let out = swarm(&[
        "run",
        "fleets/bootstrap-demo.toml",
        "--clients",
        "40",
        "--rate",
        "40",
        "--duration",
        "3s",
        "--no-tui",
        "--ports",
        "25300-25339",
        "--json",
        json.to_str().unwrap(),
        "--hdr-log",
        log.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("against embedded bootstrap coap://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bootstraps: finished 40, failed 0, aborted 0"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("embedded bootstrap server: bootstrap requests 40 (rejected 0), finished 40"),
        "{stdout}"
    );
    assert!(
        stdout.contains("embedded server: registered 0, registers 40,"),
        "{stdout}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let bootstrap = &report["requests"]["bootstrap"];
    assert_eq!(bootstrap["sent"], 40);
    assert_eq!(bootstrap["ok"], 40);
    assert_eq!(bootstrap["codes"]["2.04"], 40);
    assert_eq!(report["bootstrap"]["finished"], 40);
    assert_eq!(report["bootstrap"]["duration_us"]["count"], 40);
    assert!(
        report["bootstrap"]["hdr"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    assert!(report["clients"]["peak"]["bootstrapping"].as_u64() > Some(0));
    assert_eq!(report["server_operations"]["bootstrap-finish"]["ok"], 40);
    assert_eq!(report["requests"]["register"]["ok"], 40);
    // The interval log has the Bootstrap-Request's histogram too.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("Tag=bootstrap,"), "{log}");
    let thresholds = report["thresholds"].as_array().unwrap();
    assert!(
        thresholds.iter().all(|t| t["passed"] == true),
        "{thresholds:?}"
    );
}

#[test]
fn the_dtls_bootstrap_demo_runs_out_of_the_box() {
    let out = swarm(&[
        "run",
        "fleets/bootstrap-dtls-demo.toml",
        "--clients",
        "20",
        "--duration",
        "3s",
        "--no-tui",
        "--ports",
        "25360-25399",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("embedded coaps://") || stdout.contains("bootstrap coaps://"),
        "{stdout}"
    );
    assert!(
        stdout.contains("dtls handshakes: ok 40, failed 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bootstraps: finished 20, failed 0"),
        "{stdout}"
    );
    // The keys: each server counted its own 20 handshakes.
    assert_eq!(
        stdout.matches("handshakes ok 20 failed 0").count(),
        2,
        "{stdout}"
    );
}

#[test]
fn a_fleet_bootstraps_from_serve_bootstrap() {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:25400",
            "--bootstrap",
            "127.0.0.1:25401",
            "--bootstrap-lifetime",
            "2m",
            "--duration",
            "8s",
            "--status-every",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    // It says what it serves once both servers are bound: read its stdout on a thread.
    let stdout = serve.stdout.take().expect("piped stdout");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("behind a bootstrap server") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    ready
        .recv_timeout(Duration::from_secs(30))
        .expect("serve says it serves within 30 s");
    let fleet = temp("external.toml");
    std::fs::write(
        &fleet,
        "[server]\nuri = \"coap://127.0.0.1:25401\"\n[bootstrap]\n\
         [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = 15\nrate = 50\nhold = \"1s\"\nstop_timeout = \"3s\"\n",
    )
    .unwrap();
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--no-tui",
        "--ports",
        "25340-25359",
    ]);
    let (stdout, stderr) = text(&out);
    let served = serve.wait_with_output().expect("serve ends by itself");
    let (_, served_err) = text(&served);
    let served_out = reader.join().expect("stdout reader");
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n{served_out}\n{served_err}"
    );
    assert!(
        stdout.contains("against coap://127.0.0.1:25401"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bootstraps: finished 15, failed 0"),
        "{stdout}"
    );
    assert!(served.status.success(), "{served_err}");
    assert!(
        served_out.contains("LWM2M server behind a bootstrap server: bootstrap coap://127.0.0.1:25401, then coap://127.0.0.1:25400"),
        "{served_out}"
    );
    assert!(
        served_out
            .contains("embedded bootstrap server: bootstrap requests 15 (rejected 0), finished 15"),
        "{served_out}"
    );
    assert!(
        served_out
            .contains("embedded server: registered 0, registers 15, updates 0, deregisters 15"),
        "{served_out}"
    );
}
