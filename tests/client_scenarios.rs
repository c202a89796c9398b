//! The client against a scripted server on a simulated clock: the whole life of a device.

#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/sim.rs"]
mod sim;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, RequestType, ResponseType};
use lwm2m_swarm::client::{
    Client, ClientConfig, ClientState, Dropped, Event, OperationKind, RequestKind, RequestOutcome,
    RequestRecord,
};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::coap::block::{self as blocks, BlockValue};
use lwm2m_swarm::content::{self, ContentFormat};
use lwm2m_swarm::model::{Path, Value};
use shipped::device;
use sim::{Sim, addr, uint_option, uri_path, uri_query};

const SECOND: Duration = Duration::from_secs(1);

fn client(config: ClientConfig, seed: u64) -> Client {
    Client::new(Arc::new(config), "sim-0001", device(seed), seed)
}

/// A client started and registered one second into the simulation.
fn registered(config: ClientConfig, seed: u64) -> Sim {
    let mut sim = Sim::new(client(config, seed));
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    sim
}

fn config() -> ClientConfig {
    ClientConfig {
        lifetime: Duration::from_secs(600),
        update_jitter: 0.0,
        ..ClientConfig::default()
    }
}

fn code(packet: &coap_lite::Packet) -> ResponseType {
    match packet.header.code {
        MessageClass::Response(code) => code,
        other => panic!("not a response: {other:?}"),
    }
}

fn read_with(sim: &mut Sim, path: &str, accept: Option<ContentFormat>) -> coap_lite::Packet {
    let mut request = sim.server.request(RequestType::Get, path);
    if let Some(format) = accept {
        request.add_option(CoapOption::Accept, format.code().to_be_bytes().to_vec());
    }
    let token = sim.send_to_client(&request);
    sim.run_for(SECOND);
    sim.server
        .reply_to(&token)
        .expect("client answered")
        .packet
        .clone()
}

fn decode(packet: &coap_lite::Packet, path: &str, sim: &Sim) -> Vec<lwm2m_swarm::model::Record> {
    let format =
        ContentFormat::from_code(uint_option(packet, CoapOption::ContentFormat).unwrap() as u16)
            .unwrap();
    content::decode(
        format,
        &path.parse().unwrap(),
        &packet.payload,
        sim.client.device(),
    )
    .expect("payload decodes")
}

fn value_at(records: &[lwm2m_swarm::model::Record], path: &str) -> Value {
    let path: Path = path.parse().unwrap();
    records
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no {path} in {records:?}"))
        .value
        .clone()
}

fn registers(sim: &Sim) -> Vec<(Instant, coap_lite::Packet)> {
    sim.server
        .requests_named(RequestType::Post, "/rd")
        .into_iter()
        .filter(|(_, p)| uri_path(p) == "/rd")
        .collect()
}

#[test]
fn a_device_lives_an_hour() {
    let started = std::time::Instant::now();
    let mut sim = Sim::new(client(
        ClientConfig {
            queue_mode: true,
            ..config()
        },
        42,
    ));
    let t0 = sim.now;
    sim.client.start(t0);
    sim.run_for(SECOND);

    registers_with_queue_mode(&sim);
    reads_in_every_format(&mut sim);
    writes_then_reads_back(&mut sim);
    reboots_then_registers_again(&mut sim);
    let constant = notifies_on_pmax(&mut sim);
    let changing = notifies_changes_after_pmin(&mut sim);
    sleeps_then_wakes_with_update_first(&mut sim, t0, [constant, changing]);
    deregisters_at_the_end(&mut sim, t0);
    eprintln!("an hour of simulated time took {:?}", started.elapsed());
}

fn registers_with_queue_mode(sim: &Sim) {
    // Register: ep, lt, lwm2m, b and Q, link-format payload without Security.
    let register = &registers(sim)[0].1;
    let query = uri_query(register);
    for expected in ["ep=sim-0001", "lt=600", "lwm2m=1.1", "b=U", "Q"] {
        assert!(
            query.iter().any(|q| q == expected),
            "{expected} missing from {query:?}"
        );
    }
    let links = String::from_utf8(register.payload.clone()).unwrap();
    assert!(
        links.contains("</3/0>") && links.contains("</3303/0>"),
        "{links}"
    );
    assert!(
        !links.contains("</0/"),
        "Security must not be registered: {links}"
    );
    assert_eq!(sim.client.state(), ClientState::Registered);
    assert_eq!(sim.client.location(), Some("rd/a1b2c3"));
}

fn reads_in_every_format(sim: &mut Sim) {
    // Reads in TLV, SenML JSON, SenML CBOR and text all carry the same device.
    let tlv = read_with(sim, "/3/0", Some(ContentFormat::Tlv));
    assert_eq!(code(&tlv), ResponseType::Content);
    let manufacturer = value_at(&decode(&tlv, "/3/0", sim), "/3/0/0");
    let json = read_with(sim, "/3/0", Some(ContentFormat::SenmlJson));
    assert_eq!(
        value_at(&decode(&json, "/3/0", sim), "/3/0/0"),
        manufacturer
    );
    let cbor = read_with(sim, "/3303/0", Some(ContentFormat::SenmlCbor));
    assert!(matches!(
        value_at(&decode(&cbor, "/3303/0", sim), "/3303/0/5700"),
        Value::Float(_)
    ));
    let text = read_with(sim, "/3/0/0", None);
    assert_eq!(uint_option(&text, CoapOption::ContentFormat), Some(0));
    assert_eq!(
        Value::String(String::from_utf8(text.payload.clone()).unwrap()),
        manufacturer
    );
}

