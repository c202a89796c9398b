//! Hostile traffic on the wire: requests from strangers, forged RSTs and ACKs. A client acts
//! only on requests from its server (`accept_requests`) and ends an exchange only on a reply
//! from where the exchange went (RFC 7252 4.4, 5.3.2); everything else is counted and dropped.
//! Each case runs once with the guard and once without it (or with the real sender), so a check
//! that could not fail shows up as a failing control.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/sim.rs"]
mod sim;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{
    AcceptRequests, Client, ClientConfig, ClientState, Dropped, Event, OperationKind, RequestKind,
    RequestOutcome,
};
use lwm2m_swarm::engine::{Engine, EngineConfig, TransportKind};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::server::{Runner, ServerConfig};
use lwm2m_swarm::transport::PortRange;
use sim::{Sim, addr, empty, uri_path};

const SECOND: Duration = Duration::from_secs(1);

/// Another host (loopback, so the engine's off-loopback filter does not catch it first).
fn stranger() -> SocketAddr {
    SocketAddr::from(([127, 9, 9, 9], 5683))
}

/// Another port on another host.
fn stranger_ephemeral() -> SocketAddr {
    SocketAddr::from(([127, 9, 9, 9], 41_000))
}

/// Another port on the server's host.
fn server_host_other_port() -> SocketAddr {
    addr(40_999)
}

/// The token of the made-up Observe.
const MADE_UP: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

fn config(accept_requests: AcceptRequests) -> ClientConfig {
    ClientConfig {
        lifetime: Duration::from_secs(600),
        update_jitter: 0.0,
        accept_requests,
        ..ClientConfig::default()
    }
}

fn registered(config: ClientConfig) -> Sim {
    let mut sim = Sim::new(Client::new(
        Arc::new(config),
        "chaos-0001",
        shipped::device(21),
        21,
    ));
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    sim
}

/// The four requests of the issue: Read the manufacturer, Write lifetime 20, the
/// Registration Update Trigger, and an Observe of the temperature with a made-up token.
fn hostile_requests(sim: &mut Sim) -> Vec<Packet> {
    let read = sim.server.request(RequestType::Get, "/3/0/0");
    let mut lifetime = sim.server.request(RequestType::Put, "/1/0/1");
    lifetime.add_option(CoapOption::ContentFormat, vec![]);
    lifetime.payload = b"20".to_vec();
    let trigger = sim.server.request(RequestType::Post, "/1/0/8");
    let mut observe = sim.server.request(RequestType::Get, "/3303/0/5700");
    observe.add_option(CoapOption::Observe, Vec::new());
    observe.set_token(MADE_UP.to_vec());
    vec![read, lifetime, trigger, observe]
}

/// What the hostile requests from `from` achieved over the next two minutes.
#[derive(Debug, PartialEq)]
struct Harm {
    /// Requests the client answered, with the codes.
    answers: Vec<ResponseType>,
    /// Datagrams the client sent to `from`.
    sent_to_stranger: usize,
    updates: usize,
    notifications: usize,
    operations: usize,
    foreign_requests: usize,
    state_changes: usize,
}

fn attack(accept: AcceptRequests, from: SocketAddr) -> Harm {
    let mut sim = registered(config(accept));
    let updates_before = sim.server.requests_named(RequestType::Post, "/rd/").len();
    let events_before = sim.events.len();
    let requests = hostile_requests(&mut sim);
    for request in &requests {
        sim.send_to_client_from(from, request);
    }
    // Lifetime 600 s: the next scheduled Update is 480 s away; lifetime 20 would bring one
    // within 16 s, and the trigger at once.
    sim.run_for(120 * SECOND);
    let answers = requests
        .iter()
        .filter_map(|r| sim.server.reply_to(r.get_token()))
        .map(|reply| match reply.packet.header.code {
            MessageClass::Response(code) => code,
            other => panic!("not a response: {other:?}"),
        })
        .collect();
    let events = &sim.events[events_before..];
    let count = |pick: fn(&Event) -> bool| events.iter().filter(|(_, e)| pick(e)).count();
    Harm {
        answers,
        sent_to_stranger: sim.uplink.iter().filter(|w| w.to == from).count(),
        updates: sim.server.requests_named(RequestType::Post, "/rd/").len() - updates_before,
        notifications: sim.server.notifications_for(&MADE_UP).len(),
        operations: count(|e| matches!(e, Event::Operation(_))),
        foreign_requests: count(|e| matches!(e, Event::Dropped(Dropped::ForeignRequest))),
        state_changes: count(|e| matches!(e, Event::State(_))),
    }
}

