//! A bootstrapping client against a scripted bootstrap server and LWM2M server on a simulated
//! clock: the Bootstrap-Request, the bootstrap server's operations, the Finish, the switch to
//! the written server, and every way a bootstrap can fail.

#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/sim.rs"]
mod sim;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{
    BootstrapFailure, BootstrapOutcome, BootstrapRecord, Client, ClientBootstrapConfig,
    ClientConfig, ClientState, Event, LwM2mVersion, OperationKind, RequestKind, RequestOutcome,
    RetryPolicy,
};
use lwm2m_swarm::content::{self, ContentFormat};
use lwm2m_swarm::model::{Device, Path, Record, Value};
use shipped::device;
use sim::{Sim, addr, uri_path, uri_query};

const SECOND: Duration = Duration::from_secs(1);

fn bootstrap_server() -> SocketAddr {
    addr(5783)
}

/// A client whose server is a bootstrap server; a registration or bootstrap procedure is three
/// attempts, 60 s then 120 s apart.
fn config() -> ClientConfig {
    ClientConfig {
        server: bootstrap_server(),
        bootstrap: Some(ClientBootstrapConfig {
            finish_timeout: Duration::from_secs(30),
            preferred_format: None,
        }),
        lifetime: Duration::from_secs(600),
        update_jitter: 0.0,
        retry: RetryPolicy {
            retry_count: 3,
            retry_timer: Duration::from_secs(60),
            sequence_delay: Duration::from_secs(600),
            sequence_retry_count: 1,
        },
        ..ClientConfig::default()
    }
}

/// Started one second ago: its Bootstrap-Request has been answered 2.04.
fn started(config: ClientConfig) -> Sim {
    let mut sim = Sim::new(Client::new(Arc::new(config), "sim-0001", device(5), 5));
    sim.server.sockets.push(bootstrap_server());
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    sim
}

fn bootstrap_requests(sim: &Sim) -> Vec<Packet> {
    sim.server
        .requests
        .iter()
        .filter(|r| r.path == "/bs" && r.to == bootstrap_server())
        .map(|r| r.packet.clone())
        .collect()
}

fn registers(sim: &Sim) -> Vec<(SocketAddr, Packet)> {
    sim.server
        .requests
        .iter()
        .filter(|r| r.path == "/rd" && r.method == RequestType::Post)
        .map(|r| (r.to, r.packet.clone()))
        .collect()
}

fn bootstraps(sim: &Sim) -> Vec<BootstrapRecord> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Bootstrap(b) => Some(*b),
            _ => None,
        })
        .collect()
}

fn code(packet: &Packet) -> ResponseType {
    match packet.header.code {
        MessageClass::Response(code) => code,
        other => panic!("not a response: {other:?}"),
    }
}

/// Sends `request` from the bootstrap server and returns the client's answer.
fn ask(sim: &mut Sim, request: &Packet) -> Packet {
    let token = sim.send_to_client_from(bootstrap_server(), request);
    sim.run_for(SECOND);
    sim.server
        .reply_to(&token)
        .expect("the client answered")
        .packet
        .clone()
}

fn plain(sim: &mut Sim, method: RequestType, path: &str) -> Packet {
    let request = sim.server.request(method, path);
    ask(sim, &request)
}

fn discover(sim: &mut Sim, path: &str) -> (ResponseType, String) {
    let mut request = sim.server.request(RequestType::Get, path);
    request.add_option(CoapOption::Accept, vec![40]);
    let answer = ask(sim, &request);
    (
        code(&answer),
        String::from_utf8(answer.payload.clone()).unwrap(),
    )
}

fn write(sim: &mut Sim, path: &str, format: ContentFormat, records: &[Record]) -> ResponseType {
    let base: Path = path.parse().unwrap();
    let payload = content::encode(format, &base, records, sim.client.device()).unwrap();
    let mut request = sim.server.request(RequestType::Put, path);
    request.add_option(
        CoapOption::ContentFormat,
        format.code().to_be_bytes().to_vec(),
    );
    request.payload = payload;
    code(&ask(sim, &request))
}

fn record(path: &str, value: Value) -> Record {
    Record {
        path: path.parse().unwrap(),
        value,
    }
}

/// A Security instance for an LWM2M server (mode 3 `NoSec`, or 0 PSK with identity and key).
fn security(instance: u16, uri: &str, psk: Option<(&[u8], &[u8])>) -> Vec<Record> {
    let at = |r: u16| format!("/0/{instance}/{r}");
    let mut records = vec![
        record(&at(0), Value::String(uri.into())),
        record(&at(1), Value::Boolean(false)),
        record(&at(2), Value::Integer(if psk.is_some() { 0 } else { 3 })),
        record(&at(10), Value::Integer(101)),
    ];
    if let Some((identity, key)) = psk {
        records.push(record(&at(3), Value::Opaque(identity.to_vec())));
        records.push(record(&at(5), Value::Opaque(key.to_vec())));
    }
    records
}

fn server_account(lifetime: i64) -> Vec<Record> {
    vec![
        record("/1/0/0", Value::Integer(101)),
        record("/1/0/1", Value::Integer(lifetime)),
        record("/1/0/6", Value::Boolean(true)),
        record("/1/0/7", Value::String("U".into())),
    ]
}

