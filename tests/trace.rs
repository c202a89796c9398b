//! `run --trace`: a short run of the binary against the embedded server with two clients traced,
//! read back with Debian's `tshark` (a Register to /rd and its 2.01 Created), and the readable
//! message log on stderr.

#[path = "support/cli.rs"]
mod cli;

use std::process::Command;

use cli::{scratch, swarm, text};

const FLEET: &str = "[client]\nlifetime = \"60s\"\nendpoint_prefix = \"x-\"\nwidth = 4\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 20\nrate = 100\nhold = \"1s\"\nstop_timeout = \"2s\"\n";

/// The embedded server's port, from the run's first line.
fn server_port(stdout: &str) -> u16 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("embedded LWM2M server on "))
        .unwrap_or_else(|| panic!("no embedded server line in {stdout}"));
    let addr = line["embedded LWM2M server on ".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Every frame of the pcap is as late as the one before (tshark's `frame.time_epoch`).
fn assert_in_time_order(pcap: &std::path::Path) {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "frame.time_epoch"])
        .output()
        .expect("tshark runs");
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        times.len() >= 20,
        "a Register and its answer per client: {times:?}"
    );
    let backwards: Vec<(usize, &[f64])> = times
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[1] < pair[0])
        .collect();
    assert!(
        backwards.is_empty(),
        "frames going back in time: {backwards:?}"
    );
}

#[test]
fn tshark_reads_the_register_and_its_created_from_the_pcap() {
    let tshark_found = Command::new("tshark").arg("--version").output().is_ok();
    if !tshark_found {
        if std::env::var_os("CI").is_none() {
            println!(
                "skipped: tshark is not installed (scripts/install-peers installs it; CI must)"
            );
            return;
        }
        panic!(
            "tshark not found: CI installs it with scripts/install-peers (Debian package tshark)"
        );
    }
    let dir = scratch("trace-pcap");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let pcap = dir.join("T.pcap");
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--no-tui",
        "--ports",
        "23600-23649",
        "--shards",
        "2",
        "--trace",
        "x-000*",
        "--trace-file",
        pcap.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("packets of 10 clients matching \"x-000*\" written to"),
        "{stderr}"
    );
    let port = server_port(&stdout);
    // The embedded server is on a port of its own, not 5683: tshark is told it is CoAP.
    let hint = format!(
        "read it with: tshark -r {} -d udp.port=={port},coap",
        pcap.display()
    );
    assert!(stderr.contains(&hint), "{hint:?} in {stderr}");
    // Two shards hand their datagrams over separately; the file is in time order all the same.
    assert_in_time_order(&pcap);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", &format!("udp.port=={port},coap"), "-Y", "coap"])
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "ip.src",
            "-e",
            "coap.code",
            "-e",
            "coap.opt.uri_path_recon",
        ])
        .args(["-e", "coap.token", "-e", "coap.opt.uri_query"])
        .output()
        .expect("tshark runs");
    let fields = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.split('|').collect()).collect();
    // 0.02 POST is code 2, 2.01 Created is 65.
    let registers: Vec<&Vec<&str>> = rows
        .iter()
        .filter(|r| r[1] == "2" && r[2] == "/rd" && r[4].contains("ep=x-000"))
        .collect();
    assert_eq!(
        registers.len(),
        10,
        "one Register per traced client:\n{fields}"
    );
    for register in &registers {
        assert!(
            rows.iter()
                .any(|r| r[1] == "65" && r[3] == register[3] && r[0] == "127.0.0.1"),
            "no 2.01 Created from the server for token {}:\n{fields}",
            register[3]
        );
    }
    assert!(
        !fields.contains("ep=x-001"),
        "only the matching clients are traced:\n{fields}"
    );
}

#[test]
fn the_message_log_shows_a_register_and_its_created_on_stderr() {
    let dir = scratch("trace-log");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--no-tui",
        "--ports",
        "23650-23699",
        "--trace",
        "x-0003",
        "--trace-file",
        "-",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let register = stderr
        .lines()
        .find(|l| l.contains(" x-0003 -> ") && l.contains(" 0.02 POST "))
        .unwrap_or_else(|| panic!("no Register line in:\n{stderr}"));
    assert!(
        register.contains("/rd?ep=x-0003&lt=60") && register.contains("cf=link-format | </"),
        "{register}"
    );
    assert!(
        stderr.lines().any(|l| l.contains(" x-0003 <- ")
            && l.contains("ACK 2.01 Created")
            && l.contains("loc=/rd/")),
        "{stderr}"
    );
    assert!(!stderr.contains("x-0004"), "one client only:\n{stderr}");
}

#[test]
fn quiet_prints_no_progress_lines_and_a_pattern_matching_nothing_is_warned_about() {
    let dir = scratch("trace-quiet");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let args = |quiet: bool| {
        let mut args = vec![
            "run",
            fleet.to_str().unwrap(),
            "--no-tui",
            "--ports",
            "23700-23749",
            "--progress-every",
            "200ms",
            "--trace",
            "demo-*",
        ];
        if quiet {
            args.push("-q");
        }
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let loud = args(false);
    let out = swarm(&loud.iter().map(String::as_str).collect::<Vec<_>>());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("registered "), "progress lines: {stdout}");
    assert!(
        stderr.contains("warning: --trace \"demo-*\" matched no client (this fleet's endpoints are like \"x-0000\")"),
        "{stderr}"
    );
    let quiet = args(true);
    let out = swarm(&quiet.iter().map(String::as_str).collect::<Vec<_>>());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let progress = stdout.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(progress, 0, "{stdout}");
    assert!(
        stdout.contains("register "),
        "the summary is still printed: {stdout}"
    );
    assert!(stderr.is_empty(), "no warning under --quiet: {stderr}");
}

#[test]
fn rust_log_debug_shows_the_set_up_the_shards_and_the_reports() {
    let dir = scratch("trace-debug");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let json = dir.join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args(["run", fleet.to_str().unwrap(), "--no-tui", "--shards", "2"])
        .args(["--ports", "23750-23799", "--json", json.to_str().unwrap()])
        .env("RUST_LOG", "lwm2m_swarm=debug")
        .output()
        .expect("the binary runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "debug lwm2m_swarm::cli::setup: plan: 20 clients in 1 groups",
        "debug lwm2m_swarm::cli::embedded: embedded server caps: ",
        "debug lwm2m_swarm::cli::setup: engine: server 127.0.0.1:",
        "debug lwm2m_swarm::engine: shard 0: starting with 10 clients",
        "debug lwm2m_swarm::engine: shard 1: starting with 10 clients",
        "engine started: sockets bound, 2 shards, 20 clients in this process",
        "debug lwm2m_swarm::engine::shard: shard 1: stopping: ",
        "debug lwm2m_swarm::engine: shard 0: ended after ",
        "debug lwm2m_swarm::engine: shard 1: ended after ",
        "debug lwm2m_swarm::cli::embedded: embedded server stopping",
        "debug lwm2m_swarm::cli::run::reports: report written: ",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    // Nothing per datagram or per client at debug: 20 clients make far more than 40 lines.
    let lines = stderr.lines().count();
    assert!(lines < 40, "{lines} lines:\n{stderr}");
}