fn writes_then_reads_back(sim: &mut Sim) {
    // Write, then read back.
    let mut write = sim.server.request(RequestType::Put, "/3/0/14");
    write.add_option(CoapOption::ContentFormat, vec![]);
    write.payload = b"+02:00".to_vec();
    let token = sim.send_to_client(&write);
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::Changed
    );
    assert_eq!(read_with(sim, "/3/0/14", None).payload, b"+02:00");
}

fn reboots_then_registers_again(sim: &mut Sim) {
    // Execute Reboot: 2.04 first, offline for the reboot time, then a fresh Register.
    let reboot_at = sim.now;
    let token = sim.send_request(RequestType::Post, "/3/0/4");
    sim.run_for(30 * SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::Changed
    );
    let registers_now = registers(sim);
    assert_eq!(registers_now.len(), 2, "one Register after the reboot");
    let offline = registers_now[1].0.saturating_since(reboot_at);
    assert!(
        offline >= Duration::from_secs(10) && offline < Duration::from_secs(11),
        "{offline:?}"
    );
    assert_eq!(sim.client.state(), ClientState::Registered);
}

fn notifies_on_pmax(sim: &mut Sim) -> Vec<u8> {
    // Observe a constant resource with pmax 20: a notification every 20 s, on the dot.
    let token = sim.write_attributes("/3/0/0", &["pmin=5", "pmax=20"]);
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::Changed
    );
    let observed_at = sim.now;
    let token = sim.observe("/3/0/0");
    sim.run_for(70 * SECOND);
    let first = sim.server.reply_to(&token).unwrap().packet.clone();
    assert_eq!(code(&first), ResponseType::Content);
    let first_sequence =
        uint_option(&first, CoapOption::Observe).expect("Observe in the first answer");
    assert!(
        first_sequence > 0,
        "some servers ignore a first Observe of 0"
    );
    let notifications = sim.server.notifications_for(&token);
    let offsets: Vec<u64> = notifications
        .iter()
        .map(|(at, _)| at.saturating_since(observed_at).as_millis() as u64)
        .collect();
    // The request reaches the client after 5 ms; each notification arrives 5 ms after it is sent.
    assert_eq!(offsets, vec![20_010, 40_010, 60_010], "pmax instants");
    let sequences: Vec<u32> = notifications
        .iter()
        .map(|(_, p)| uint_option(p, CoapOption::Observe).unwrap())
        .collect();
    assert!(sequences.windows(2).all(|w| w[1] > w[0]) && sequences[0] > first_sequence);
    token
}

fn notifies_changes_after_pmin(sim: &mut Sim) -> Vec<u8> {
    // A changing value with pmin 5: never sooner than pmin after the previous one.
    sim.write_attributes("/3303/0/5700", &["pmin=5"]);
    let walk_token = sim.observe("/3303/0/5700");
    sim.run_for(60 * SECOND);
    let walk = sim.server.notifications_for(&walk_token);
    assert!(
        walk.len() >= 3,
        "a changing value is notified: {}",
        walk.len()
    );
    assert!(
        walk.windows(2)
            .all(|w| w[1].0.saturating_since(w[0].0) >= 5 * SECOND)
    );
    walk_token
}

fn sleeps_then_wakes_with_update_first(sim: &mut Sim, t0: Instant, tokens: [Vec<u8>; 2]) {
    // Cancel both observations, then let the client fall asleep.
    for token in tokens {
        let mut cancel = sim.server.request(RequestType::Get, "/3/0/0");
        cancel.set_token(token);
        cancel.add_option(CoapOption::Observe, vec![1]);
        sim.send_to_client(&cancel);
    }
    sim.run_for(SECOND);
    let quiet_from = sim.now;
    sim.run_for(100 * SECOND);
    assert_eq!(sim.client.state(), ClientState::Sleeping);
    let slept_at = sim
        .events
        .iter()
        .find(|(at, e)| *at >= quiet_from && *e == Event::State(ClientState::Sleeping))
        .expect("went to sleep")
        .0;
    assert!(slept_at.saturating_since(quiet_from) <= Duration::from_secs(93));

    // Asleep: a Read is dropped by the radio.
    let token = sim.send_request(RequestType::Get, "/3/0/9");
    sim.run_for(SECOND);
    assert!(sim.server.reply_to(&token).is_none());
    assert!(
        sim.events
            .iter()
            .any(|(_, e)| *e == Event::Dropped(Dropped::Asleep))
    );

    // It wakes for its Update, which goes first.
    let uplink_before = sim.uplink.len();
    sim.run_until(t0 + Duration::from_secs(1500));
    let after_wake: Vec<_> = sim.uplink[uplink_before..].iter().collect();
    assert!(!after_wake.is_empty(), "the client woke up");
    assert_eq!(
        after_wake[0].packet.header.code,
        MessageClass::Request(RequestType::Post)
    );
    assert_eq!(uri_path(&after_wake[0].packet), "/rd/a1b2c3");
}