/// What a bootstrap server usually does: delete the old accounts, write new ones (Security
/// in TLV, Server in `SenML` JSON).
fn provision(sim: &mut Sim, uri: &str, psk: Option<(&[u8], &[u8])>, lifetime: i64) {
    assert_eq!(
        code(&plain(sim, RequestType::Delete, "/0")),
        ResponseType::Deleted
    );
    assert_eq!(
        code(&plain(sim, RequestType::Delete, "/1")),
        ResponseType::Deleted
    );
    let sec = security(1, uri, psk);
    assert_eq!(
        write(sim, "/0/1", ContentFormat::Tlv, &sec),
        ResponseType::Changed
    );
    let srv = server_account(lifetime);
    assert_eq!(
        write(sim, "/1/0", ContentFormat::SenmlJson, &srv),
        ResponseType::Changed
    );
}

fn finish(sim: &mut Sim) -> ResponseType {
    let request = sim.server.request(RequestType::Post, "/bs");
    code(&ask(sim, &request))
}

#[test]
fn a_bootstrap_from_request_to_registration() {
    let mut sim = started(config());
    let t0 = Sim::new(Client::new(Arc::new(config()), "x", device(1), 1)).now;

    // POST /bs?ep=NAME to the bootstrap server, no pct unless asked.
    let requests = bootstrap_requests(&sim);
    assert_eq!(requests.len(), 1);
    assert_eq!(uri_query(&requests[0]), ["ep=sim-0001"]);
    assert_eq!(sim.client.state(), ClientState::Bootstrapping);
    assert!(registers(&sim).is_empty(), "no Register before the Finish");

    // Fresh from the factory: the bootstrap account alone (no ssid or uri shown), the device.
    let (answer, links) = discover(&mut sim, "/");
    assert_eq!(answer, ResponseType::Content);
    assert!(links.starts_with("</>;lwm2m=1.1,"), "{links}");
    assert!(
        links.contains(",</0/0>,") && links.contains("</3/0>"),
        "{links}"
    );
    assert!(
        !links.contains("</1/") && !links.contains("ssid"),
        "{links}"
    );

    provision(&mut sim, "coap://127.0.0.1:5683", None, 120);
    let (_, links) = discover(&mut sim, "/0");
    assert_eq!(
        links,
        "</>;lwm2m=1.1,</0>;ver=1.2,</0/0>,</0/1>;ssid=101;uri=\"coap://127.0.0.1:5683\""
    );
    let (_, links) = discover(&mut sim, "/1");
    assert_eq!(links, "</>;lwm2m=1.1,</1>;ver=1.1,</1/0>;ssid=101");

    // 1.1 Bootstrap-Read: the Server object, nothing else.
    let mut read = sim.server.request(RequestType::Get, "/1/0/1");
    read.add_option(CoapOption::Accept, vec![]);
    let lifetime = ask(&mut sim, &read);
    assert_eq!(code(&lifetime), ResponseType::Content);
    assert_eq!(lifetime.payload, b"120");
    assert_eq!(
        code(&plain(&mut sim, RequestType::Get, "/3/0")),
        ResponseType::MethodNotAllowed
    );
    // Not bootstrap operations.
    assert_eq!(
        code(&plain(&mut sim, RequestType::Post, "/3/0/4")),
        ResponseType::MethodNotAllowed
    );

    // The Finish: 2.04, then a Register to the written server with the written lifetime.
    let finish_at = sim.now;
    assert_eq!(finish(&mut sim), ResponseType::Changed);
    sim.run_for(SECOND);
    let registers = registers(&sim);
    assert_eq!(registers.len(), 1, "{:?}", sim.server.requests);
    let (to, register) = &registers[0];
    assert_eq!(*to, addr(5683));
    let query = uri_query(register);
    assert!(query.contains(&"lt=120".to_string()), "{query:?}");
    assert!(query.contains(&"b=U".to_string()), "{query:?}");
    assert_eq!(sim.client.state(), ClientState::Registered);
    assert_eq!(sim.client.server(), addr(5683));
    assert!(!sim.client.is_secure());

    // One attempt, finished, timed from the request's due time to the Finish.
    let done = bootstraps(&sim);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome, BootstrapOutcome::Finished);
    assert_eq!(done[0].started, t0);
    assert!(done[0].completed >= finish_at && done[0].completed <= finish_at + SECOND);
    let request = sim
        .request_records()
        .into_iter()
        .find(|r| r.kind == RequestKind::Bootstrap)
        .unwrap();
    assert_eq!(request.outcome, RequestOutcome::Response(0x44));
    // The bootstrap server's operations were counted as server operations.
    let finishes = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Operation(o) if o.kind == OperationKind::BootstrapFinish && o.code == 0x44))
        .count();
    assert_eq!(finishes, 1);

    // Registered, Security is invisible again.
    let token = sim.send_request(RequestType::Get, "/0/1");
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::NotFound
    );
}

