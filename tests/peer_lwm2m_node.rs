//! Our fleet engine against a real third-party LWM2M server: npm `lwm2m-node-lib` 1.4.0 on
//! loopback (see `tests/peers/lwm2m-node-server.js`). 200 clients register; for each, the server
//! runs Read /3/0/0, Discover /3/0, Write /1/0/3, Read /1/0/3, Execute /1/0/8 and Observe
//! /3/0/13; the clients answer, send the Update the Execute triggers, notify, and de-register at
//! the stop. The test checks what the server saw and what our side counted.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lwm2m_swarm::client::{OperationKind, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::{Fleet, Plan};
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::model::DeviceTemplate;
use lwm2m_swarm::transport::PortRange;
use peers::NodePeer;
use serde_json::Value;

const CLIENTS: usize = 200;
const SENSORS: usize = 120;
const PREFIX: &str = "node-peer-";
/// What the server writes to /1/0/3 (Default Maximum Period) and reads back.
const WRITTEN: &str = "45";

fn fleet_toml(server: SocketAddr) -> String {
    format!(
        r#"
[server]
uri = "coap://{server}"

[client]
lwm2m = "1.1"
lifetime = "60s"
binding = "U"
# lwm2m-node-lib proxies notifications to its observer and never ACKs a CON one.
confirmable_notifications = 0.0
seed = 7
endpoint_prefix = "{PREFIX}"
width = 3

[[population]]
name = "sensors"
count = {SENSORS}
template = "environment-sensor"

[[population]]
name = "meters"
count = {meters}
template = "smart-meter"

[load]
clients = {CLIENTS}
rate = 100
hold = "6s"
stop_timeout = "10s"
"#,
        meters = CLIENTS - SENSORS,
    )
}

fn ev<'a>(events: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| e["ev"] == kind)
}

fn ep(e: &Value) -> String {
    e["ep"].as_str().unwrap_or_default().to_string()
}

/// Endpoints of the events of `kind` that succeeded, each with its count.
fn ok_by_ep(events: &[Value], kind: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in ev(events, kind).filter(|e| e["ok"] == true) {
        *out.entry(ep(e)).or_insert(0) += 1;
    }
    out
}

/// Up to `n` failed events of `kind`, for messages.
fn failures(events: &[Value], kind: &str, n: usize) -> Vec<String> {
    ev(events, kind)
        .filter(|e| e["ok"] != true)
        .take(n)
        .map(Value::to_string)
        .collect()
}

/// Panics unless `got` is exactly the expected endpoints, naming a few missing and extra ones.
fn assert_endpoints<'a>(what: &str, got: impl IntoIterator<Item = &'a String>, ctx: &str) {
    let got: BTreeSet<&String> = got.into_iter().collect();
    let expected = expected_endpoints();
    let missing: Vec<&String> = expected.iter().filter(|e| !got.contains(e)).collect();
    let extra: Vec<&&String> = got.iter().filter(|e| !expected.contains(**e)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} of {CLIENTS} endpoints; {} missing (first: {:?}), {} unexpected (first: {:?})\n{ctx}",
        got.len() - extra.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
    );
}

fn expected_endpoints() -> BTreeSet<String> {
    (0..CLIENTS).map(|i| format!("{PREFIX}{i:03}")).collect()
}

fn summary(s: &Snapshot) -> String {
    format!("{s}")
}