fn deregisters_at_the_end(sim: &mut Sim, t0: Instant) {
    // Run out the hour, then stop: De-register.
    sim.run_until(t0 + Duration::from_secs(3590));
    sim.client.stop(sim.now);
    sim.run_for(5 * SECOND);
    let deregister = sim.server.requests_named(RequestType::Delete, "/rd/a1b2c3");
    assert_eq!(deregister.len(), 1);
    assert_eq!(sim.client.state(), ClientState::Stopped);

    // Every request of the hour ended, and successfully.
    let records = sim.request_records();
    assert!(
        records
            .iter()
            .filter(|r| r.kind == RequestKind::Update)
            .count()
            >= 3
    );
    assert!(
        records.iter().all(|r| r.outcome.is_success()),
        "{records:?}"
    );
    // Every request of the hour came from the server's address: everything went back there.
    let server = sim.server.address;
    assert!(sim.uplink.iter().all(|w| w.to == server));
}

/// With 30% of datagrams lost both ways, every request ends exactly once and its
/// retransmissions follow RFC 7252.
#[test]
fn lossy_network_every_request_ends_once() {
    for seed in 0..8 {
        let config = ClientConfig {
            lifetime: Duration::from_secs(60),
            ..config()
        };
        let mut sim = Sim::new(client(config, seed));
        sim.drop_rate = 0.3;
        let t0 = sim.now;
        sim.client.start(t0);
        sim.run_until(t0 + Duration::from_secs(3600));
        sim.client.stop(sim.now);
        sim.run_for(Duration::from_secs(120));

        let records = sim.request_records();
        let exchanges = exchanges_by_message_id(&sim);
        assert!(
            exchanges.len() > 20,
            "seed {seed}: {} exchanges",
            exchanges.len()
        );
        for (mid, sends) in &exchanges {
            let ended: Vec<_> = records.iter().filter(|r| r.sent == sends[0]).collect();
            assert_eq!(
                ended.len(),
                1,
                "seed {seed}: exchange {mid:#x} sent at {:?} ended {} times",
                sends[0],
                ended.len()
            );
            check_retransmissions(sends, ended[0]);
        }
        // Nothing ended that was never sent (except requests the client dropped unsent).
        for record in records
            .iter()
            .filter(|r| r.kind != RequestKind::Notify && r.outcome != RequestOutcome::Unsent)
        {
            assert!(
                exchanges.iter().any(|(_, sends)| sends[0] == record.sent),
                "seed {seed}: {record:?}"
            );
        }
        assert!(
            records
                .iter()
                .any(|r| r.outcome == RequestOutcome::Timeout || r.retransmissions > 0)
        );
        // What metrics rely on: one `Sent` per request that went out, and each ends once.
        for kind in [
            RequestKind::Register,
            RequestKind::Update,
            RequestKind::Deregister,
        ] {
            let sent = sim
                .events
                .iter()
                .filter(|(_, e)| *e == Event::Sent(kind))
                .count();
            let ended = records
                .iter()
                .filter(|r| r.kind == kind && r.outcome != RequestOutcome::Unsent)
                .count();
            assert_eq!(sent, ended, "seed {seed}: {kind:?}");
            assert!(sent > 0, "seed {seed}: no {kind:?} sent");
        }
    }
}

/// The client's CON requests grouped by message ID: each transmission of one exchange.
fn exchanges_by_message_id(sim: &Sim) -> Vec<(u16, Vec<Instant>)> {
    let mut exchanges: Vec<(u16, Vec<Instant>)> = Vec::new();
    for wire in sim.uplink.iter().filter(|w| {
        w.packet.header.get_type() == MessageType::Confirmable
            && matches!(w.packet.header.code, MessageClass::Request(_))
    }) {
        let mid = wire.packet.header.message_id;
        match exchanges.iter_mut().find(|(m, _)| *m == mid) {
            Some((_, sends)) => sends.push(wire.at),
            None => exchanges.push((mid, vec![wire.at])),
        }
    }
    exchanges
}

/// RFC 7252 4.2: first timeout in [2, 3] s, doubling, at most 4 retransmissions, and a
/// timeout after 31 times the first one.
fn check_retransmissions(sends: &[Instant], record: &RequestRecord) {
    assert!(sends.len() <= 5, "at most MAX_RETRANSMIT retransmissions");
    assert_eq!(usize::from(record.retransmissions), sends.len() - 1);
    let first_timeout = sends.get(1).map(|s| s.saturating_since(sends[0]));
    if let Some(t) = first_timeout {
        assert!(t >= 2 * SECOND && t <= 3 * SECOND, "initial timeout {t:?}");
        for (k, pair) in sends.windows(2).enumerate() {
            let gap = pair[1].saturating_since(pair[0]).as_micros() as i64;
            let expected = (t.as_micros() as i64) << k;
            assert!(
                (gap - expected).abs() <= 1,
                "gap {k}: {gap} µs, expected {expected}"
            );
        }
    }
    if record.outcome == RequestOutcome::Timeout {
        assert_eq!(sends.len(), 5);
        let t = first_timeout.unwrap().as_micros() as i64;
        let waited = record.completed.saturating_since(sends[0]).as_micros() as i64;
        assert!(
            (waited - 31 * t).abs() <= 2,
            "gave up after {waited} µs, expected 31 T"
        );
    }
}

#[test]
fn update_answered_not_found_registers_again() {
    let mut sim = registered(config(), 1);
    sim.server.update_code = ResponseType::NotFound;
    sim.server.registration_id = "second".into();
    sim.run_for(Duration::from_secs(490));
    assert_eq!(registers(&sim).len(), 2);
    assert_eq!(sim.client.location(), Some("rd/second"));
}