#[test]
fn bootstrap_delete_keeps_the_bootstrap_account_and_the_device() {
    let mut sim = started(config());
    assert_eq!(
        code(&plain(&mut sim, RequestType::Delete, "/")),
        ResponseType::Deleted
    );
    let (_, links) = discover(&mut sim, "/");
    assert!(
        links.contains("</0/0>") && links.contains("</3/0>"),
        "{links}"
    );
    for gone in ["</3303/0>", "</4/0>", "</1/0>"] {
        assert!(!links.contains(gone), "{gone} survived: {links}");
    }
    // Emptied objects are still announced, as objects.
    assert!(links.contains("</3303>"), "{links}");
    // Named directly, they stay too (4.00); what does not exist is 4.04.
    for path in ["/0/0", "/3/0"] {
        assert_eq!(
            code(&plain(&mut sim, RequestType::Delete, path)),
            ResponseType::BadRequest,
            "{path}"
        );
    }
    assert_eq!(
        code(&plain(&mut sim, RequestType::Delete, "/3303/0")),
        ResponseType::NotFound
    );
    assert_eq!(
        code(&plain(&mut sim, RequestType::Delete, "/3/0/1")),
        ResponseType::BadRequest
    );
    // A Write creates what a Delete removed, read-only resources included.
    let sec = security(4, "coap://127.0.0.1:5683", None);
    assert_eq!(
        write(&mut sim, "/0/4", ContentFormat::SenmlCbor, &sec),
        ResponseType::Changed
    );
    let srv = server_account(300);
    assert_eq!(
        write(&mut sim, "/1", ContentFormat::Tlv, &srv),
        ResponseType::Changed,
        "a TLV of object instances written to the object"
    );
    let (_, links) = discover(&mut sim, "/");
    assert!(
        links
            .contains("</0/4>;ssid=101;uri=\"coap://127.0.0.1:5683\",</1>;ver=1.1,</1/0>;ssid=101"),
        "{links}"
    );
    assert_eq!(finish(&mut sim), ResponseType::Changed);
}

#[test]
fn a_finish_without_a_usable_account_is_refused_and_the_bootstrap_retried() {
    let mut sim = started(config());
    // Nothing written: no LWM2M server to go to.
    assert_eq!(finish(&mut sim), ResponseType::NotAcceptable);
    // A Finish for an attempt that has ended is refused too, and ends nothing more.
    assert_eq!(finish(&mut sim), ResponseType::NotAcceptable);
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(
        outcomes,
        [BootstrapOutcome::Failed(BootstrapFailure::Unusable)]
    );
    // The retry comes 60 s after the failure, with a new Bootstrap-Request.
    let failed_at = bootstraps(&sim)[0].completed;
    sim.run_until(failed_at + 59 * SECOND);
    assert_eq!(bootstrap_requests(&sim).len(), 1);
    sim.run_until(failed_at + 61 * SECOND);
    assert_eq!(bootstrap_requests(&sim).len(), 2);
    // An account whose mode does not fit its URI (PSK over coap://) is no better.
    let sec = security(1, "coap://127.0.0.1:5683", Some((b"id", b"key")));
    write(&mut sim, "/0/1", ContentFormat::Tlv, &sec);
    write(&mut sim, "/1/0", ContentFormat::Tlv, &server_account(100));
    assert_eq!(finish(&mut sim), ResponseType::NotAcceptable);
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(
        outcomes,
        [BootstrapOutcome::Failed(BootstrapFailure::Unusable); 2]
    );
    // The third attempt, 120 s later: this time the account is good.
    let failed_at = bootstraps(&sim)[1].completed;
    sim.run_until(failed_at + 121 * SECOND);
    assert_eq!(bootstrap_requests(&sim).len(), 3);
    let sec = security(1, "coap://127.0.0.1:5683", None);
    write(&mut sim, "/0/1", ContentFormat::Tlv, &sec);
    assert_eq!(finish(&mut sim), ResponseType::Changed);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
}

#[test]
fn a_lost_finish_times_out_and_the_bootstrap_is_retried() {
    let mut sim = started(config());
    let accepted = sim.now;
    provision(&mut sim, "coap://127.0.0.1:5683", None, 120);
    // The bootstrap server never sends its Finish: 30 s after the request's 2.04 it failed.
    sim.run_for(40 * SECOND);
    let done = bootstraps(&sim);
    assert_eq!(
        done.iter().map(|b| b.outcome).collect::<Vec<_>>(),
        [BootstrapOutcome::Failed(BootstrapFailure::FinishTimeout)]
    );
    let failed_at = done[0].completed;
    assert!(
        failed_at >= accepted + 29 * SECOND && failed_at <= accepted + 30 * SECOND,
        "{failed_at:?}"
    );
    assert_eq!(sim.client.state(), ClientState::Bootstrapping);
    // Retried 60 s later; the second attempt finishes.
    sim.run_until(failed_at + 61 * SECOND);
    assert_eq!(bootstrap_requests(&sim).len(), 2);
    assert_eq!(finish(&mut sim), ResponseType::Changed);
    sim.run_for(SECOND);
    assert_eq!(registers(&sim).len(), 1);
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(outcomes[1], BootstrapOutcome::Finished);
}