/// Runs the fleet against the server; returns our counts. Bounded by the plan plus a margin;
/// stops early (and fails) if node dies.
fn run_fleet(peer: &mut NodePeer) -> Snapshot {
    let fleet = Fleet::from_toml(&fleet_toml(peer.addr()), "peer_lwm2m_node.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    let devices = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = fleet.plan();
    assert_eq!(plan.clients, CLIENTS as u64);
    let limit = plan.total_duration() + Duration::from_secs(20);
    let engine = start_engine(&plan, &devices, peer.addr());
    let deadline = Instant::now() + limit;
    while !engine.is_finished() {
        if !peer.is_running() {
            engine.stop();
            panic!(
                "the lwm2m-node-lib server died during the run\n{}\nour side so far:\n{}",
                peer.report(),
                summary(&engine.snapshot())
            );
        }
        if Instant::now() > deadline {
            engine.stop();
            panic!(
                "the engine did not finish within {limit:?}\nour side so far:\n{}\n{}",
                summary(&engine.snapshot()),
                peer.report()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    engine.join().unwrap_or_else(|e| panic!("engine: {e}"))
}

/// Client source ports: the engine's default (20000 up) may be taken by another run on a shared
/// machine, so each attempt takes a block of free ones below the ephemeral range.
const PORT_BLOCK: u16 = 8;

fn free_port_block() -> PortRange {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    for attempt in 0..200u32 {
        let base = 21_000 + ((seed.wrapping_add(attempt * 7919)) % 1_400) as u16 * PORT_BLOCK;
        let free = (base..base + PORT_BLOCK).all(|p| UdpSocket::bind(("0.0.0.0", p)).is_ok());
        if free {
            return PortRange::new(base, base + PORT_BLOCK - 1).expect("a valid range");
        }
    }
    panic!("no block of {PORT_BLOCK} free UDP ports between 21000 and 32200");
}

fn start_engine(plan: &Plan, devices: &[Arc<DeviceTemplate>], server: SocketAddr) -> Engine {
    let mut config = EngineConfig::new(server);
    for attempt in 1..=5 {
        config.ports = Some(free_port_block());
        match Engine::start(plan.clone(), devices.to_vec(), &config) {
            Ok(engine) => return engine,
            // Taken between the probe and the bind: try another block.
            Err(e) if attempt < 5 && e.to_string().contains("in use") => {}
            Err(e) => panic!("engine: {e}"),
        }
    }
    unreachable!()
}

#[test]
fn two_hundred_clients_against_lwm2m_node_lib() {
    let began = Instant::now();
    let mut peer = NodePeer::start();
    let snapshot = run_fleet(&mut peer);
    // The last De-register answers are on their way to node's stdout.
    peer.wait_for(Duration::from_secs(5), |events| {
        ev(events, "deregister").count() >= CLIENTS
    });
    let events = peer.stop();
    let log = std::env::temp_dir().join("peer_lwm2m_node.events.jsonl");
    let _ = peers::save_events(&log, &events);
    let ctx = format!(
        "(all {} server events in {}; run took {:.1?})\nour side:\n{}",
        events.len(),
        log.display(),
        began.elapsed(),
        summary(&snapshot)
    );
    eprintln!("{ctx}");

    // Nothing went wrong on the server's side.
    let errors: Vec<String> = ev(&events, "error").take(5).map(Value::to_string).collect();
    assert!(errors.is_empty(), "server errors: {errors:#?}\n{ctx}");
    let expired: Vec<String> = ev(&events, "expired").map(ep).collect();
    assert!(expired.is_empty(), "lifetimes ran out: {expired:?}\n{ctx}");

    check_registrations(&events, &ctx);
    check_operations(&events, &ctx);
    let updates_seen = check_updates(&events, &ctx);
    let notifications_seen = check_notifications(&events, &ctx);
    check_our_counts(&snapshot, updates_seen, notifications_seen, &ctx);
}

/// Every endpoint registered once, with the fleet's lifetime, binding and version and an object
/// list with the Device and Server instances; and de-registered once.
fn check_registrations(events: &[Value], ctx: &str) {
    let registers: Vec<&Value> = ev(events, "register").collect();
    let names: Vec<String> = registers.iter().map(|e| ep(e)).collect();
    assert_endpoints("registered", &names, ctx);
    assert_eq!(registers.len(), CLIENTS, "one Register each\n{ctx}");
    for r in &registers {
        assert_eq!(r["lt"], "60", "{r}\n{ctx}");
        assert_eq!(r["binding"], "U", "{r}\n{ctx}");
        assert_eq!(r["lwm2m"], "1.1", "{r}\n{ctx}");
        let payload = r["payload"].as_str().unwrap_or_default();
        for link in ["</1/0>", "</3/0>"] {
            assert!(payload.contains(link), "{link} missing: {r}\n{ctx}");
        }
        assert!(!payload.contains("</0/"), "Security listed: {r}\n{ctx}");
    }
    let deregistered: Vec<String> = ev(events, "deregister").map(ep).collect();
    assert_endpoints("de-registered", &deregistered, ctx);
    assert_eq!(deregistered.len(), CLIENTS, "one De-register each\n{ctx}");
}

/// Each operation succeeded once per client, with plausible answers.
fn check_operations(events: &[Value], ctx: &str) {
    for kind in [
        "read", "discover", "write", "readback", "execute", "observe",
    ] {
        let ok = ok_by_ep(events, kind);
        let why = format!("{kind} ok (failures: {:#?})", failures(events, kind, 5));
        assert_endpoints(&why, ok.keys(), ctx);
        assert!(ok.values().all(|n| *n == 1), "{kind} twice: {ok:?}\n{ctx}");
    }
    for e in ev(events, "read") {
        assert_eq!(e["value"], "lwm2m-swarm", "Manufacturer: {e}\n{ctx}");
    }
    for e in ev(events, "discover") {
        let links = e["value"].as_str().unwrap_or_default();
        for link in ["</3/0>", "</3/0/0>", "</3/0/13>"] {
            assert!(links.contains(link), "{link} missing: {e}\n{ctx}");
        }
        assert!(!links.contains("</1/"), "another object: {e}\n{ctx}");
    }
    for e in ev(events, "readback") {
        assert_eq!(
            e["value"], WRITTEN,
            "the written value read back: {e}\n{ctx}"
        );
    }
    for e in ev(events, "observe") {
        assert!(unix_time(&e["value"]).is_some(), "Current Time: {e}\n{ctx}");
    }
}

/// The Execute of /1/0/8 made every client send an Update; returns how many the server saw.
fn check_updates(events: &[Value], ctx: &str) -> usize {
    let updated: Vec<String> = ev(events, "update").map(ep).collect();
    assert_endpoints("updated", &updated, ctx);
    assert!(updated.len() >= CLIENTS, "{} updates\n{ctx}", updated.len());
    updated.len()
}

/// Several notifications per client, the time moving on; returns how many the server saw.
fn check_notifications(events: &[Value], ctx: &str) -> usize {
    let mut notified: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in ev(events, "notify") {
        let time = unix_time(&e["value"]);
        assert!(time.is_some(), "notification: {e}\n{ctx}");
        notified.entry(ep(e)).or_default().extend(time);
    }
    assert_endpoints("notified", notified.keys(), ctx);
    for (name, times) in &notified {
        assert!(times.len() >= 2, "{name}: {times:?}\n{ctx}");
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]) && times.first() < times.last(),
            "{name}: times do not move on: {times:?}\n{ctx}"
        );
    }
    notified.values().map(Vec::len).sum()
}

/// A Current Time value as text: Unix seconds within the last two minutes.
fn unix_time(value: &Value) -> Option<i64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    value
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|t| (now - 120..=now + 5).contains(t))
}

