//! LWM2M 1.1 composite operations on the client, against a scripted server on a simulated
//! clock: Read-Composite (FETCH), Write-Composite (iPATCH), Observe-Composite and its cancel.

#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/sim.rs"]
mod sim;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{Client, ClientConfig, Event, LwM2mVersion, OperationKind};
use lwm2m_swarm::content::{self, ContentFormat};
use lwm2m_swarm::model::{Path, Record, Value};
use shipped::device;
use sim::{Sim, uint_option};

const SECOND: Duration = Duration::from_secs(1);
const SENML_JSON: u16 = 110;
const SENML_CBOR: u16 = 112;

fn config() -> ClientConfig {
    ClientConfig {
        lifetime: Duration::from_secs(600),
        update_jitter: 0.0,
        ..ClientConfig::default()
    }
}

/// A client started and registered one second into the simulation.
fn registered(config: ClientConfig, seed: u64) -> Sim {
    let client = Client::new(Arc::new(config), "sim-0001", device(seed), seed);
    let mut sim = Sim::new(client);
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    sim
}

fn code(packet: &Packet) -> ResponseType {
    match packet.header.code {
        MessageClass::Response(code) => code,
        other => panic!("not a response: {other:?}"),
    }
}

/// `[{"n":"/3/0/0"},...]`: the names of a composite request.
fn names(paths: &[&str]) -> Vec<u8> {
    let records: Vec<String> = paths.iter().map(|p| format!("{{\"n\":\"{p}\"}}")).collect();
    format!("[{}]", records.join(",")).into_bytes()
}

/// A request to the root with a `SenML` JSON payload.
fn composite(sim: &mut Sim, method: RequestType, payload: Vec<u8>) -> Packet {
    let mut request = sim.server.request(method, "/");
    request.add_option(CoapOption::ContentFormat, SENML_JSON.to_be_bytes().to_vec());
    request.payload = payload;
    request
}

/// Sends `request`, lets a second pass and returns the client's answer.
fn ask(sim: &mut Sim, request: &Packet) -> Packet {
    let token = sim.send_to_client(request);
    sim.run_for(SECOND);
    sim.server
        .reply_to(&token)
        .expect("client answered")
        .packet
        .clone()
}

/// The records of a `SenML` answer (JSON or CBOR, as its Content-Format says).
fn records(packet: &Packet, sim: &Sim) -> Vec<Record> {
    let format = uint_option(packet, CoapOption::ContentFormat).expect("content format") as u16;
    let format = ContentFormat::from_code(format).expect("known format");
    assert!(matches!(
        format,
        ContentFormat::SenmlJson | ContentFormat::SenmlCbor
    ));
    content::decode(format, &Path::ROOT, &packet.payload, sim.client.device())
        .expect("SenML payload decodes")
}

fn paths_of(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.path.to_string()).collect()
}

fn value_at(records: &[Record], path: &str) -> Value {
    let path: Path = path.parse().unwrap();
    records
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no {path} in {records:?}"))
        .value
        .clone()
}

/// The codes the client recorded for operations of `kind`.
fn operation_codes(sim: &Sim, kind: OperationKind) -> Vec<u8> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Operation(o) if o.kind == kind => Some(o.code),
            _ => None,
        })
        .collect()
}

fn read_now(sim: &mut Sim, paths: &[&str]) -> Vec<Record> {
    let request = composite(sim, RequestType::Fetch, names(paths));
    let answer = ask(sim, &request);
    assert_eq!(code(&answer), ResponseType::Content);
    records(&answer, sim)
}

