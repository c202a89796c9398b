//! The open-files limit with one source address, as in a Kubernetes pod: the shared transport
//! then opens a socket per client, raises the soft limit itself, and says plainly when the hard
//! limit is too low.

use std::process::{Command, Output};

const FLEET: &str = "[client]\nlifetime = \"60s\"\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 300\nrate = 1000\nhold = \"1s\"\nstop_timeout = \"5s\"\n";

/// Runs 300 clients on 127.0.0.1 alone (300 ports, 300 sockets) under `ulimit` LIMITS.
fn run_with_limits(limits: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-open-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fleet = dir.join("one-address.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {limits} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args(["run", fleet.to_str().unwrap(), "--no-tui", "--shards", "1"])
        .args(["--bind", "127.0.0.1", "--ports", "27000-27299"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("sh runs")
}

#[test]
fn the_shared_transport_raises_the_soft_limit_and_names_a_low_hard_one() {
    // Soft 128, hard untouched (above 300 + 64 on any machine that runs the tests).
    let out = run_with_limits("-Sn 128");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("registered 300"), "{stdout}");

    // Hard 128: the run cannot start, and says why and what to do.
    let out = run_with_limits("-n 128");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs 300 sockets")
            && stderr.contains("hard limit 128")
            && stderr.contains("--bind"),
        "{stderr}"
    );
}
