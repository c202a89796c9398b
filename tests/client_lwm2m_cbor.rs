//! LWM2M CBOR (content format 11544) between a scripted server and the client on a simulated
//! clock: a 1.2 client announces it, answers Read and Observe in it, takes Writes in it; a 1.1
//! client refuses it.

#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/sim.rs"]
mod sim;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{Client, ClientConfig, LwM2mVersion};
use lwm2m_swarm::content::{self, ContentFormat};
use lwm2m_swarm::model::{Path, Record, Value};
use shipped::device;
use sim::{Sim, uint_option, uri_path, uri_query};

const SECOND: Duration = Duration::from_secs(1);
const LWM2M_CBOR: u16 = 11544;

fn registered(version: LwM2mVersion) -> Sim {
    let config = ClientConfig {
        version,
        lifetime: Duration::from_secs(600),
        update_jitter: 0.0,
        ..ClientConfig::default()
    };
    let mut sim = Sim::new(Client::new(Arc::new(config), "sim-0001", device(5), 5));
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

/// Sends `request` and returns the client's answer a second later.
fn exchange(sim: &mut Sim, request: &Packet) -> Packet {
    let token = sim.send_to_client(request);
    sim.run_for(SECOND);
    sim.server
        .reply_to(&token)
        .expect("client answered")
        .packet
        .clone()
}

fn read(sim: &mut Sim, path: &str, accept: u16) -> Packet {
    let mut request = sim.server.request(RequestType::Get, path);
    request.add_option(CoapOption::Accept, accept.to_be_bytes().to_vec());
    exchange(sim, &request)
}

fn write(sim: &mut Sim, method: RequestType, path: &str, format: u16, payload: &[u8]) -> Packet {
    let mut request = sim.server.request(method, path);
    request.add_option(CoapOption::ContentFormat, format.to_be_bytes().to_vec());
    request.payload = payload.to_vec();
    exchange(sim, &request)
}

/// The payload in the content format the answer names.
fn records(packet: &Packet, path: &str, sim: &Sim) -> Vec<Record> {
    let format = uint_option(packet, CoapOption::ContentFormat).expect("Content-Format") as u16;
    content::decode(
        ContentFormat::from_code(format).expect("a known format"),
        &path.parse().unwrap(),
        &packet.payload,
        sim.client.device(),
    )
    .expect("payload decodes")
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

fn register_payload(sim: &Sim) -> (Vec<String>, String) {
    let (_, register) = sim
        .server
        .requests_named(RequestType::Post, "/rd")
        .into_iter()
        .find(|(_, p)| uri_path(p) == "/rd")
        .expect("a Register");
    (
        uri_query(&register),
        String::from_utf8(register.payload).unwrap(),
    )
}

#[test]
fn a_1_2_client_announces_lwm2m_cbor_in_its_register() {
    let sim = registered(LwM2mVersion::V1_2);
    let (query, links) = register_payload(&sim);
    assert!(query.iter().any(|q| q == "lwm2m=1.2"), "{query:?}");
    assert!(
        links.starts_with(r#"</>;rt="oma.lwm2m";ct="110 112 11542 11543 11544",</1>"#),
        "{links}"
    );
    assert!(links.contains("</3/0>"), "{links}");
}

#[test]
fn a_1_2_client_reads_in_lwm2m_cbor_what_tlv_reads() {
    let mut sim = registered(LwM2mVersion::V1_2);
    let cbor = read(&mut sim, "/3/0", LWM2M_CBOR);
    assert_eq!(code(&cbor), ResponseType::Content);
    assert_eq!(
        uint_option(&cbor, CoapOption::ContentFormat),
        Some(u32::from(LWM2M_CBOR))
    );
    // The payload is a CBOR map (major type 5).
    assert_eq!(cbor.payload[0] >> 5, 5, "{:02X?}", cbor.payload);
    let from_cbor = records(&cbor, "/3/0", &sim);
    let from_tlv = records(&read(&mut sim, "/3/0", 11542), "/3/0", &sim);
    let paths = |records: &[Record]| records.iter().map(|r| r.path).collect::<Vec<_>>();
    assert_eq!(paths(&from_cbor), paths(&from_tlv));
    for fixed in ["/3/0/0", "/3/0/1", "/3/0/2", "/3/0/16"] {
        assert_eq!(
            value_at(&from_cbor, fixed),
            value_at(&from_tlv, fixed),
            "{fixed}"
        );
    }
    // One resource, and a whole object: absolute paths whatever the request path.
    let temperature = read(&mut sim, "/3303/0/5700", LWM2M_CBOR);
    assert!(matches!(
        value_at(&records(&temperature, "/3303/0/5700", &sim), "/3303/0/5700"),
        Value::Float(_)
    ));
    let object = read(&mut sim, "/3303", LWM2M_CBOR);
    assert_eq!(code(&object), ResponseType::Content);
    assert!(matches!(
        value_at(&records(&object, "/3303", &sim), "/3303/0/5700"),
        Value::Float(_)
    ));
}

#[test]
fn a_1_2_client_observes_in_lwm2m_cbor() {
    let mut sim = registered(LwM2mVersion::V1_2);
    let attributes = sim.write_attributes("/3303/0/5700", &["pmin=10", "pmax=10"]);
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&attributes).unwrap().packet),
        ResponseType::Changed
    );
    let mut observe = sim.server.request(RequestType::Get, "/3303/0/5700");
    observe.add_option(CoapOption::Observe, Vec::new());
    observe.add_option(CoapOption::Accept, LWM2M_CBOR.to_be_bytes().to_vec());
    let token = sim.send_to_client(&observe);
    sim.run_for(25 * SECOND);
    let first = sim.server.reply_to(&token).unwrap().packet.clone();
    assert_eq!(code(&first), ResponseType::Content);
    assert!(uint_option(&first, CoapOption::Observe).is_some());
    let notifications = sim.server.notifications_for(&token);
    assert_eq!(
        notifications.len(),
        2,
        "one notification each 10 s over 25 s"
    );
    for packet in std::iter::once(&first).chain(notifications.iter().map(|(_, p)| p)) {
        assert_eq!(
            uint_option(packet, CoapOption::ContentFormat),
            Some(u32::from(LWM2M_CBOR))
        );
        let decoded = records(packet, "/3303/0/5700", &sim);
        assert!(matches!(
            value_at(&decoded, "/3303/0/5700"),
            Value::Float(_)
        ));
    }
}