#[test]
fn read_composite_returns_every_path_named() {
    let mut sim = registered(config(), 1);
    let read = read_now(&mut sim, &["/3/0/0", "/3303/0/5700", "/3303/1/5750"]);
    assert_eq!(paths_of(&read), ["/3/0/0", "/3303/0/5700", "/3303/1/5750"]);
    assert_eq!(
        value_at(&read, "/3/0/0"),
        Value::String("lwm2m-swarm".into())
    );
    assert_eq!(
        value_at(&read, "/3303/1/5750"),
        Value::String("outdoor".into())
    );
    assert!(matches!(value_at(&read, "/3303/0/5700"), Value::Float(_)));
    // Accept 112: the same read in SenML CBOR; an instance path brings all its resources.
    let mut request = composite(&mut sim, RequestType::Fetch, names(&["/3303/1", "/3/0/14"]));
    request.add_option(CoapOption::Accept, SENML_CBOR.to_be_bytes().to_vec());
    let answer = ask(&mut sim, &request);
    assert_eq!(code(&answer), ResponseType::Content);
    assert_eq!(
        uint_option(&answer, CoapOption::ContentFormat),
        Some(u32::from(SENML_CBOR))
    );
    let read = records(&answer, &sim);
    assert!(read.iter().any(|r| r.path.to_string() == "/3303/1/5750"));
    assert!(read.iter().any(|r| r.path.to_string() == "/3/0/14"));
    assert!(
        read.iter()
            .all(|r| r.path.to_string().starts_with("/3303/1/") || r.path.to_string() == "/3/0/14")
    );
    // Not SenML: 4.15 for the request, 4.06 for the answer.
    let mut tlv = composite(&mut sim, RequestType::Fetch, names(&["/3/0/0"]));
    tlv.clear_option(CoapOption::ContentFormat);
    tlv.add_option(CoapOption::ContentFormat, 11542u16.to_be_bytes().to_vec());
    assert_eq!(
        code(&ask(&mut sim, &tlv)),
        ResponseType::UnsupportedContentFormat
    );
    let mut text = composite(&mut sim, RequestType::Fetch, names(&["/3/0/0"]));
    text.add_option(CoapOption::Accept, vec![0]);
    assert_eq!(code(&ask(&mut sim, &text)), ResponseType::NotAcceptable);
    assert_eq!(
        operation_codes(&sim, OperationKind::ReadComposite),
        [0x45, 0x45, 0x8F, 0x86]
    );
}

/// TS Core 1.1 treats Read-Composite as best effort: a path without a value is left out of
/// the answer; only when none of them has one is the answer 4.04.
#[test]
fn read_composite_leaves_out_unknown_paths() {
    let mut sim = registered(config(), 2);
    let read = read_now(
        &mut sim,
        &["/3/0/0", "/3/0/999", "/3303/7/5700", "/3303/0/5750"],
    );
    assert_eq!(paths_of(&read), ["/3/0/0", "/3303/0/5750"]);
    let request = composite(
        &mut sim,
        RequestType::Fetch,
        names(&["/3/0/999", "/42/0/1"]),
    );
    assert_eq!(code(&ask(&mut sim, &request)), ResponseType::NotFound);
    // The Security object stays invisible to a management server.
    let request = composite(&mut sim, RequestType::Fetch, names(&["/0/0/0"]));
    assert_eq!(code(&ask(&mut sim, &request)), ResponseType::NotFound);
}

#[test]
fn write_composite_is_all_or_nothing() {
    let mut sim = registered(config(), 3);
    let before = read_now(&mut sim, &["/3/0/14", "/3303/0/5750"]);
    // One unknown resource: 4.04 and neither good record is written.
    let unknown = br#"[{"n":"/3/0/14","vs":"+02:00"},{"n":"/3303/0/5750","vs":"indoor"},{"n":"/3/0/999","vs":"x"}]"#;
    let request = composite(&mut sim, RequestType::IPatch, unknown.to_vec());
    assert_eq!(code(&ask(&mut sim, &request)), ResponseType::NotFound);
    assert_eq!(read_now(&mut sim, &["/3/0/14", "/3303/0/5750"]), before);
    // One read-only resource: 4.05, nothing written.
    let read_only = br#"[{"n":"/3/0/14","vs":"+02:00"},{"n":"/3/0/0","vs":"Acme"}]"#;
    let request = composite(&mut sim, RequestType::IPatch, read_only.to_vec());
    assert_eq!(
        code(&ask(&mut sim, &request)),
        ResponseType::MethodNotAllowed
    );
    assert_eq!(read_now(&mut sim, &["/3/0/14", "/3303/0/5750"]), before);
    // One value of the wrong type: 4.00, nothing written.
    let wrong_type = br#"[{"n":"/3303/0/5750","vs":"indoor"},{"n":"/3/0/14","v":2}]"#;
    let request = composite(&mut sim, RequestType::IPatch, wrong_type.to_vec());
    assert_eq!(code(&ask(&mut sim, &request)), ResponseType::BadRequest);
    assert_eq!(read_now(&mut sim, &["/3/0/14", "/3303/0/5750"]), before);
    // All good: 2.04 and both written.
    let good = br#"[{"bn":"/3","n":"/0/14","vs":"+02:00"},{"n":"303/0/5750","vs":"indoor"}]"#;
    let request = composite(&mut sim, RequestType::IPatch, good.to_vec());
    assert_eq!(code(&ask(&mut sim, &request)), ResponseType::Changed);
    let after = read_now(&mut sim, &["/3/0/14", "/3303/0/5750"]);
    assert_eq!(value_at(&after, "/3/0/14"), Value::String("+02:00".into()));
    assert_eq!(
        value_at(&after, "/3303/0/5750"),
        Value::String("indoor".into())
    );
    assert_eq!(
        operation_codes(&sim, OperationKind::WriteComposite),
        [0x84, 0x85, 0x80, 0x44]
    );
}