/// Our side counted what the server saw, with no errors, timeouts or unknown operations.
fn check_our_counts(
    snapshot: &Snapshot,
    updates_seen: usize,
    notifications_seen: usize,
    ctx: &str,
) {
    let n = CLIENTS as u64;
    assert_eq!(snapshot.started, n, "{ctx}");
    let register = snapshot.request(RequestKind::Register);
    assert_eq!((register.ok, register.error), (n, 0), "Register\n{ctx}");
    let deregister = snapshot.request(RequestKind::Deregister);
    assert_eq!(
        (deregister.ok, deregister.error),
        (n, 0),
        "De-register\n{ctx}"
    );
    let update = snapshot.request(RequestKind::Update);
    assert_eq!(
        (update.ok, update.error),
        (updates_seen as u64, 0),
        "Update: ok = updates the server saw\n{ctx}"
    );
    let notify = snapshot.request(RequestKind::Notify);
    // Confirmable ones acknowledged, NON ones sent.
    let notified = notify.ok + notify.unacknowledged;
    assert!(
        notified >= notifications_seen as u64,
        "{notified} notifications sent, {notifications_seen} seen\n{ctx}"
    );
    for (kind, r) in [
        ("register", register),
        ("update", update),
        ("deregister", deregister),
        ("notify", notify),
    ] {
        assert_eq!((r.timeout, r.aborted), (0, 0), "{kind}\n{ctx}");
    }
    for (kind, total) in [
        (OperationKind::Read, 2 * n),
        (OperationKind::Discover, n),
        (OperationKind::Write, n),
        (OperationKind::Execute, n),
        (OperationKind::Observe, n),
    ] {
        let op = snapshot.operation(kind);
        assert_eq!((op.total, op.ok), (total, total), "{kind:?}\n{ctx}");
    }
    let other = snapshot.operation(OperationKind::Other);
    assert_eq!(other.total, 0, "unrecognised operations\n{ctx}");
    assert_eq!(snapshot.traffic.malformed, 0, "{ctx}");
    assert_eq!(snapshot.traffic.unmatched, 0, "{ctx}");
}
