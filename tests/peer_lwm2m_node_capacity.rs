//! `capacity` against a real third-party server, npm `lwm2m-node-lib` (see
//! `tests/peers/lwm2m-node-server.js`): a short search, bounded by a count threshold so it fails
//! at a reachable step, ends with its `capacity:` line, and every step's clients registered at
//! that server under fresh endpoint names.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use std::collections::BTreeSet;

use cli::{scratch, swarm, text};
use peers::NodePeer;

#[test]
fn capacity_against_lwm2m_node_lib_ends_with_its_line() {
    let peer = NodePeer::start();
    let dir = scratch("capacity-node");
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[server]\nuri = \"coap://{}\"\n\
             [client]\nlifetime = \"60s\"\nconfirmable_notifications = 0.0\n\
             endpoint_prefix = \"cap-node-\"\nwidth = 3\n\
             [[population]]\nname = \"sensors\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
             [load]\nclients = 10\nrate = 10\nhold = \"1s\"\nstop_timeout = \"5s\"\n",
            peer.addr()
        ),
    )
    .unwrap();
    let json = dir.join("steps.json");
    // 5/s, 10/s and 20/s send at most 20 Registers a step; 40/s and then 30/s send more.
    let out = swarm(&[
        "capacity",
        fleet.to_str().unwrap(),
        "--start",
        "5",
        "--factor",
        "2",
        "--step",
        "1s",
        "--hold",
        "500ms",
        "--max",
        "40",
        "--refine",
        "1",
        "--threshold",
        "register.error_rate<1%",
        "--threshold",
        "register.sent<=20",
        "--shards",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    let events = peer.stop();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("capacity: "), "{stdout}");
    assert!(
        last.ends_with("registrations/s (next step 30/s failed: register.sent = 30)")
            || last.contains("failed: register.error_rate = "),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert!((2..=5).contains(&steps.len()), "{stdout}");
    // Every Register our side counted as answered reached node, each a new endpoint.
    let registered: BTreeSet<String> = events
        .iter()
        .filter(|e| e["ev"] == "register")
        .filter_map(|e| e["ep"].as_str().map(str::to_string))
        .collect();
    let ok: u64 = steps
        .iter()
        .flat_map(|s| s["requests"].as_array().unwrap())
        .filter(|r| r["kind"] == "register")
        .map(|r| r["ok"].as_u64().unwrap())
        .sum();
    assert!(ok >= 35, "{stdout}");
    assert_eq!(registered.len() as u64, ok, "{stdout}");
    assert!(registered.iter().all(|ep| ep.starts_with("cap-node-")));
    let _ = std::fs::remove_dir_all(&dir);
}