/// Sends an Observe-Composite of `paths`; returns its token and the first answer.
fn observe_composite(sim: &mut Sim, paths: &[&str]) -> (Vec<u8>, Packet) {
    let mut request = composite(sim, RequestType::Fetch, names(paths));
    request.add_option(CoapOption::Observe, Vec::new());
    let token = request.get_token().to_vec();
    let answer = ask(sim, &request);
    (token, answer)
}

#[test]
fn observe_composite_notifies_on_change_until_cancelled_by_fetch() {
    let mut sim = registered(config(), 4);
    let (token, first) = observe_composite(&mut sim, &["/3/0/14", "/3303/0/5750"]);
    assert_eq!(code(&first), ResponseType::Content);
    assert!(uint_option(&first, CoapOption::Observe).is_some());
    assert_eq!(
        paths_of(&records(&first, &sim)),
        ["/3/0/14", "/3303/0/5750"]
    );
    assert_eq!(sim.client.observed_paths().count(), 1);
    // Neither value changes: no notification.
    sim.run_for(30 * SECOND);
    assert!(sim.server.notifications_for(&token).is_empty());
    // One of them is written: the notification carries the composite's values.
    let write = br#"[{"n":"/3303/0/5750","vs":"indoor"}]"#;
    let request = composite(&mut sim, RequestType::IPatch, write.to_vec());
    assert_eq!(code(&ask(&mut sim, &request)), ResponseType::Changed);
    sim.run_for(5 * SECOND);
    let notifications = sim.server.notifications_for(&token);
    assert_eq!(notifications.len(), 1);
    let notified = records(&notifications[0].1, &sim);
    assert_eq!(paths_of(&notified), ["/3/0/14", "/3303/0/5750"]);
    assert_eq!(
        value_at(&notified, "/3303/0/5750"),
        Value::String("indoor".into())
    );
    assert!(
        uint_option(&notifications[0].1, CoapOption::Observe)
            > uint_option(&first, CoapOption::Observe)
    );
    // FETCH with Observe 1 and the same token: answered with the values, no Observe option,
    // and no notification after.
    let mut cancel = composite(
        &mut sim,
        RequestType::Fetch,
        names(&["/3/0/14", "/3303/0/5750"]),
    );
    cancel.add_option(CoapOption::Observe, vec![1]);
    cancel.set_token(token.clone());
    let mid = cancel.header.message_id;
    sim.send_to_client(&cancel);
    sim.run_for(SECOND);
    let answer = sim
        .uplink
        .iter()
        .find(|w| w.packet.header.message_id == mid && w.packet.get_token() == token)
        .expect("the cancel is answered");
    assert_eq!(code(&answer.packet), ResponseType::Content);
    assert_eq!(uint_option(&answer.packet, CoapOption::Observe), None);
    assert_eq!(sim.client.observed_paths().count(), 0);
    let request = composite(
        &mut sim,
        RequestType::IPatch,
        br#"[{"n":"/3/0/14","vs":"+01:00"}]"#.to_vec(),
    );
    assert_eq!(code(&ask(&mut sim, &request)), ResponseType::Changed);
    sim.run_for(30 * SECOND);
    assert_eq!(sim.server.notifications_for(&token).len(), 1);
    assert_eq!(
        operation_codes(&sim, OperationKind::ObserveComposite),
        [0x45]
    );
    assert_eq!(
        operation_codes(&sim, OperationKind::CancelObservation),
        [0x45]
    );
}