fn harmless(foreign_requests: usize) -> Harm {
    Harm {
        answers: vec![],
        sent_to_stranger: 0,
        updates: 0,
        notifications: 0,
        operations: 0,
        foreign_requests,
        state_changes: 0,
    }
}

#[test]
fn requests_from_another_host_are_dropped_unanswered_and_change_nothing() {
    for accept in [AcceptRequests::Server, AcceptRequests::ServerHost] {
        for from in [stranger(), stranger_ephemeral()] {
            assert_eq!(attack(accept, from), harmless(4), "{accept:?} from {from}");
        }
    }
}

#[test]
fn with_any_the_same_requests_are_served() {
    let harm = attack(AcceptRequests::Any, stranger());
    assert_eq!(
        harm.answers,
        [
            ResponseType::Content,
            ResponseType::Changed,
            ResponseType::Changed,
            ResponseType::Content
        ]
    );
    assert_eq!(harm.operations, 4);
    assert_eq!(harm.foreign_requests, 0);
    assert!(harm.updates >= 2, "the trigger and lifetime 20: {harm:?}");
    assert!(harm.notifications >= 2, "{harm:?}");
    assert!(harm.sent_to_stranger >= 4 + harm.notifications, "{harm:?}");
}

/// lwm2m-node-lib sends requests from an ephemeral port of the server's host: the default
/// takes them, `server` does not.
#[test]
fn another_port_of_the_server_host_is_the_server_unless_told_otherwise() {
    let from = server_host_other_port();
    assert_eq!(
        attack(AcceptRequests::Server, from),
        harmless(4),
        "server only"
    );
    let harm = attack(AcceptRequests::ServerHost, from);
    assert_eq!(harm.answers.len(), 4, "{harm:?}");
    assert_eq!(harm.operations, 4);
    assert_eq!(harm.foreign_requests, 0);
}

/// While bootstrapping, the bootstrap server is the server: its Bootstrap-Finish is taken; the
/// same from the LWM2M server's usual port (`server`) or another host (`server-host`) is not.
#[test]
fn while_bootstrapping_only_the_bootstrap_server_is_heard() {
    use lwm2m_swarm::client::ClientBootstrapConfig;
    let bootstrap_server = addr(5783);
    for (accept, from) in [
        (AcceptRequests::Server, addr(5683)),
        (AcceptRequests::ServerHost, stranger()),
        (AcceptRequests::ServerHost, bootstrap_server),
    ] {
        let config = ClientConfig {
            server: bootstrap_server,
            bootstrap: Some(ClientBootstrapConfig::default()),
            accept_requests: accept,
            ..config(accept)
        };
        let mut sim = Sim::new(Client::new(
            Arc::new(config),
            "chaos-0003",
            shipped::device(23),
            23,
        ));
        sim.server.sockets.push(bootstrap_server);
        sim.client.start(sim.now);
        sim.run_for(SECOND);
        assert_eq!(sim.client.state(), ClientState::Bootstrapping);
        let finish = sim.server.request(RequestType::Post, "/bs");
        let token = sim.send_to_client_from(from, &finish);
        sim.run_for(SECOND);
        let answered = sim.server.reply_to(&token).is_some();
        let foreign = dropped(&sim, Dropped::ForeignRequest);
        if from == bootstrap_server {
            assert!(answered && foreign == 0, "{accept:?} from {from}");
        } else {
            assert!(!answered && foreign == 1, "{accept:?} from {from}");
            assert_eq!(sim.client.state(), ClientState::Bootstrapping);
        }
    }
}