#[test]
fn an_error_answer_to_the_bootstrap_request_is_retried_until_the_procedure_gives_up() {
    let mut sim = Sim::new(Client::new(Arc::new(config()), "sim-0001", device(5), 5));
    sim.server.sockets.push(bootstrap_server());
    sim.server.bootstrap_code = ResponseType::Forbidden;
    sim.client.start(sim.now);
    sim.run_for(3600 * SECOND);
    // Three attempts in the sequence (60 s, then 120 s apart), then the client gives up.
    let requests = sim.server.requests_named(RequestType::Post, "/bs");
    let times: Vec<u64> = requests
        .iter()
        .map(|(at, _)| at.saturating_since(requests[0].0).as_secs())
        .collect();
    assert_eq!(times, [0, 60, 180], "{times:?}");
    assert_eq!(sim.client.state(), ClientState::Failed);
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(
        outcomes,
        [BootstrapOutcome::Failed(BootstrapFailure::Rejected(0x83)); 3]
    );
    // Each request ended once, as an error.
    let records: Vec<_> = sim
        .request_records()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Bootstrap)
        .collect();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == RequestOutcome::Response(0x83))
    );
    assert!(registers(&sim).is_empty());
}

#[test]
fn an_unanswered_bootstrap_request_fails_after_its_retransmissions() {
    let mut sim = Sim::new(Client::new(Arc::new(config()), "sim-0001", device(5), 5));
    // Nobody listens at the bootstrap server's address.
    sim.client.start(sim.now);
    sim.run_for(100 * SECOND);
    let done = bootstraps(&sim);
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(
        done[0].outcome,
        BootstrapOutcome::Failed(BootstrapFailure::RequestFailed)
    );
    let took = done[0].completed.saturating_since(done[0].started);
    // CON gives up after 62 to 93 s.
    assert!(
        took >= Duration::from_secs(62) && took <= Duration::from_secs(94),
        "{took:?}"
    );
    let record = sim.request_records()[0];
    assert_eq!(
        (record.kind, record.outcome, record.retransmissions),
        (RequestKind::Bootstrap, RequestOutcome::Timeout, 4)
    );
}

#[test]
fn a_registration_that_fails_for_good_bootstraps_again() {
    let mut sim = started(config());
    provision(&mut sim, "coap://127.0.0.1:5683", None, 120);
    sim.server.register_code = ResponseType::Forbidden;
    finish(&mut sim);
    // Three Registers refused (60 s, then 120 s apart): the procedure failed, so the client
    // goes back to its bootstrap server (Bootstrap on Registration Failure is true).
    sim.run_for(200 * SECOND);
    assert_eq!(registers(&sim).len(), 3);
    assert_eq!(bootstrap_requests(&sim).len(), 2);
    assert_eq!(sim.client.state(), ClientState::Bootstrapping);
    assert_eq!(sim.client.server(), bootstrap_server());
    // The bootstrap server now sends it elsewhere.
    sim.server.register_code = ResponseType::Created;
    sim.server.sockets.push(addr(6683));
    write(
        &mut sim,
        "/0/1",
        ContentFormat::Tlv,
        &security(1, "coap://127.0.0.1:6683", None),
    );
    assert_eq!(finish(&mut sim), ResponseType::Changed);
    sim.run_for(SECOND);
    assert_eq!(registers(&sim).last().unwrap().0, addr(6683));
    assert_eq!(sim.client.state(), ClientState::Registered);
}

#[test]
fn the_server_can_trigger_a_new_bootstrap() {
    let mut sim = started(config());
    provision(&mut sim, "coap://127.0.0.1:5683", None, 120);
    finish(&mut sim);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    // Bootstrap-Request Trigger from the LWM2M server: 2.04, then a Bootstrap-Request.
    let token = sim.send_request(RequestType::Post, "/1/0/9");
    sim.run_for(SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::Changed
    );
    assert_eq!(bootstrap_requests(&sim).len(), 2);
    assert_eq!(sim.client.state(), ClientState::Bootstrapping);
}

#[test]
fn the_preferred_format_goes_with_the_request_from_1_1_on() {
    let with = |version| {
        let mut c = config();
        c.version = version;
        c.bootstrap = Some(ClientBootstrapConfig {
            preferred_format: Some(ContentFormat::SenmlCbor),
            ..ClientBootstrapConfig::default()
        });
        uri_query(&bootstrap_requests(&started(c))[0])
    };
    assert_eq!(with(LwM2mVersion::V1_1), ["ep=sim-0001", "pct=112"]);
    assert_eq!(with(LwM2mVersion::V1_0), ["ep=sim-0001"]);
}

#[test]
fn a_psk_account_switches_the_client_to_dtls_with_the_written_key() {
    let mut sim = started(config());
    provision(
        &mut sim,
        "coaps://127.0.0.1:5684",
        Some((b"written-id", b"0123456789abcdef")),
        120,
    );
    assert_eq!(finish(&mut sim), ResponseType::Changed);
    sim.run_for(SECOND);
    assert!(sim.client.is_secure());
    assert_eq!(sim.client.server(), addr(5684));
    // The Register waits for a handshake with the written server: a ClientHello went there.
    let (_, to, hello) = sim.undecoded.first().expect("a DTLS record went out");
    assert_eq!(*to, addr(5684));
    assert!(lwm2m_swarm::security::dtls::is_client_hello(hello));
    let identity = b"written-id";
    assert!(
        !hello.windows(identity.len()).any(|w| w == identity),
        "a PSK ClientHello carries no identity (it comes in the ClientKeyExchange)"
    );
    assert!(registers(&sim).is_empty());
    assert_eq!(sim.client.state(), ClientState::Registering);
}

