//! The emulated link (`[network]`) end to end over loopback UDP: 20% loss both ways costs the
//! retransmissions CoAP's reliability predicts, 100 ms each way shows in Register's latency,
//! duplicates and reordering are absorbed, and clients whose NAT mapping changes keep working
//! from their new address, against the embedded server (shared and per-client sockets) and
//! against lwm2m-node-lib; over DTLS, a lossy slow link and what a rebinding does to a session.
//! Each test has its own block of 100 client ports from 26100 up.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accounting::{assert_accounted, assert_consistent};
use lwm2m_swarm::client::{ClientConfig, OperationKind, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig, TransportKind};
use lwm2m_swarm::fleet::Credentials;
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::model::Path;
use lwm2m_swarm::security::dtls::ServerKeys;
use lwm2m_swarm::server::{DtlsServerConfig, Runner, ServerConfig, ServerStats};
use lwm2m_swarm::transport::PortRange;
use peers::NodePeer;
use serde_json::Value;

/// Runs `fleet_toml` against `server` with each client config changed by `tweak`; calls
/// `during` about every 100 ms; returns the final counts. Bounded by the plan plus a margin.
fn run(
    fleet_toml: &str,
    server: SocketAddr,
    transport: TransportKind,
    first_port: u16,
    tweak: impl Fn(&mut ClientConfig),
    mut during: impl FnMut(&Snapshot),
) -> Snapshot {
    let fleet = Fleet::from_toml(fleet_toml, "chaos.toml").unwrap_or_else(|e| panic!("{e}"));
    let devices = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut plan = fleet.plan();
    for group in &mut plan.groups {
        let mut config = (*group.config).clone();
        tweak(&mut config);
        group.config = Arc::new(config);
    }
    let limit = plan.total_duration() + Duration::from_secs(20);
    let mut config = EngineConfig::new(server);
    config.transport = transport;
    config.ports = Some(PortRange::new(first_port, first_port + 99).unwrap());
    let engine = Engine::start(plan, devices, &config).expect("engine starts");
    let started = Instant::now();
    while !engine.is_finished() {
        if started.elapsed() > limit {
            engine.stop();
            panic!(
                "the run did not end within {limit:?}:\n{}",
                engine.snapshot()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        let s = engine.snapshot();
        assert_consistent(&s);
        during(&s);
    }
    engine.join().expect("engine ends cleanly")
}

fn fleet(clients: u64, hold: &str, client: &str, network: &str) -> String {
    format!(
        "[client]\nseed = 12\n{client}\n[network]\n{network}\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 200\nhold = \"{hold}\"\nstop_timeout = \"15s\"\n"
    )
}

/// 2.04 Changed, as `RequestStats::codes` holds it (class * 32 + detail).
const CHANGED: u8 = 0x44;

fn embedded(config: ServerConfig) -> Runner {
    Runner::start_loopback(config, 1).expect("server starts")
}

/// Retransmissions one CON request is expected to need when each datagram is lost with
/// probability `loss`, both ways: an attempt fails unless the request and its answer both get
/// through; after a failed attempt comes a retransmission, at most `max_retransmit` of them.
fn expected_retransmissions(loss: f64, max_retransmit: i32) -> f64 {
    let fails = 1.0 - (1.0 - loss) * (1.0 - loss);
    (1..=max_retransmit).map(|k| fails.powi(k)).sum()
}

#[test]
fn twenty_percent_loss_costs_the_retransmissions_it_predicts() {
    let clients = 200;
    let server = embedded(ServerConfig::default());
    // Updates every second; quick retransmissions so the run stays short.
    let text = fleet(
        clients,
        "4s",
        "lifetime = \"10s\"\nupdate_fraction = 0.1",
        "loss = 0.2",
    );
    let s = run(
        &text,
        server.local_addr(),
        TransportKind::Shared,
        26100,
        |c| c.coap.ack_timeout = Duration::from_millis(200),
        |_| {},
    );
    let stats = server.stop().expect("server stops");
    assert_accounted(&s);
    let kinds = [
        RequestKind::Register,
        RequestKind::Update,
        RequestKind::Deregister,
    ];
    let sent: u64 = kinds.iter().map(|k| s.request(*k).sent).sum();
    let retransmitted: u64 = kinds.iter().map(|k| s.request(*k).retransmissions).sum();
    let timeouts: u64 = kinds.iter().map(|k| s.request(*k).timeout).sum();
    // 0.553 per request; over about 1,400 requests the standard deviation is about 0.025.
    let expected = expected_retransmissions(0.2, 4);
    let per_request = retransmitted as f64 / sent as f64;
    eprintln!(
        "{sent} requests, {retransmitted} retransmissions: {per_request:.3} per request \
         (expected {expected:.3}), {timeouts} timeouts\n{s}\n{stats}"
    );
    assert!(sent >= 3 * clients, "{s}");
    assert!(
        (expected * 0.75..=expected * 1.25).contains(&per_request),
        "{per_request:.3} retransmissions per request, expected {expected:.3}\n{s}"
    );
    // Five attempts all failing: 0.36^5 = 0.6% of requests.
    assert!(timeouts * 50 <= sent, "{timeouts} timeouts of {sent}\n{s}");
    // A Register still retrying at the stop ends as aborted (its last try is 6.2 s after the first).
    assert!(
        s.request(RequestKind::Register).ok >= clients * 19 / 20,
        "{s}"
    );
    // About a fifth of what went through the link was lost.
    let n = s.traffic.network;
    let through = s.traffic.datagrams_out + s.traffic.datagrams_in + n.dropped;
    let lost = n.dropped as f64 / through as f64;
    assert!((0.15..=0.25).contains(&lost), "lost {lost:.3}\n{s}");
    assert_eq!(n.delayed + n.duplicated + n.reordered + n.rebound, 0, "{s}");
    // `datagrams_out` counts what left the emulated link, `datagrams_in` what reached it.
    assert_eq!(stats.datagrams_received, s.traffic.datagrams_out, "{stats}");
    assert_eq!(stats.datagrams_sent, s.traffic.datagrams_in, "{stats}");
}

#[test]
fn a_hundred_ms_each_way_makes_a_register_take_two_hundred() {
    let clients = 100;
    let server = embedded(ServerConfig::default());
    let text = fleet(clients, "1s", "lifetime = \"60s\"", "delay = \"100ms\"");
    let s = run(
        &text,
        server.local_addr(),
        TransportKind::Shared,
        26200,
        |_| {},
        |_| {},
    );
    server.stop().expect("server stops");
    assert_accounted(&s);
    let register = s.request(RequestKind::Register);
    assert_eq!(register.ok, clients, "{s}");
    assert_eq!(register.retransmissions, 0, "{s}");
    let p50 = Duration::from_micros(register.latency.value_at_quantile(0.5));
    let min = Duration::from_micros(register.latency.min());
    eprintln!("register p50 {p50:?}, min {min:?}\n{s}");
    // Never faster than the round trip; a loaded 2-core machine adds a little.
    assert!(min >= Duration::from_millis(199), "min {min:?}\n{s}");
    assert!(p50 <= Duration::from_millis(300), "p50 {p50:?}\n{s}");
    let n = s.traffic.network;
    assert!(
        n.delayed >= s.traffic.datagrams_in && n.delayed >= s.traffic.datagrams_out,
        "{s}"
    );
    assert_eq!(n.dropped + n.duplicated + n.reordered, 0, "{s}");
}

#[test]
fn duplicated_and_reordered_datagrams_are_absorbed() {
    let clients = 50;
    let server = embedded(ServerConfig::default());
    let text = fleet(
        clients,
        "3s",
        "lifetime = \"10s\"\nupdate_fraction = 0.1",
        "duplicate = 0.3\nreorder = 0.3\ndelay = \"20ms\"\njitter = \"10ms\"",
    );
    let s = run(
        &text,
        server.local_addr(),
        TransportKind::Shared,
        26300,
        |_| {},
        |_| {},
    );
    let stats = server.stop().expect("server stops");
    eprintln!("{s}\n{stats}");
    assert_accounted(&s);
    let n = s.traffic.network;
    assert!(n.duplicated > 0 && n.reordered > 0, "{s}");
    // The server answered a request's copy from its deduplication cache; a copy of an answer
    // matched no exchange on the client's side (or found it offline).
    assert!(stats.duplicates > 0, "{stats}");
    let t = s.traffic;
    assert!(t.client_unmatched + t.offline + t.duplicate > 0, "{t:?}");
    for kind in [RequestKind::Register, RequestKind::Deregister] {
        assert_eq!(s.request(kind).ok, clients, "{kind:?}\n{s}");
    }
    let update = s.request(RequestKind::Update);
    assert!(update.ok >= clients, "{s}");
    assert_eq!(update.error + update.timeout, 0, "{s}");
    assert_eq!(stats.registers, clients, "{stats}");
}

/// Clients rebinding every 2.5 s (20 ms from the server) with Updates every second, against the embedded server that
/// reads /3/0/0 every 700 ms: returns our counts, the server's, and the Reads answered after
/// every client had moved at least once.
fn rebinding_against_the_embedded_server(
    transport: TransportKind,
    first_port: u16,
) -> (Snapshot, ServerStats, u64) {
    let clients = 40;
    let server = embedded(ServerConfig {
        read: Some((Path::resource(3, 0, 0), Duration::from_millis(700))),
        ..ServerConfig::default()
    });
    let text = fleet(
        clients,
        "8s",
        "lifetime = \"10s\"\nupdate_fraction = 0.1",
        // With a delay, datagrams are in flight across each rebinding.
        "rebind_every = \"2500ms\"\ndelay = \"20ms\"",
    );
    let mut reads_when_all_moved = None;
    let s = run(
        &text,
        server.local_addr(),
        transport,
        first_port,
        |_| {},
        |s| {
            if s.traffic.network.rebound >= clients && reads_when_all_moved.is_none() {
                reads_when_all_moved = Some(s.operation(OperationKind::Read).ok);
            }
        },
    );
    let stats = server.stop().expect("server stops");
    assert_accounted(&s);
    let reads_after = s.operation(OperationKind::Read).ok
        - reads_when_all_moved.unwrap_or_else(|| panic!("not every client moved:\n{s}"));
    (s, stats, reads_after)
}

fn assert_kept_working(s: &Snapshot, stats: &ServerStats, reads_after: u64, clients: u64) {
    eprintln!("{s}\n{stats}\nreads answered after every client moved: {reads_after}");
    let n = s.traffic.network;
    // Each client rebinds at 2.5, 5 and 7.5 s of its 8 s.
    assert!(n.rebound >= 3 * clients - clients / 4, "{s}");
    assert_eq!(s.request(RequestKind::Register).ok, clients, "{s}");
    let update = s.request(RequestKind::Update);
    assert!(update.ok >= 5 * clients, "{s}");
    assert_eq!(update.error + update.timeout, 0, "{s}");
    assert_eq!(update.codes, vec![(Some(CHANGED), update.ok)], "{s}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
    assert_eq!(stats.not_found, 0, "{stats}");
    // What was in flight when a client moved left from where it is now.
    assert_eq!(s.traffic.send_errors + s.traffic.unmatched, 0, "{s}");
    // The server reached the clients at the addresses their Updates came from.
    assert!(reads_after >= clients, "{s}");
}

#[test]
fn rebound_clients_keep_working_on_shared_sockets() {
    let (s, stats, reads_after) =
        rebinding_against_the_embedded_server(TransportKind::Shared, 26400);
    assert_kept_working(&s, &stats, reads_after, 40);
}

#[test]
fn rebound_clients_keep_working_on_per_client_sockets() {
    let (s, stats, reads_after) =
        rebinding_against_the_embedded_server(TransportKind::PerClient, 26500);
    assert_kept_working(&s, &stats, reads_after, 40);
}

#[test]
fn rebound_clients_keep_working_against_lwm2m_node_lib() {
    let clients = 30u64;
    let mut peer = NodePeer::start();
    let text = format!(
        "[server]\nuri = \"coap://{}\"\n[client]\nlwm2m = \"1.1\"\nlifetime = \"10s\"\n\
         update_fraction = 0.1\nconfirmable_notifications = 0.0\nseed = 5\n\
         endpoint_prefix = \"rebind-\"\nwidth = 2\n[network]\nrebind_every = \"2s\"\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 100\nhold = \"7s\"\nstop_timeout = \"10s\"\n",
        peer.addr()
    );
    let s = run(
        &text,
        peer.addr(),
        TransportKind::Shared,
        26600,
        |_| {},
        |_| {},
    );
    peer.wait_for(Duration::from_secs(5), |events| {
        events.iter().filter(|e| e["ev"] == "deregister").count() >= clients as usize
    });
    let events = peer.stop();
    let ctx = format!("our side:\n{s}");
    assert_accounted(&s);
    let errors: Vec<&Value> = events.iter().filter(|e| e["ev"] == "error").collect();
    assert!(errors.is_empty(), "server errors: {errors:#?}\n{ctx}");
    // Each client's Updates reached the server from more than one address, and every client
    // de-registered from wherever it last was.
    let mut addresses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ev"] == "update") {
        let ep = e["ep"].as_str().unwrap_or_default().to_string();
        let from = e["from"].as_str().unwrap_or_default().to_string();
        addresses.entry(ep).or_default().insert(from);
    }
    assert_eq!(addresses.len() as u64, clients, "{addresses:?}\n{ctx}");
    for (ep, from) in &addresses {
        assert!(from.len() >= 2, "{ep} updated only from {from:?}\n{ctx}");
    }
    let deregistered = events.iter().filter(|e| e["ev"] == "deregister").count();
    assert_eq!(deregistered as u64, clients, "{ctx}");
    assert!(s.traffic.network.rebound >= 2 * clients, "{ctx}");
    let update = s.request(RequestKind::Update);
    assert!(update.ok >= 4 * clients, "{ctx}");
    assert_eq!(update.error + update.timeout, 0, "{ctx}");
    assert_eq!(update.codes, vec![(Some(CHANGED), update.ok)], "{ctx}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{ctx}");
}

/// DTLS PSK clients through `network` against the embedded DTLS server; our counts and its.
fn run_dtls(clients: u64, hold: &str, network: &str, first_port: u16) -> (Snapshot, ServerStats) {
    let text = format!(
        "[client]\nlifetime = \"10s\"\nupdate_fraction = 0.1\nseed = 4\nendpoint_prefix = \"sec-\"\n\
         [security]\nmode = \"psk\"\n\
         derive = {{ master = \"000102030405060708090a0b0c0d0e0f\" }}\n\
         [network]\n{network}\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 100\nhold = \"{hold}\"\nstop_timeout = \"15s\"\n"
    );
    let fleet = Fleet::from_toml(&text, "chaos-dtls.toml").unwrap_or_else(|e| panic!("{e}"));
    let credentials = fleet.credentials().unwrap().expect("a [security] table");
    let plan = fleet.plan();
    let Credentials::Psk(psk) = &credentials else {
        panic!("a PSK fleet: {credentials:?}");
    };
    let keys = ServerKeys::from_map(psk.server_keys(plan.clients));
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let dtls = DtlsServerConfig::new(keys);
    let server =
        Runner::start_with(loopback, ServerConfig::default(), 1, Some(&dtls)).expect("binds");
    let devices = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    // Quick flights and tries, so a lost one costs the run little.
    let mut plan = plan;
    for group in &mut plan.groups {
        let mut config = (*group.config).clone();
        config.dtls.flight_start_rto = Duration::from_millis(300);
        config.coap.ack_timeout = Duration::from_millis(500);
        group.config = Arc::new(config);
    }
    let limit = plan.total_duration() + Duration::from_secs(30);
    let mut config = EngineConfig::new(server.local_addr());
    config.ports = Some(PortRange::new(first_port, first_port + 99).unwrap());
    config.credentials = Some(Arc::new(credentials));
    let engine = Engine::start(plan, devices, &config).expect("engine starts");
    let started = Instant::now();
    while !engine.is_finished() {
        if started.elapsed() > limit {
            engine.stop();
            panic!(
                "the run did not end within {limit:?}:\n{}",
                engine.snapshot()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_consistent(&engine.snapshot());
    }
    let s = engine.join().expect("engine ends cleanly");
    let stats = server.stop().expect("server stops");
    eprintln!("{s}\n{stats}");
    (s, stats)
}

#[test]
fn dtls_clients_handshake_and_register_through_a_slow_lossy_link() {
    let clients = 30;
    let (s, _) = run_dtls(clients, "6s", "loss = 0.1\ndelay = \"50ms\"", 26700);
    assert_accounted(&s);
    // A client unlucky enough to lose four flights or tries in a row is still at it at the stop.
    assert!(s.handshakes.ok >= clients - 3, "{s}");
    let register = s.request(RequestKind::Register);
    assert!(register.ok >= clients - 3, "{s}");
    assert_eq!(register.error + register.timeout, 0, "{s}");
    let n = s.traffic.network;
    assert!(n.dropped > 0 && n.delayed > 0, "{s}");
    // A Register waits for the handshake's two round trips and its own: 300 ms at least.
    let fastest = Duration::from_micros(register.latency.min());
    assert!(fastest >= Duration::from_millis(299), "{fastest:?}\n{s}");
}

/// DTLS 1.2 without Connection IDs: a server finds a session by the client's address, so after a
/// rebinding the embedded server has none for the client's records. The client cannot tell (a
/// NAT rebinding is invisible to it): its Updates go unanswered and end counted.
#[test]
fn dtls_clients_lose_their_session_when_rebound() {
    let clients = 10;
    let (s, stats) = run_dtls(clients, "6s", "rebind_every = \"2s\"", 26800);
    assert_accounted(&s);
    assert!(s.handshakes.ok >= clients, "{s}");
    assert_eq!(s.request(RequestKind::Register).ok, clients, "{s}");
    assert!(s.traffic.network.rebound >= clients, "{s}");
    // Updates before the first rebinding (at 2 s) are answered; those after it are not.
    let update = s.request(RequestKind::Update);
    assert!(update.ok > 0, "{s}");
    assert!(update.timeout + update.aborted > 0, "{s}");
    assert!(update.ok <= stats.updates, "{stats}");
}