#[test]
fn a_1_2_client_takes_writes_in_lwm2m_cbor() {
    let mut sim = registered(LwM2mVersion::V1_2);
    // {[3, 0, 14]: "+05:00"}
    let replace = [&[0xA1, 0x83, 0x03, 0x00, 0x0E, 0x66][..], b"+05:00"].concat();
    let answer = write(&mut sim, RequestType::Put, "/3/0/14", LWM2M_CBOR, &replace);
    assert_eq!(code(&answer), ResponseType::Changed);
    assert_eq!(read(&mut sim, "/3/0/14", 0).payload, b"+05:00");
    // A partial update of the instance: {[3, 0]: {14: "-03:00"}}
    let update = [&[0xA1, 0x82, 0x03, 0x00, 0xA1, 0x0E, 0x66][..], b"-03:00"].concat();
    let answer = write(&mut sim, RequestType::Post, "/3/0", LWM2M_CBOR, &update);
    assert_eq!(code(&answer), ResponseType::Changed);
    let after = records(&read(&mut sim, "/3/0", LWM2M_CBOR), "/3/0", &sim);
    assert_eq!(value_at(&after, "/3/0/14"), Value::String("-03:00".into()));
    // Malformed CBOR, and a value of the wrong type: 4.00, and the value stays.
    let broken = write(
        &mut sim,
        RequestType::Put,
        "/3/0/14",
        LWM2M_CBOR,
        &[0xA1, 0x83],
    );
    assert_eq!(code(&broken), ResponseType::BadRequest);
    // {[3, 0, 14]: 5}
    let mistyped = write(
        &mut sim,
        RequestType::Put,
        "/3/0/14",
        LWM2M_CBOR,
        &[0xA1, 0x83, 0x03, 0x00, 0x0E, 0x05],
    );
    assert_eq!(code(&mistyped), ResponseType::BadRequest);
    assert_eq!(read(&mut sim, "/3/0/14", 0).payload, b"-03:00");
}

#[test]
fn a_1_1_client_refuses_lwm2m_cbor() {
    let mut sim = registered(LwM2mVersion::V1_1);
    let (_, links) = register_payload(&sim);
    assert!(!links.contains("oma.lwm2m"), "{links}");
    assert_eq!(
        code(&read(&mut sim, "/3/0", LWM2M_CBOR)),
        ResponseType::NotAcceptable
    );
    let payload = [&[0xA1, 0x83, 0x03, 0x00, 0x0E, 0x66][..], b"+05:00"].concat();
    assert_eq!(
        code(&write(
            &mut sim,
            RequestType::Put,
            "/3/0/14",
            LWM2M_CBOR,
            &payload
        )),
        ResponseType::UnsupportedContentFormat
    );
    // The same client still reads SenML CBOR.
    assert_eq!(code(&read(&mut sim, "/3/0", 112)), ResponseType::Content);
}