#[test]
fn stopping_mid_bootstrap_aborts_it() {
    let mut sim = started(config());
    sim.client.stop(sim.now);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Stopped);
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(outcomes, [BootstrapOutcome::Aborted]);
    assert_eq!(uri_path(&bootstrap_requests(&sim)[0]), "/bs");
}

#[test]
fn single_resources_and_instances_can_be_written_and_deleted() {
    let mut sim = started(config());
    // A Security instance built resource by resource (the instance is created by the first).
    let sec = security(2, "coap://127.0.0.1:5683", None);
    for record in &sec {
        let path = record.path.to_string();
        assert_eq!(
            write(
                &mut sim,
                &path,
                ContentFormat::Tlv,
                std::slice::from_ref(record)
            ),
            ResponseType::Changed,
            "{path}"
        );
    }
    // A resource the object does not define is 4.04.
    assert_eq!(
        write(
            &mut sim,
            "/0/2/40",
            ContentFormat::SenmlJson,
            &[record("/0/2/40", Value::Integer(1))]
        ),
        ResponseType::NotFound
    );
    let (_, links) = discover(&mut sim, "/0");
    assert!(
        links.ends_with(",</0/2>;ssid=101;uri=\"coap://127.0.0.1:5683\""),
        "{links}"
    );
    // An instance that is no bootstrap account can go on its own.
    assert_eq!(
        code(&plain(&mut sim, RequestType::Delete, "/0/2")),
        ResponseType::Deleted
    );
    let (_, links) = discover(&mut sim, "/0");
    assert_eq!(links, "</>;lwm2m=1.1,</0>;ver=1.2,</0/0>");
    // Deleting an object the device lacks is 4.04.
    assert_eq!(
        code(&plain(&mut sim, RequestType::Delete, "/5")),
        ResponseType::NotFound
    );
}

#[test]
fn a_1_0_client_has_no_bootstrap_read_and_says_1_0() {
    let mut c = config();
    c.version = LwM2mVersion::V1_0;
    let mut sim = started(c);
    assert_eq!(
        code(&plain(&mut sim, RequestType::Get, "/1")),
        ResponseType::MethodNotAllowed
    );
    let (_, links) = discover(&mut sim, "/");
    assert!(links.starts_with("</>;lwm2m=1.0,"), "{links}");
}

#[test]
fn a_finish_that_overtakes_the_request_answer_completes_the_bootstrap() {
    let mut sim = Sim::new(Client::new(Arc::new(config()), "sim-0001", device(5), 5));
    sim.server.sockets.push(bootstrap_server());
    // The Bootstrap-Request goes unanswered (its answer lost, say); the server proceeds.
    sim.server.silent = true;
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    let sec = security(1, "coap://127.0.0.1:5683", None);
    write(&mut sim, "/0/1", ContentFormat::Tlv, &sec);
    write(&mut sim, "/1/0", ContentFormat::Tlv, &server_account(120));
    assert_eq!(finish(&mut sim), ResponseType::Changed);
    sim.server.silent = false;
    let finished_at = sim.now;
    sim.run_for(60 * SECOND);
    // The request was given up (aborted, not retransmitted further), the bootstrap finished
    // once, and the Register went out at once.
    let request = sim
        .request_records()
        .into_iter()
        .find(|r| r.kind == RequestKind::Bootstrap)
        .unwrap();
    assert_eq!(request.outcome, RequestOutcome::Aborted);
    let sent: Vec<_> = sim
        .server
        .requests
        .iter()
        .filter(|r| r.path == "/bs" && r.to == bootstrap_server())
        .map(|r| r.at)
        .collect();
    assert!(
        sent.iter().all(|at| *at <= finished_at),
        "a retransmission after the Finish: {sent:?}"
    );
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(outcomes, [BootstrapOutcome::Finished]);
    // One Register (sent while the server was still silent, then retransmitted), answered.
    let ids: std::collections::BTreeSet<u16> = registers(&sim)
        .iter()
        .map(|(_, p)| p.header.message_id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(sim.client.state(), ClientState::Registered);
}

#[test]
fn an_unusable_finish_gives_up_the_request_it_overtook() {
    let mut sim = Sim::new(Client::new(Arc::new(config()), "sim-0001", device(5), 5));
    sim.server.sockets.push(bootstrap_server());
    // The Bootstrap-Request goes unanswered; the server sends a Finish with nothing written.
    sim.server.silent = true;
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    let finished_at = sim.now;
    assert_eq!(finish(&mut sim), ResponseType::NotAcceptable);
    sim.run_for(100 * SECOND);
    // The failed attempt's request ends with it (aborted) rather than holding the NSTART slot
    // until its retransmissions run out and then failing the next attempt for it.
    let records: Vec<_> = sim
        .request_records()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Bootstrap)
        .collect();
    assert_eq!(records[0].outcome, RequestOutcome::Aborted);
    assert!(records[0].completed <= finished_at + SECOND);
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(
        outcomes,
        [BootstrapOutcome::Failed(BootstrapFailure::Unusable)]
    );
    // The retry goes out on time: 60 s after the failed attempt.
    let failed_at = bootstraps(&sim)[0].completed;
    let message_ids: Vec<(_, u16)> = sim
        .server
        .requests
        .iter()
        .filter(|r| r.path == "/bs")
        .map(|r| (r.at, r.packet.header.message_id))
        .collect();
    let first_id = message_ids[0].1;
    let retry = message_ids.iter().find(|(_, id)| *id != first_id).unwrap();
    assert!(
        retry.0 >= failed_at + 60 * SECOND && retry.0 <= failed_at + 61 * SECOND,
        "{retry:?}, failed at {failed_at:?}"
    );
}