#[test]
fn failed_registrations_follow_the_retry_procedure() {
    let mut sim = Sim::new(client(config(), 2));
    sim.server.register_code = ResponseType::Forbidden;
    let t0 = sim.now;
    sim.client.start(t0);
    sim.run_for(Duration::from_secs(2000));
    let offsets: Vec<u64> = registers(&sim)
        .iter()
        .map(|(at, _)| at.saturating_since(t0).as_millis() as u64)
        .collect();
    // Each attempt takes 5 ms each way; then 60, 120, 240, 480 s of retry timer.
    assert_eq!(offsets, vec![5, 60_015, 180_025, 420_035, 900_045]);
    assert_eq!(sim.client.state(), ClientState::Failed);
    let failures = sim
        .request_records()
        .iter()
        .filter(|r| r.outcome == RequestOutcome::Response(0x83))
        .count();
    assert_eq!(failures, 5);
}

/// A retransmitted Execute (its ACK was lost) is answered from the cache and never runs twice:
/// Registration Update Trigger sends exactly one Update.
#[test]
fn a_retransmitted_execute_runs_once() {
    let mut sim = registered(config(), 3);
    let execute = sim.server.request(RequestType::Post, "/1/0/8");
    let bytes = execute.to_bytes().unwrap();
    sim.send_raw_to_client(bytes.clone());
    sim.run_for(Duration::from_millis(100));
    sim.send_raw_to_client(bytes);
    sim.run_for(SECOND);
    let executes = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Operation(op) if op.kind == OperationKind::Execute))
        .count();
    assert_eq!(executes, 1);
    let acks: Vec<_> = sim
        .uplink
        .iter()
        .filter(|w| w.packet.header.get_type() == MessageType::Acknowledgement)
        .collect();
    assert_eq!(acks.len(), 2, "both copies answered");
    assert_eq!(
        acks[0].packet, acks[1].packet,
        "the duplicate got the cached answer"
    );
    assert_eq!(code(&acks[0].packet), ResponseType::Changed);
    assert_eq!(
        sim.server
            .requests_named(RequestType::Post, "/rd/a1b2c3")
            .len(),
        1,
        "one Update"
    );
}

/// Sends one request, edited by `edit`, and returns the client's answer code.
fn ask(
    sim: &mut Sim,
    method: RequestType,
    path: &str,
    edit: &dyn Fn(&mut coap_lite::Packet),
) -> ResponseType {
    let mut request = sim.server.request(method, path);
    edit(&mut request);
    let token = sim.send_to_client(&request);
    sim.run_for(SECOND);
    code(&sim.server.reply_to(&token).expect("answered").packet)
}

fn accept(format: u16) -> impl Fn(&mut coap_lite::Packet) {
    move |p| p.add_option(CoapOption::Accept, format.to_be_bytes().to_vec())
}

fn write_cf(format: u16, payload: &'static [u8]) -> impl Fn(&mut coap_lite::Packet) {
    move |p| {
        p.add_option(CoapOption::ContentFormat, format.to_be_bytes().to_vec());
        p.payload = payload.to_vec();
    }
}

fn query(item: &'static str) -> impl Fn(&mut coap_lite::Packet) {
    move |p| p.add_option(CoapOption::UriQuery, item.as_bytes().to_vec())
}

#[test]
fn server_operations_answer_with_lwm2m_codes() {
    let mut sim = registered(config(), 4);
    let none = |_: &mut coap_lite::Packet| {};
    assert_eq!(
        ask(&mut sim, RequestType::Get, "/3/0/4", &none),
        ResponseType::MethodNotAllowed,
        "read an executable"
    );
    assert_eq!(
        ask(&mut sim, RequestType::Get, "/9999/0", &none),
        ResponseType::NotFound
    );
    assert_eq!(
        ask(&mut sim, RequestType::Get, "/0/0", &none),
        ResponseType::NotFound,
        "Security is hidden"
    );
    assert_eq!(
        ask(&mut sim, RequestType::Post, "/3/0/0", &none),
        ResponseType::MethodNotAllowed,
        "execute a readable"
    );
    assert_eq!(
        ask(&mut sim, RequestType::Get, "/3/0", &accept(9999)),
        ResponseType::NotAcceptable
    );
    assert_eq!(
        ask(&mut sim, RequestType::Get, "/3/0", &accept(0)),
        ResponseType::NotAcceptable,
        "text for an instance"
    );
    assert_eq!(
        ask(&mut sim, RequestType::Put, "/3/0/14", &write_cf(9999, b"x")),
        ResponseType::UnsupportedContentFormat
    );
    assert_eq!(
        ask(&mut sim, RequestType::Put, "/3/0/0", &write_cf(0, b"x")),
        ResponseType::MethodNotAllowed,
        "write a read-only"
    );
    assert_eq!(
        ask(&mut sim, RequestType::Put, "/3/0/13", &write_cf(0, b"soon")),
        ResponseType::BadRequest,
        "time as text"
    );
    assert_eq!(
        ask(
            &mut sim,
            RequestType::Put,
            "/3303/0/5700",
            &query("pmin=abc")
        ),
        ResponseType::BadRequest
    );
    let thresholds = |p: &mut coap_lite::Packet| {
        p.add_option(CoapOption::UriQuery, b"gt=10".to_vec());
        p.add_option(CoapOption::UriQuery, b"lt=20".to_vec());
    };
    assert_eq!(
        ask(&mut sim, RequestType::Put, "/3303/0/5700", &thresholds),
        ResponseType::BadRequest,
        "lt >= gt"
    );
    assert_eq!(
        ask(&mut sim, RequestType::Delete, "/3/0", &none),
        ResponseType::MethodNotAllowed
    );
    assert_eq!(
        ask(&mut sim, RequestType::Delete, "/3303/7", &none),
        ResponseType::NotFound
    );
    let critical = |p: &mut coap_lite::Packet| p.add_option(CoapOption::Unknown(9), vec![1]);
    assert_eq!(
        ask(&mut sim, RequestType::Get, "/3/0/0", &critical),
        ResponseType::BadOption
    );
    let discover = ask(&mut sim, RequestType::Get, "/3/0", &accept(40));
    assert_eq!(discover, ResponseType::Content);
    let ops: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Operation(_)))
        .collect();
    assert_eq!(ops.len(), 15, "one event per server operation");
}

