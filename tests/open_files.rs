//! The open-files limit with one source address, as in a Kubernetes pod: the shared transport
//! then opens a socket per client, raises the soft limit itself, and says plainly when the hard
//! limit is too low.

use std::process::{Command, Output};

const FLEET: &str = "[client]\nlifetime = \"60s\"\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 300\nrate = 1000\nhold = \"1s\"\nstop_timeout = \"5s\"\n";

/// Runs `lwm2m-swarm ARGS` on the 300-client fleet under `ulimit` LIMITS.
fn swarm_with_limits(limits: &str, args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-open-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fleet = dir.join("one-address.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {limits} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .arg(args[0])
        .arg(&fleet)
        .args(&args[1..])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("sh runs")
}

/// Runs 300 clients on 127.0.0.1 alone (300 ports, 300 sockets) under `ulimit` LIMITS.
fn run_with_limits(limits: &str) -> Output {
    swarm_with_limits(
        limits,
        &[
            "run",
            "--no-tui",
            "--shards",
            "1",
            "--bind",
            "127.0.0.1",
            "--ports",
            "27000-27299",
        ],
    )
}

#[test]
fn the_shared_transport_raises_the_soft_limit_and_names_a_low_hard_one() {
    // Soft 128, hard untouched (above 300 + 64 on any machine that runs the tests).
    let out = run_with_limits("-Sn 128");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("registered 300"), "{stdout}");

    // Hard 128: the run is refused before anything starts, saying why and what to do.
    let out = run_with_limits("-n 128");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs 300 sockets")
            && stderr.contains("hard limit (RLIMIT_NOFILE) is 128")
            && stderr.contains("--bind")
            && stderr.contains("--shard K/N"),
        "{stderr}"
    );
    assert!(!stdout.contains("registered"), "{stdout}");
}

#[test]
fn check_states_the_host_reach_and_refuses_a_plan_past_the_hard_limit() {
    // Hard limit 1,024 here, whatever this machine allows: 30,000 sockets from one address are
    // past it. Ports 1024-65535 hold them, and overlap any ephemeral range: a warning.
    let limits = "-n 1024";
    let one_address = ["--bind", "127.0.0.1", "--shards", "1", "--clients", "30000"];
    let out = swarm_with_limits(
        limits,
        &[&["check", "--ports", "1024-65535"][..], &one_address].concat(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("  host      1 address x 64,512 ports = 64,512 clients; 30,000 asked for"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  files     30,000 sockets + 64 spare of 1,024 open files (hard limit;"),
        "{stdout}"
    );
    assert!(!stdout.contains("  layout "), "{stdout}");
    assert!(
        stderr.contains("warning: source ports 1024-65535 overlap the kernel's ephemeral range"),
        "{stderr}"
    );
    assert!(
        stderr.contains("this run needs 30,000 sockets")
            && stderr.contains("hard limit (RLIMIT_NOFILE) is 1,024")
            && stderr.contains("--bind more addresses")
            && stderr.contains("--shard K/N")
            && stderr.contains("raise the hard limit"),
        "{stderr}"
    );

    // Too few ports for them: said first.
    let out = swarm_with_limits(
        limits,
        &[&["check", "--ports", "20000-20999"][..], &one_address].concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("30,000 clients need a source address and port each")
            && stderr.contains("holds 1,000 (1 address(es) x 1,000 ports)"),
        "{stderr}"
    );

    // 300 clients from one address fit: the host line, then the layout.
    let out = swarm_with_limits(limits, &["check", "--bind", "127.0.0.1", "--shards", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("  host      1 address x "), "{stdout}");
    assert!(stdout.contains("clients; 300 asked for"), "{stdout}");
    assert!(
        stdout.contains("  files     300 sockets + 64 spare of 1,024 open files"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  layout    127.0.0.1 ports 20000-20299, 1 engine thread, shared sockets"),
        "{stdout}"
    );
    assert!(stdout.lines().all(|l| l.len() <= 100), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
}