#[test]
fn a_bootstrap_trigger_gives_up_requests_to_the_server_it_leaves() {
    let mut sim = started(config());
    provision(&mut sim, "coap://127.0.0.1:5683", None, 120);
    finish(&mut sim);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    // The LWM2M server stops answering: the next Update stays in flight.
    sim.server.silent = true;
    let mut waited = 0;
    while sim
        .server
        .requests_named(RequestType::Post, "/rd/")
        .is_empty()
    {
        sim.run_for(SECOND);
        waited += 1;
        assert!(waited < 200, "no Update");
    }
    let token = sim.send_request(RequestType::Post, "/1/0/9");
    sim.run_for(2 * SECOND);
    assert_eq!(
        code(&sim.server.reply_to(&token).unwrap().packet),
        ResponseType::Changed
    );
    // The Update to the left server is given up, and the Bootstrap-Request does not wait
    // for its retransmissions to run out.
    let update = sim
        .request_records()
        .into_iter()
        .find(|r| r.kind == RequestKind::Update)
        .expect("the Update ended");
    assert_eq!(update.outcome, RequestOutcome::Aborted);
    assert_eq!(bootstrap_requests(&sim).len(), 2);
}

#[test]
fn a_reboot_keeps_what_bootstrap_wrote_and_a_factory_reset_forgets_it() {
    let mut sim = started(config());
    provision(&mut sim, "coap://127.0.0.1:5683", None, 120);
    finish(&mut sim);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    // Reboot: back after 10 s, registering with the written server, no bootstrap.
    sim.send_request(RequestType::Post, "/3/0/4");
    sim.run_for(12 * SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    assert_eq!(registers(&sim).len(), 2);
    assert_eq!(registers(&sim)[1].0, addr(5683));
    assert_eq!(bootstrap_requests(&sim).len(), 1);
    // Factory Reset: back after 10 s with the bootstrap account alone, bootstrapping.
    sim.send_request(RequestType::Post, "/3/0/5");
    sim.run_for(12 * SECOND);
    assert_eq!(sim.client.state(), ClientState::Bootstrapping);
    assert_eq!(bootstrap_requests(&sim).len(), 2);
    assert_eq!(sim.client.server(), bootstrap_server());
    let (_, links) = discover(&mut sim, "/0");
    assert_eq!(links, "</>;lwm2m=1.1,</0>;ver=1.2,</0/0>");
    let (_, links) = discover(&mut sim, "/1");
    assert_eq!(links, "</>;lwm2m=1.1,</1>;ver=1.1");
}

/// A device whose template numbers its Security instances the other way round: an LWM2M
/// server account at /0/0, the bootstrap account at /0/1.
fn device_with_bootstrap_account_at_1() -> Device {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let mut set = lwm2m_swarm::model::TemplateSet::load_dir(std::path::Path::new(dir)).unwrap();
    let template = r#"
[device]
name = "second-security-instance"

[[objects]]
id = 0
count = 2
[objects.instance.0]
10 = { value = 101 }
[objects.instance.1]
1 = { value = true }

[[objects]]
id = 1

[[objects]]
id = 3
"#;
    set.add_files(&[("second-security-instance.toml", template)], None)
        .unwrap();
    Device::new(
        set.device("second-security-instance").unwrap(),
        5,
        1_700_000_000,
    )
}

#[test]
fn the_bootstrap_account_is_the_bootstrap_server_instance_wherever_it_is_numbered() {
    let client = Client::new(
        Arc::new(config()),
        "sim-0001",
        device_with_bootstrap_account_at_1(),
        5,
    );
    let mut sim = Sim::new(client);
    sim.server.sockets.push(bootstrap_server());
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    // Fresh from the factory: the bootstrap account alone, where the template put it.
    let (_, links) = discover(&mut sim, "/0");
    assert_eq!(links, "</>;lwm2m=1.1,</0>;ver=1.2,</0/1>");
    // The bootstrap server writes the LWM2M account at /0/0.
    assert_eq!(
        write(
            &mut sim,
            "/0/0",
            ContentFormat::Tlv,
            &security(0, "coap://127.0.0.1:5683", None)
        ),
        ResponseType::Changed
    );
    assert_eq!(
        write(
            &mut sim,
            "/1/0",
            ContentFormat::SenmlJson,
            &server_account(120)
        ),
        ResponseType::Changed
    );
    assert_eq!(finish(&mut sim), ResponseType::Changed);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    assert_eq!(registers(&sim)[0].0, addr(5683));
    // Factory Reset: bootstrapping again, with the bootstrap account at /0/1 alone; a Delete
    // of / spares it.
    sim.send_request(RequestType::Post, "/3/0/5");
    sim.run_for(12 * SECOND);
    assert_eq!(sim.client.state(), ClientState::Bootstrapping);
    assert_eq!(bootstrap_requests(&sim).len(), 2);
    let (_, links) = discover(&mut sim, "/0");
    assert_eq!(links, "</>;lwm2m=1.1,</0>;ver=1.2,</0/1>");
    assert_eq!(
        code(&plain(&mut sim, RequestType::Delete, "/")),
        ResponseType::Deleted
    );
    let (_, links) = discover(&mut sim, "/0");
    assert_eq!(links, "</>;lwm2m=1.1,</0>;ver=1.2,</0/1>");
}

/// The client's answer to the Finish with `mid`: every copy sent, and whether the network lost it.
fn finish_answers(sim: &Sim, mid: u16) -> Vec<(ResponseType, bool)> {
    sim.uplink
        .iter()
        .filter(|w| w.to == bootstrap_server() && w.packet.header.message_id == mid)
        .map(|w| (code(&w.packet), w.dropped))
        .collect()
}

#[test]
fn a_finish_retransmitted_after_its_answer_was_lost_is_answered_again() {
    let mut sim = started(config());
    provision(&mut sim, "coap://127.0.0.1:5683", None, 120);
    let request = sim.server.request(RequestType::Post, "/bs");
    let mid = request.header.message_id;
    sim.send_to_client_from(bootstrap_server(), &request);
    // The 2.04 is lost (and so is the first Register: the network is down for a moment).
    sim.drop_rate = 1.0;
    sim.run_for(Duration::from_millis(10));
    sim.drop_rate = 0.0;
    assert_eq!(finish_answers(&sim, mid), [(ResponseType::Changed, true)]);
    assert_eq!(sim.client.server(), addr(5683), "the client switched");
    // The bootstrap server retransmits the Finish after ACK_TIMEOUT: the same answer again,
    // from the client's deduplication cache.
    sim.run_for(2 * SECOND);
    sim.send_to_client_from(bootstrap_server(), &request);
    sim.run_for(SECOND);
    assert_eq!(
        finish_answers(&sim, mid),
        [
            (ResponseType::Changed, true),
            (ResponseType::Changed, false)
        ]
    );
    let reply = sim.server.reply_to(request.get_token()).unwrap();
    assert_eq!(reply.packet.header.message_id, mid);
    // Counted once: one Finish operation, one bootstrap finished, one duplicate dropped.
    let finishes = sim
        .events
        .iter()
        .filter(
            |(_, e)| matches!(e, Event::Operation(o) if o.kind == OperationKind::BootstrapFinish),
        )
        .count();
    assert_eq!(finishes, 1);
    let outcomes: Vec<_> = bootstraps(&sim).iter().map(|b| b.outcome).collect();
    assert_eq!(outcomes, [BootstrapOutcome::Finished]);
    let duplicates = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Dropped(lwm2m_swarm::client::Dropped::Duplicate)))
        .count();
    assert_eq!(duplicates, 1);
    // The retransmitted Register reaches the written server.
    sim.run_for(5 * SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    assert!(registers(&sim).iter().all(|(to, _)| *to == addr(5683)));
}