#[test]
fn create_and_delete_announce_the_new_object_list() {
    let mut sim = registered(config(), 5);
    let mut create = sim.server.request(RequestType::Post, "/3303");
    create.add_option(CoapOption::ContentFormat, 110u16.to_be_bytes().to_vec());
    create.payload = br#"[{"bn":"/3303/9/","n":"5700","v":21.5},{"n":"5701","vs":"Cel"}]"#.to_vec();
    let token = sim.send_to_client(&create);
    sim.run_for(SECOND);
    let answer = sim.server.reply_to(&token).unwrap().packet.clone();
    assert_eq!(code(&answer), ResponseType::Created);
    let location: Vec<_> = answer
        .get_option(CoapOption::LocationPath)
        .unwrap()
        .iter()
        .cloned()
        .collect();
    assert_eq!(location, vec![b"3303".to_vec(), b"9".to_vec()]);
    let updates = sim.server.requests_named(RequestType::Post, "/rd/a1b2c3");
    assert_eq!(updates.len(), 1, "an Update follows the Create");
    let links = String::from_utf8(updates[0].1.payload.clone()).unwrap();
    assert!(links.contains("</3303/9>"), "{links}");
    let read = read_with(&mut sim, "/3303/9/5701", None);
    assert_eq!(read.payload, b"Cel");

    let token = sim.send_request(RequestType::Delete, "/3303/9");
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::Deleted
    );
    let updates = sim.server.requests_named(RequestType::Post, "/rd/a1b2c3");
    assert_eq!(updates.len(), 2);
    assert!(
        !String::from_utf8(updates[1].1.payload.clone())
            .unwrap()
            .contains("</3303/9>")
    );
}

#[test]
fn reset_to_a_notification_cancels_the_observation() {
    let mut sim = Sim::new(client(
        ClientConfig {
            confirmable_notifications: 1.0,
            ..config()
        },
        6,
    ));
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    sim.write_attributes("/3/0/0", &["pmax=10"]);
    let token = sim.observe("/3/0/0");
    sim.run_for(15 * SECOND);
    let notification = sim.server.notifications_for(&token)[0].1.clone();
    assert_eq!(notification.header.get_type(), MessageType::Confirmable);
    // The server forgot the observation: it answers the next notification with RST.
    sim.server.silent = true;
    sim.run_for(10 * SECOND);
    let second = sim.server.notifications_for(&token)[1].1.clone();
    let reset = sim::empty(MessageType::Reset, second.header.message_id);
    sim.send_raw_to_client(reset.to_bytes().unwrap());
    sim.server.silent = false;
    let copies_before_reset = sim.server.notifications_for(&token).len();
    sim.run_for(60 * SECOND);
    assert_eq!(
        sim.server.notifications_for(&token).len(),
        copies_before_reset,
        "nothing after RST"
    );
    assert_eq!(sim.client.observed_paths().count(), 0);
    let notify = sim
        .request_records()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Notify)
        .collect::<Vec<_>>();
    assert_eq!(notify.last().unwrap().outcome, RequestOutcome::Reset);
}

#[test]
fn reset_to_a_non_notification_cancels_the_observation() {
    let mut sim = registered(config(), 7);
    sim.write_attributes("/3/0/0", &["pmax=10"]);
    let token = sim.observe("/3/0/0");
    sim.run_for(12 * SECOND);
    let notification = sim.server.notifications_for(&token)[0].1.clone();
    assert_eq!(notification.header.get_type(), MessageType::NonConfirmable);
    let reset = sim::empty(MessageType::Reset, notification.header.message_id);
    sim.send_raw_to_client(reset.to_bytes().unwrap());
    sim.run_for(60 * SECOND);
    assert_eq!(sim.server.notifications_for(&token).len(), 1);
    assert_eq!(sim.client.observed_paths().count(), 0);
}

/// Stopping while an Update is in flight: the Update's answer (even a 4.04) no longer steers
/// the client, the De-register goes out, and every request ends exactly once.
#[test]
fn stop_during_an_update_deregisters_once() {
    let mut sim = Sim::new(client(config(), 8));
    sim.latency = Duration::from_millis(500);
    let t0 = sim.now;
    sim.client.start(t0);
    sim.run_for(2 * SECOND);
    sim.server.update_code = ResponseType::NotFound;
    // Registered at 1 s, Update at 481 s reaches the server at 481.5 s, its 4.04 is back at 482 s.
    sim.run_until(t0 + Duration::from_millis(481_700));
    let updates = sim.server.requests_named(RequestType::Post, "/rd/a1b2c3");
    assert_eq!(updates.len(), 1, "the Update is on its way");
    sim.client.stop(sim.now);
    sim.run_for(10 * SECOND);
    assert_eq!(sim.client.state(), ClientState::Stopped);
    assert_eq!(registers(&sim).len(), 1, "no Register after stop");
    assert_eq!(
        sim.server
            .requests_named(RequestType::Delete, "/rd/a1b2c3")
            .len(),
        1
    );
    let records = sim.request_records();
    let kinds: Vec<_> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        vec![
            RequestKind::Register,
            RequestKind::Update,
            RequestKind::Deregister
        ]
    );
}