/// An RST to a NON notification cancels the observation only from its observer: a forged one
/// from another port of the server's host (where requests are welcome) does not.
#[test]
fn a_forged_rst_to_a_notification_cancels_nothing() {
    let mut sim = registered(config(AcceptRequests::ServerHost));
    sim.write_attributes("/3303/0/5700", &["pmax=2"]);
    let token = sim.observe("/3303/0/5700");
    sim.run_for(10 * SECOND);
    let last_mid = |sim: &Sim| {
        let notifications = sim.server.notifications_for(&token);
        assert!(notifications.len() >= 3, "NON notifications every 2 s");
        (
            notifications.len(),
            notifications.last().unwrap().1.header.message_id,
        )
    };
    let (before, mid) = last_mid(&sim);
    let rst = empty(MessageType::Reset, mid).to_bytes().unwrap();
    sim.client
        .handle_datagram(sim.now, server_host_other_port(), &rst);
    sim.run_for(10 * SECOND);
    assert_eq!(dropped(&sim, Dropped::ForeignReply), 1);
    let (after, mid) = last_mid(&sim);
    assert!(
        after >= before + 3,
        "notifications went on: {before} then {after}"
    );
    assert_eq!(sim.client.observed_paths().count(), 1);
    // The observer's own RST ends it.
    sim.client.handle_datagram(
        sim.now,
        sim.server.address,
        &empty(MessageType::Reset, mid).to_bytes().unwrap(),
    );
    sim.run_for(10 * SECOND);
    assert_eq!(sim.client.observed_paths().count(), 0);
    assert_eq!(last_mid(&sim).0, after);
}

/// A Register that goes unanswered for a while, with its message ID.
fn register_outstanding() -> (Sim, u16) {
    let mut sim = Sim::new(Client::new(
        Arc::new(config(AcceptRequests::ServerHost)),
        "chaos-0002",
        shipped::device(22),
        22,
    ));
    sim.server.silent = true;
    sim.client.start(sim.now);
    sim.run_for(Duration::from_millis(100));
    let register = sim
        .uplink
        .iter()
        .find(|w| uri_path(&w.packet) == "/rd")
        .expect("Register sent");
    let mid = register.packet.header.message_id;
    (sim, mid)
}

fn registers_sent(sim: &Sim) -> usize {
    sim.uplink
        .iter()
        .filter(|w| uri_path(&w.packet) == "/rd")
        .count()
}

fn dropped(sim: &Sim, reason: Dropped) -> usize {
    sim.events
        .iter()
        .filter(|(_, e)| *e == Event::Dropped(reason))
        .count()
}

#[test]
fn a_sweep_of_forged_rsts_over_every_message_id_fails_no_register() {
    let (mut sim, _) = register_outstanding();
    for from in [server_host_other_port(), stranger()] {
        for mid in 0..=u16::MAX {
            let rst = empty(MessageType::Reset, mid).to_bytes().unwrap();
            // Straight to the client: 65,536 datagrams through the simulated network's queue
            // would only cost time.
            sim.client.handle_datagram(sim.now, from, &rst);
        }
        sim.run_for(Duration::ZERO);
    }
    let foreign = dropped(&sim, Dropped::ForeignReply);
    let unmatched = dropped(&sim, Dropped::Unmatched);
    // From the server's host only the RST with the Register's ID is foreign (the rest match
    // nothing); from another host every one is.
    assert_eq!(
        foreign,
        1 + 65_536,
        "foreign {foreign}, unmatched {unmatched}"
    );
    assert_eq!(foreign + unmatched, 2 * 65_536);
    assert!(sim.request_records().is_empty(), "nothing ended yet");
    sim.server.silent = false;
    sim.run_for(60 * SECOND);
    let records = sim.request_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].kind, RequestKind::Register);
    assert_eq!(records[0].outcome, RequestOutcome::Response(0x41));
    assert_eq!(sim.client.state(), ClientState::Registered);
}