/// A PSK bootstrap server driven by hand (the simulated network carries no DTLS), and a
/// `NoSec` LWM2M server at 5683 that answers Register 2.01.
struct DtlsWorld {
    now: lwm2m_swarm::clock::Instant,
    client: Client,
    bootstrap: lwm2m_swarm::security::dtls::Session,
    /// CoAP answers the bootstrap server decrypted.
    answers: Vec<Packet>,
    /// Loses the client's next record to the bootstrap server.
    lose_next: bool,
    registers: usize,
    events: Vec<Event>,
}

impl DtlsWorld {
    fn new() -> Self {
        use lwm2m_swarm::security::dtls::{DtlsParams, ServerKeys, Session, server_config};
        let key = b"0123456789abcdef".to_vec();
        let psk = lwm2m_swarm::security::Psk {
            identity: b"sim-0001".to_vec(),
            key: key.clone(),
        };
        let client = Client::new(Arc::new(config()), "sim-0001", device(5), 5).with_psk(psk);
        let now = lwm2m_swarm::clock::Instant::from_micros(1_000_000);
        let keys = ServerKeys::shared(key);
        let bootstrap = Session::accept(server_config(&keys, &DtlsParams::default()), now).unwrap();
        DtlsWorld {
            now,
            client,
            bootstrap,
            answers: Vec::new(),
            lose_next: false,
            registers: 0,
            events: Vec::new(),
        }
    }