/// A Read larger than the block the server asks for comes in Block2 pieces that reassemble; a
/// Write sent in Block1 pieces is applied once, whole.
#[test]
fn block_wise_read_and_write() {
    use lwm2m_swarm::coap::block::{self, BlockValue};
    let mut sim = registered(config(), 9);
    let mut body = Vec::new();
    for num in 0.. {
        let mut read = sim.server.request(RequestType::Get, "/3/0");
        read.add_option(CoapOption::Accept, 110u16.to_be_bytes().to_vec());
        block::set_block2(&mut read, BlockValue::new(num, false, 32).unwrap());
        let token = sim.send_to_client(&read);
        sim.run_for(SECOND);
        let answer = sim.server.reply_to(&token).unwrap().packet.clone();
        assert_eq!(code(&answer), ResponseType::Content);
        body.extend_from_slice(&answer.payload);
        if !block::block2(&answer).unwrap().unwrap().more {
            break;
        }
        assert_eq!(answer.payload.len(), 32);
    }
    let records = content::decode(
        ContentFormat::SenmlJson,
        &Path::instance(3, 0),
        &body,
        sim.client.device(),
    )
    .unwrap();
    assert!(records.iter().any(|r| r.path == Path::resource(3, 0, 0)));

    let offset = b"+02:00 written in blocks, long enough to need two of them";
    let server = sim.server.address;
    let replies = write_in_blocks(&mut sim, "/3/0/14", offset, |_| server);
    let codes: Vec<_> = replies.iter().map(|r| code(&r.packet)).collect();
    assert_eq!(codes, vec![ResponseType::Continue, ResponseType::Changed]);
    assert_eq!(read_with(&mut sim, "/3/0/14", None).payload, offset);
    assert_eq!(
        ask(&mut sim, RequestType::Put, "/3/0/15", &write_cf(0, b"x")),
        ResponseType::NotFound
    );
}

/// Some servers send requests from another socket than the one clients register with, and expect
/// the answer there; a block-wise Write may even move between sockets, each block answered at its own.
#[test]
fn a_request_from_another_address_is_answered_there() {
    let mut sim = registered(config(), 10);
    let read = sim.server.request(RequestType::Get, "/3/0/0");
    let token = sim.send_to_client_from(addr(40001), &read);
    sim.run_for(SECOND);
    let reply = sim.server.reply_to(&token).expect("answered");
    assert_eq!(reply.to, addr(40001));
    assert_eq!(code(&reply.packet), ResponseType::Content);

    let offset = b"+02:00 written in blocks, long enough to need two of them";
    let socket = |num: usize| addr(40010 + num as u16);
    let replies = write_in_blocks(&mut sim, "/3/0/14", offset, socket);
    for (num, reply) in replies.iter().enumerate() {
        assert_eq!(reply.to, socket(num), "block {num}");
    }
    assert_eq!(read_with(&mut sim, "/3/0/14", None).payload, offset);
}

/// An Observe from a request socket: the answer and every notification (NON, CON and CON
/// retransmissions) go to that socket, while Updates still go to the server's address.
#[test]
fn notifications_go_to_the_observer_address() {
    for (seed, confirmable) in [(11, false), (12, true)] {
        let mut sim = registered(
            ClientConfig {
                confirmable_notifications: if confirmable { 1.0 } else { 0.0 },
                ..config()
            },
            seed,
        );
        let observer = addr(40002);
        sim.write_attributes("/3/0/0", &["pmax=10"]);
        let mut observe = sim.server.request(RequestType::Get, "/3/0/0");
        observe.add_option(CoapOption::Observe, Vec::new());
        let token = sim.send_to_client_from(observer, &observe);
        sim.run_for(25 * SECOND);
        assert_eq!(sim.server.reply_to(&token).unwrap().to, observer);
        if confirmable {
            // Unanswered, the CON notification is retransmitted to the observer too.
            sim.server.silent = true;
            sim.run_for(10 * SECOND);
            sim.server.silent = false;
        }
        // Past the Update at 80% of the 600 s lifetime.
        sim.run_for(Duration::from_secs(480));

        let kind = if confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        };
        let notifications: Vec<_> = sim
            .uplink
            .iter()
            .filter(|w| w.packet.get_token() == token && w.packet.header.get_type() == kind)
            .collect();
        assert!(notifications.len() > 40, "{}", notifications.len());
        assert!(notifications.iter().all(|w| w.to == observer));
        if confirmable {
            let retransmitted = notifications
                .windows(2)
                .any(|w| w[0].packet.header.message_id == w[1].packet.header.message_id);
            assert!(retransmitted, "a CON notification was retransmitted");
        }
        let updates: Vec<_> = sim
            .server
            .requests
            .iter()
            .filter(|r| r.path == "/rd/a1b2c3")
            .collect();
        assert_eq!(updates.len(), 1, "seed {seed}");
        assert_eq!(updates[0].to, sim.server.address);
        assert_eq!(sim.client.observed_paths().count(), 1);
    }
}