/// The generated temperature changes by itself: notifications follow it (pmax unset, so
/// only changes notify), and an RST to one ends the observation.
#[test]
fn observe_composite_follows_generated_values_and_ends_on_reset() {
    let mut sim = registered(config(), 5);
    let (token, first) = observe_composite(&mut sim, &["/3303/0/5700", "/3/0/0"]);
    assert_eq!(code(&first), ResponseType::Content);
    let initial = value_at(&records(&first, &sim), "/3303/0/5700");
    sim.run_for(120 * SECOND);
    let notifications = sim.server.notifications_for(&token);
    assert!(!notifications.is_empty(), "the temperature moved in 2 min");
    let notified = records(&notifications[0].1, &sim);
    assert_eq!(paths_of(&notified), ["/3303/0/5700", "/3/0/0"]);
    assert_ne!(value_at(&notified, "/3303/0/5700"), initial);
    let last = notifications.last().unwrap().1.clone();
    assert_eq!(last.header.get_type(), MessageType::NonConfirmable);
    let reset = sim::empty(MessageType::Reset, last.header.message_id);
    sim.send_raw_to_client(reset.to_bytes().unwrap());
    sim.run_for(SECOND);
    let count = sim.server.notifications_for(&token).len();
    assert_eq!(sim.client.observed_paths().count(), 0);
    sim.run_for(120 * SECOND);
    assert_eq!(sim.server.notifications_for(&token).len(), count);
}

/// Composite observations share `max_observations` with plain ones.
#[test]
fn observe_composite_past_the_cap_is_refused_with_5_03() {
    let mut sim = registered(
        ClientConfig {
            max_observations: 2,
            ..config()
        },
        6,
    );
    sim.observe("/3/0/0");
    let (_, first) = observe_composite(&mut sim, &["/3/0/14"]);
    assert_eq!(code(&first), ResponseType::Content);
    let (_, refused) = observe_composite(&mut sim, &["/3303/0/5750"]);
    assert_eq!(code(&refused), ResponseType::ServiceUnavailable);
    assert_eq!(uint_option(&refused, CoapOption::Observe), None);
    let plain = sim.observe("/3/0/1");
    sim.run_for(SECOND);
    let refused = &sim.server.reply_to(&plain).expect("answered").packet;
    assert_eq!(code(refused), ResponseType::ServiceUnavailable);
    assert_eq!(sim.client.observed_paths().count(), 2);
    assert_eq!(
        operation_codes(&sim, OperationKind::ObserveComposite),
        [0x45, 0xA3]
    );
}

/// LWM2M 1.0 has no composite operations: FETCH and iPATCH get 4.05.
#[test]
fn a_1_0_client_refuses_composite_operations() {
    let mut sim = registered(
        ClientConfig {
            version: LwM2mVersion::V1_0,
            ..config()
        },
        7,
    );
    let request = composite(&mut sim, RequestType::Fetch, names(&["/3/0/0"]));
    assert_eq!(
        code(&ask(&mut sim, &request)),
        ResponseType::MethodNotAllowed
    );
    let request = composite(
        &mut sim,
        RequestType::IPatch,
        br#"[{"n":"/3/0/14","vs":"+02:00"}]"#.to_vec(),
    );
    assert_eq!(
        code(&ask(&mut sim, &request)),
        ResponseType::MethodNotAllowed
    );
    assert_eq!(operation_codes(&sim, OperationKind::Other), [0x85, 0x85]);
    assert!(operation_codes(&sim, OperationKind::ReadComposite).is_empty());
}