    /// Delivers everything in flight, at once, until nobody has anything to send.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some((to, bytes)) = self.client.poll_transmit() {
                moved = true;
                if to == bootstrap_server() {
                    if !std::mem::take(&mut self.lose_next) {
                        let _ = self.bootstrap.handle_datagram(self.now, &bytes);
                    }
                } else if to == addr(5683) {
                    self.answer_register(&bytes);
                }
            }
            while let Some(record) = self.bootstrap.poll_transmit() {
                moved = true;
                self.client
                    .handle_datagram(self.now, bootstrap_server(), &record);
            }
            while let Some(plaintext) = self.bootstrap.poll_received() {
                moved = true;
                let packet = Packet::from_bytes(&plaintext).unwrap();
                if let MessageClass::Request(_) = packet.header.code {
                    // The Bootstrap-Request: accepted.
                    let reply = ack(&packet, ResponseType::Changed);
                    self.bootstrap.send(&reply.to_bytes().unwrap()).unwrap();
                } else {
                    self.answers.push(packet);
                }
            }
            while let Some(event) = self.client.poll_event() {
                self.events.push(event);
            }
            if !moved {
                return;
            }
        }
    }

    fn answer_register(&mut self, bytes: &[u8]) {
        let packet = Packet::from_bytes(bytes).unwrap();
        if packet.header.code != MessageClass::Request(RequestType::Post) {
            return;
        }
        self.registers += 1;
        let mut reply = ack(&packet, ResponseType::Created);
        reply.add_option(CoapOption::LocationPath, b"rd".to_vec());
        reply.add_option(CoapOption::LocationPath, b"r1".to_vec());
        self.client
            .handle_datagram(self.now, addr(5683), &reply.to_bytes().unwrap());
    }

    fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        loop {
            self.pump();
            let next = [self.client.poll_timeout(), self.bootstrap.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.client.handle_timeout(self.now);
                    if self.bootstrap.poll_timeout().is_some_and(|t| t <= self.now) {
                        let _ = self.bootstrap.handle_timeout(self.now);
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    /// Sends `request` from the bootstrap server; the client's answer, if any came.
    fn ask(&mut self, request: &Packet) -> Option<Packet> {
        let sent = self.bootstrap.send(&request.to_bytes().unwrap());
        assert!(sent.is_ok(), "the bootstrap server's session is closed");
        self.run_for(SECOND);
        let token = request.get_token();
        self.answers
            .iter()
            .rev()
            .find(|a| a.get_token() == token)
            .cloned()
    }

    fn write(&mut self, server: &mut sim::Server, path: &str, records: &[Record]) -> ResponseType {
        let base: Path = path.parse().unwrap();
        let format = ContentFormat::Tlv;
        let payload = content::encode(format, &base, records, self.client.device()).unwrap();
        let mut request = server.request(RequestType::Put, path);
        request.add_option(
            CoapOption::ContentFormat,
            format.code().to_be_bytes().to_vec(),
        );
        request.payload = payload;
        code(&self.ask(&request).expect("answered"))
    }
}

fn ack(request: &Packet, code: ResponseType) -> Packet {
    let mut reply = Packet::new();
    reply
        .header
        .set_type(coap_lite::MessageType::Acknowledgement);
    reply.header.message_id = request.header.message_id;
    reply.header.code = MessageClass::Response(code);
    reply.set_token(request.get_token().to_vec());
    reply
}

#[test]
fn over_dtls_a_retransmitted_finish_is_answered_on_the_lingering_bootstrap_session() {
    let mut world = DtlsWorld::new();
    let mut server = sim::Server::default();
    world.client.start(world.now);
    world.run_for(SECOND);
    assert_eq!(world.client.state(), ClientState::Bootstrapping);
    assert!(world.bootstrap.is_connected());
    assert_eq!(
        world.write(
            &mut server,
            "/0/1",
            &security(1, "coap://127.0.0.1:5683", None)
        ),
        ResponseType::Changed
    );
    let srv = server_account(120);
    assert_eq!(
        world.write(&mut server, "/1/0", &srv),
        ResponseType::Changed
    );

    // The Finish's 2.04 is lost on the way.
    let finish = server.request(RequestType::Post, "/bs");
    world.lose_next = true;
    assert!(world.ask(&finish).is_none());
    assert_eq!(world.client.server(), addr(5683), "the client switched");
    assert_eq!(world.client.state(), ClientState::Registered);
    // The bootstrap server retransmits the Finish: answered again, on the same session.
    let again = world
        .ask(&finish)
        .expect("the retransmitted Finish is answered");
    assert_eq!(code(&again), ResponseType::Changed);
    assert_eq!(again.header.message_id, finish.header.message_id);
    assert!(!world.bootstrap.is_closed());
    // Counted once: one Finish operation, one bootstrap finished, one Register.
    let finish_operations = world
        .events
        .iter()
        .filter(|e| matches!(e, Event::Operation(o) if o.kind == OperationKind::BootstrapFinish))
        .count();
    assert_eq!(finish_operations, 1);
    let finished_bootstraps = world
        .events
        .iter()
        .filter(|e| matches!(e, Event::Bootstrap(b) if b.outcome == BootstrapOutcome::Finished))
        .count();
    assert_eq!(finished_bootstraps, 1);
    assert_eq!(world.registers, 1);
    // MAX_TRANSMIT_WAIT (93 s) after the Finish the bootstrap server has given up: the
    // session is closed then, not before.
    world.run_for(85 * SECOND);
    assert!(!world.bootstrap.is_closed());
    world.run_for(10 * SECOND);
    assert!(world.bootstrap.is_closed(), "close_notify came");
    assert_eq!(world.client.state(), ClientState::Registered);
}