/// The message layer's own replies go back to the sender too: RST to a CON it cannot parse.
#[test]
fn an_rst_for_a_garbage_con_goes_back_to_its_sender() {
    let mut sim = registered(config(), 13);
    // CON, token length 9 (invalid), message ID 0x0707.
    let garbage = vec![0x49, 1, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    sim.send_raw_to_client_from(addr(40003), garbage);
    sim.run_for(SECOND);
    let last = sim.uplink.last().expect("the client answered");
    assert_eq!(last.packet.header.get_type(), MessageType::Reset);
    assert_eq!(last.packet.header.message_id, 0x0707);
    assert_eq!(last.to, addr(40003));
}

/// An Execute marked with the pre-2017 text/plain number (1541), as lwm2m-node-lib sends it,
/// is an Execute, not a Write.
#[test]
fn an_execute_with_the_old_text_format_number_runs() {
    let mut sim = registered(config(), 5);
    assert_eq!(
        ask(&mut sim, RequestType::Post, "/1/0/8", &write_cf(1541, b"")),
        ResponseType::Changed
    );
    let executes = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Operation(op) if op.kind == OperationKind::Execute))
        .count();
    assert_eq!(executes, 1);
    assert_eq!(
        sim.server
            .requests_named(RequestType::Post, "/rd/a1b2c3")
            .len(),
        1,
        "the Update it triggers"
    );
}

/// A server that never acknowledges CON notifications must not keep the De-register from going
/// out when the client stops: the notification is given up (counted as aborted).
#[test]
fn stop_gives_up_an_unacknowledged_notification() {
    let mut sim = registered(
        ClientConfig {
            confirmable_notifications: 1.0,
            ..config()
        },
        13,
    );
    sim.write_attributes("/3/0/0", &["pmax=5"]);
    let mut observe = sim.server.request(RequestType::Get, "/3/0/0");
    observe.add_option(CoapOption::Observe, Vec::new());
    let token = sim.send_to_client(&observe);
    sim.run_for(2 * SECOND);
    // Silent from now on: the next CON notification (at pmax) stays unacknowledged.
    sim.server.silent = true;
    sim.run_for(6 * SECOND);
    let stop_at = sim.now;
    sim.client.stop(stop_at);
    sim.server.silent = false;
    sim.run_for(SECOND);
    let deletes = sim.server.requests_named(RequestType::Delete, "/rd/a1b2c3");
    assert_eq!(deletes.len(), 1, "the De-register went out at once");
    assert!(deletes[0].0 < stop_at + SECOND);
    assert_eq!(sim.client.state(), ClientState::Stopped);
    let records = sim.request_records();
    let notify_ends: Vec<_> = records
        .iter()
        .filter(|r| r.kind == RequestKind::Notify)
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        notify_ends.last(),
        Some(&RequestOutcome::Aborted),
        "{notify_ends:?}"
    );
    // Nothing is sent for the observation after the stop but the De-register.
    let after: Vec<_> = sim.uplink.iter().filter(|w| w.at > stop_at).collect();
    assert!(
        after.iter().all(|w| w.packet.get_token() != token),
        "{after:?}"
    );
}

/// Queue mode with a request unanswered past the awake window: the client stays awake until the
/// request ends, and its next deadline is never one that is already due (no spinning).
#[test]
fn a_sleepy_client_with_a_request_out_has_no_past_deadline() {
    let mut sim = registered(
        ClientConfig {
            queue_mode: true,
            awake_window: SECOND,
            ..config()
        },
        14,
    );
    sim.server.silent = true;
    // The Update at 480 s goes unanswered: retransmissions until about 573 s.
    let mut now = sim.now;
    let mut past_deadlines = 0;
    while now < Instant::ZERO + Duration::from_secs(700) {
        let Some(next) = sim.client.poll_timeout() else {
            break;
        };
        if next <= now {
            past_deadlines += 1;
            assert!(
                past_deadlines < 100,
                "deadline {next:?} due again at {now:?}"
            );
        }
        now = now.max(next);
        sim.client.handle_timeout(now);
        while sim.client.poll_transmit().is_some() {}
        while sim.client.poll_event().is_some() {}
    }
    // The Update timed out, so the client registers again (and keeps retrying unanswered).
    assert_eq!(sim.client.state(), ClientState::Registering);
}

/// Writes `body` to `path` in 32-byte Block1 pieces, block `n` sent from `from(n)`; the replies.
fn write_in_blocks(
    sim: &mut Sim,
    path: &str,
    body: &[u8],
    from: impl Fn(usize) -> std::net::SocketAddr,
) -> Vec<sim::Reply> {
    use lwm2m_swarm::coap::block::{self, BlockValue};
    let mut replies = Vec::new();
    for (num, chunk) in body.chunks(32).enumerate() {
        let mut write = sim.server.request(RequestType::Put, path);
        write.add_option(CoapOption::ContentFormat, vec![]);
        let more = (num + 1) * 32 < body.len();
        block::set_block1(&mut write, BlockValue::new(num as u32, more, 32).unwrap());
        write.payload = chunk.to_vec();
        let token = sim.send_to_client_from(from(num), &write);
        sim.run_for(SECOND);
        replies.push(sim.server.reply_to(&token).expect("block answered").clone());
    }
    replies
}

/// A start the engine made late counts the Register's latency from when it was due.
#[test]
fn a_late_start_charges_the_register_from_its_due_time() {
    let mut sim = Sim::new(client(config(), 15));
    let due = sim.now;
    let late = due + Duration::from_millis(250);
    sim.now = late;
    sim.client.start_due(late, due);
    sim.run_for(SECOND);
    let register = sim.request_records()[0];
    assert_eq!(register.kind, RequestKind::Register);
    assert_eq!(register.intended, due);
    assert_eq!(register.sent, late);
    assert!(register.outcome.is_success());
}

