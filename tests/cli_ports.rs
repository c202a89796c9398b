//! Client source ports: when another process holds part of the default range, `run` moves up
//! past it and says where; with `--ports` given it fails naming the port instead.

use std::net::UdpSocket;

#[path = "support/cli.rs"]
mod cli;
use cli::{scratch, swarm, text};

const SMALL: &str = "[client]\nlifetime = \"60s\"\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 4\nrate = 100\nhold = \"500ms\"\nstop_timeout = \"2s\"\n";

/// The first default client port (20000), held as another run's shared socket would hold it.
/// Someone else may hold it already: it is taken either way.
fn hold_first_default_port() -> Option<UdpSocket> {
    match UdpSocket::bind("0.0.0.0:20000") {
        Ok(socket) => Some(socket),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("cannot bind 0.0.0.0:20000: {e}"),
    }
}

#[test]
fn a_taken_default_port_moves_the_clients_up_and_says_where() {
    let dir = scratch("ports");
    let fleet = dir.join("small.toml");
    std::fs::write(&fleet, SMALL).unwrap();
    let _held = hold_first_default_port();
    let out = swarm(&["run", fleet.to_str().unwrap(), "--no-tui", "--shards", "1"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("is in use (another run on this host?): using ports "))
        .unwrap_or_else(|| panic!("no line naming the ports used: {stdout}"));
    let used = line.rsplit("using ports ").next().unwrap();
    let first: u16 = used.split('-').next().unwrap().parse().unwrap();
    assert!(first > 20_000, "{line}");
    // The plan line names the same ports, and every client registered from them.
    assert!(stdout.contains(&format!("ports {first}-")), "{stdout}");
    let register = stdout
        .lines()
        .find(|l| l.starts_with("register "))
        .expect("a register row");
    let numbers: Vec<&str> = register.split_whitespace().collect();
    assert_eq!(&numbers[1..3], ["4", "4"], "{register}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_taken_port_of_explicit_ports_fails_naming_it() {
    let dir = scratch("explicit-ports");
    let fleet = dir.join("small.toml");
    std::fs::write(&fleet, SMALL).unwrap();
    let held = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let range = format!("{port}-{port}");
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--no-tui",
        "--shards",
        "1",
        "--ports",
        &range,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("client port {port} of --ports {range} is taken")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