#[test]
fn the_servers_own_rst_still_fails_the_register() {
    let (mut sim, mid) = register_outstanding();
    let rst = empty(MessageType::Reset, mid).to_bytes().unwrap();
    sim.send_raw_to_client(rst);
    sim.run_for(SECOND);
    let records = sim.request_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, RequestOutcome::Reset);
}

/// Registers on the wire in the 20 s after an empty ACK with the Register's ID from `from`.
fn registers_after_empty_ack_from(from: Option<SocketAddr>) -> usize {
    let (mut sim, mid) = register_outstanding();
    let ack = empty(MessageType::Acknowledgement, mid).to_bytes().unwrap();
    match from {
        Some(from) => sim.send_raw_to_client_from(from, ack),
        None => sim.send_raw_to_client(ack),
    }
    sim.run_for(20 * SECOND);
    registers_sent(&sim)
}

#[test]
fn a_forged_empty_ack_does_not_stop_retransmissions() {
    // ACK_TIMEOUT 2 s (up to 3 s with the random factor), doubled: retransmissions by 9 s and
    // 18 s at the latest.
    for from in [server_host_other_port(), stranger()] {
        let sent = registers_after_empty_ack_from(Some(from));
        assert!(sent >= 3, "from {from}: {sent} Registers");
    }
    // The server's own empty ACK does stop them (a separate response is awaited).
    assert_eq!(registers_after_empty_ack_from(None), 1);
}

/// The same over real loopback sockets: the engine's clients against the embedded server, a
/// stranger on 127.9.9.9 sending the four requests to one client.
#[test]
fn over_loopback_the_engine_drops_a_strangers_requests() {
    let clients = 5;
    let fleet_toml = format!(
        "[client]\nlifetime = \"60s\"\nseed = 5\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 100\nhold = \"3s\"\nstop_timeout = \"10s\"\n"
    );
    let server = Runner::start_loopback(ServerConfig::default(), 1).expect("server starts");
    let fleet = Fleet::from_toml(&fleet_toml, "chaos.toml").unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = fleet.plan();
    let limit = plan.total_duration() + Duration::from_secs(20);
    let mut engine_config = EngineConfig::new(server.local_addr());
    engine_config.transport = TransportKind::Shared;
    engine_config.ports = Some(PortRange::new(47_300, 47_399).unwrap());
    let engine = Engine::start(plan, templates, &engine_config).expect("engine starts");

    let stranger = UdpSocket::bind("127.9.9.9:0").expect("bind 127.9.9.9");
    let mut scratch = Sim::new(Client::new(
        Arc::new(ClientConfig::default()),
        "unused",
        shipped::device(0),
        0,
    ));
    let requests = hostile_requests(&mut scratch);
    let started = std::time::Instant::now();
    let mut sent = false;
    while !engine.is_finished() {
        assert!(
            started.elapsed() < limit,
            "the run did not end in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
        let snapshot = engine.snapshot();
        accounting::assert_consistent(&snapshot);
        if !sent && snapshot.state(ClientState::Registered) == clients {
            let target = engine.client_endpoint(0).expect("client 0's address");
            for request in &requests {
                stranger
                    .send_to(&request.to_bytes().unwrap(), target)
                    .unwrap();
            }
            sent = true;
        }
    }
    let s = engine.join().expect("engine ends cleanly");
    server.stop().expect("server stops cleanly");
    assert!(sent, "clients never all registered: {s}");
    assert_eq!(s.traffic.foreign_requests, 4, "{s}");
    for kind in [
        OperationKind::Read,
        OperationKind::Write,
        OperationKind::Execute,
        OperationKind::Observe,
    ] {
        assert_eq!(s.operation(kind).total, 0, "{kind:?}: {s}");
    }
    assert_eq!(s.request(RequestKind::Update).sent, 0, "{s}");
    assert_eq!(s.request(RequestKind::Notify).sent, 0, "{s}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
    accounting::assert_accounted(&s);
    // Not a byte came back to the stranger (the run is over: anything sent has arrived).
    stranger.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    assert!(
        stranger.recv_from(&mut buf).is_err(),
        "the stranger got an answer"
    );
}