/// `max_observations`: an Observe of a new token past the cap is answered 5.03 without Observe
/// and starts nothing; a re-Observe of a token already observed is still a refresh.
#[test]
fn an_observe_past_the_cap_is_refused_with_5_03() {
    let mut sim = registered(
        ClientConfig {
            max_observations: 2,
            ..config()
        },
        30,
    );
    let first = sim.observe("/3303/0/5700");
    sim.observe("/3/0/0");
    let third = sim.observe("/3/0/1");
    sim.run_for(SECOND);
    let refused = &sim.server.reply_to(&third).expect("answered").packet;
    assert_eq!(code(refused), ResponseType::ServiceUnavailable);
    assert_eq!(uint_option(refused, CoapOption::Observe), None);
    assert_eq!(sim.client.observed_paths().count(), 2);
    let refusals = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Operation(o) if o.kind == OperationKind::Observe && o.code == 0xA3))
        .count();
    assert_eq!(refusals, 1);
    // The first token observed again: a refresh, within the cap.
    let mut again = sim.server.request(RequestType::Get, "/3303/0/5700");
    again.add_option(CoapOption::Observe, Vec::new());
    again.set_token(first.clone());
    let mid = again.header.message_id;
    sim.send_to_client(&again);
    sim.run_for(SECOND);
    let refreshed = sim
        .downlink
        .iter()
        .any(|w| w.packet.header.message_id == mid);
    assert!(refreshed);
    let answer = sim
        .uplink
        .iter()
        .rev()
        .find(|w| w.packet.header.message_id == mid)
        .expect("the refresh is answered");
    assert_eq!(code(&answer.packet), ResponseType::Content);
    assert_eq!(sim.client.observed_paths().count(), 2);
}

/// `block1_max_size`: a Write growing past it, or announced past it with Size1, gets 4.13 and
/// its blocks are freed.
#[test]
fn a_block1_write_past_the_size_limit_is_refused_with_4_13() {
    let mut sim = registered(
        ClientConfig {
            block1_max_body: 64,
            ..config()
        },
        31,
    );
    let fits = [b'a'; 64];
    let replies = write_in_blocks(&mut sim, "/3/0/14", &fits, |_| sim::addr(5683));
    assert_eq!(code(&replies[1].packet), ResponseType::Changed);
    let too_long = [b'b'; 96];
    let replies = write_in_blocks(&mut sim, "/3/0/14", &too_long, |_| sim::addr(5683));
    let codes: Vec<_> = replies.iter().map(|r| code(&r.packet)).collect();
    assert_eq!(
        codes,
        [
            ResponseType::Continue,
            ResponseType::Continue,
            ResponseType::RequestEntityTooLarge
        ]
    );
    assert_eq!(read_with(&mut sim, "/3/0/14", None).payload, fits);
    let mut announced = sim.server.request(RequestType::Put, "/3/0/14");
    announced.add_option(CoapOption::ContentFormat, vec![]);
    blocks::set_block1(&mut announced, BlockValue::new(0, true, 32).unwrap());
    announced.add_option(CoapOption::Size1, 65u32.to_be_bytes().to_vec());
    announced.payload = vec![b'c'; 32];
    let token = sim.send_to_client(&announced);
    sim.run_for(SECOND);
    let reply = &sim.server.reply_to(&token).expect("answered").packet;
    assert_eq!(code(reply), ResponseType::RequestEntityTooLarge);
    // Nothing kept of it: its next block finds no transfer.
    let mut next = sim.server.request(RequestType::Put, "/3/0/14");
    next.add_option(CoapOption::ContentFormat, vec![]);
    blocks::set_block1(&mut next, BlockValue::new(1, false, 32).unwrap());
    next.payload = vec![b'c'; 8];
    let token = sim.send_to_client(&next);
    sim.run_for(SECOND);
    let reply = &sim.server.reply_to(&token).expect("answered").packet;
    assert_eq!(code(reply), ResponseType::RequestEntityIncomplete);
}

/// `block1_idle_timeout`: a transfer left half done is dropped when it expires, with no
/// traffic to prompt it, and a late next block gets 4.08.
#[test]
fn an_idle_block1_transfer_is_dropped_and_its_memory_freed() {
    let mut sim = registered(
        ClientConfig {
            block1_idle_timeout: Duration::from_secs(30),
            ..config()
        },
        32,
    );
    let block = |sim: &mut Sim, num: u32, more: bool| {
        let mut write = sim.server.request(RequestType::Put, "/3/0/14");
        write.add_option(CoapOption::ContentFormat, vec![]);
        blocks::set_block1(&mut write, BlockValue::new(num, more, 1024).unwrap());
        write.payload = vec![b'd'; if more { 1024 } else { 8 }];
        sim.send_to_client(&write)
    };
    let token = block(&mut sim, 0, true);
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::Continue
    );
    let holding = sim.client.heap_bytes();
    // Nothing else is due for minutes: the transfer's own deadline wakes the client.
    assert!(sim.client.poll_timeout().unwrap() <= sim.now + Duration::from_secs(30));
    sim.run_for(Duration::from_secs(31));
    let freed = holding - sim.client.heap_bytes();
    assert!(freed >= 1024, "freed {freed} B");
    let late = block(&mut sim, 1, false);
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&late).unwrap().packet),
        ResponseType::RequestEntityIncomplete
    );
}
