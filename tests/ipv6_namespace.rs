//! 100,000 clients over IPv6, each from an address of its own, against the embedded server on the
//! same prefix: both ends inside a network namespace this test makes, where the prefix is routed
//! to the host (Linux "`AnyIP`": `ip -6 route add local PREFIX dev lo`) and the shared transport
//! sends from any address of it with a handful of sockets.
//!
//! Needs root and iproute2 (`ip netns`), as CI has; elsewhere it says why it did not run.

use std::process::Command;
use std::time::Instant;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod serve;
use cli::scratch;
use serve::{Serve, peak_registered};

const PREFIX: &str = "fd00:5::/64";
/// Outside the clients' addresses (`fd00:5::1` onwards, one per client).
const SERVER: &str = "fd00:5::ff:1";
const CLIENTS: u64 = 100_000;

/// A network namespace, deleted on drop.
struct Namespace(String);

impl Namespace {
    /// A new namespace with loopback up, `SERVER` on it and `PREFIX` routed to it; `Err` says why
    /// one cannot be made here.
    fn create() -> Result<Namespace, String> {
        let name = format!("lwm2m-swarm-v6-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Namespace(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns.0,
            "-6",
            "addr",
            "add",
            &format!("{SERVER}/128"),
            "dev",
            "lo",
        ])?;
        ip(&[
            "-n", &ns.0, "-6", "route", "add", "local", PREFIX, "dev", "lo",
        ])?;
        Ok(ns)
    }

    /// The binary with `args`, run inside the namespace.
    fn swarm(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.0, env!("CARGO_BIN_EXE_lwm2m-swarm")])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn a_hundred_thousand_clients_each_from_its_own_ipv6_address() {
    let ns = match Namespace::create() {
        Ok(ns) => ns,
        Err(why) if std::env::var_os("CI").is_none() => {
            println!("skipped: no network namespace here ({why}); CI runs this as root");
            return;
        }
        Err(why) => panic!("CI must be able to make a network namespace: {why}"),
    };
    let server_addr = format!("[{SERVER}]:5683");
    let server = Serve::start(ns.swarm(&[
        "serve",
        "--bind",
        &server_addr,
        "--duration",
        "240s",
        "--status-every",
        "1s",
    ]));

    let dir = scratch("ipv6-namespace");
    let json = dir.join("run.json");
    let (clients, uri) = (CLIENTS.to_string(), format!("coap://{server_addr}"));
    let started = Instant::now();
    let run = ns
        .swarm(&[
            "run",
            "fleets/registration-storm.toml",
            "--server",
            &uri,
            "--bind",
            PREFIX,
            "--clients",
            &clients,
            "--rate",
            "2500",
            "--duration",
            "90s",
            "--no-tui",
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .expect("the run starts");
    let run_out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "run failed after {:?}:\n{run_out}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&run.stderr)
    );
    // Addresses of the prefix, one per client, on a port per engine shard.
    assert!(run_out.contains("addresses [fd00:5::1]:"), "{run_out}");

    let server_out = server.stop();
    let peak = peak_registered(&server_out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let requests = &report["requests"];
    for kind in ["register", "deregister"] {
        let r = &requests[kind];
        assert_eq!(r["sent"], CLIENTS, "{kind}: {r}");
        assert_eq!(r["ok"], CLIENTS, "{kind}: {r}");
    }
    assert_eq!(peak, CLIENTS, "the server's status lines:\n{server_out}");
    // The figures, for `-- --nocapture`: the run's summary and the server's peak.
    let summary = run_out.lines().skip_while(|l| !l.starts_with("request "));
    println!("{}", summary.collect::<Vec<_>>().join("\n"));
    println!(
        "server peak: {peak} registrations; run took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(dir);
}
