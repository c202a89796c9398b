//! A client over TCP (and TLS) against a scripted server in the same thread, under a simulated
//! clock: the connection is a queue of commands, the server our own framing (and a rustls
//! server for TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use rustls::ServerConnection;

use super::*;
use crate::client::{ClientConfig, ConnectionOutcome, Event, LwM2mVersion, RequestKind};
use crate::coap::tcp::frame::{self, Decoder};
use crate::coap::tcp::signal::{self, Signal};
use crate::security::tls::tests::TestPki;
use crate::security::tls::{TlsClientConfig, TlsSettings};

const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5683);
const SECOND: Duration = Duration::from_secs(1);

fn device() -> crate::model::Device {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let set = crate::model::TemplateSet::load_dir(std::path::Path::new(dir)).unwrap();
    crate::model::Device::new(set.device("environment-sensor").unwrap(), 1, 1_700_000_000)
}

/// What the server end of the connection does.
struct Peer {
    connected: bool,
    /// Connections opened so far.
    opened: u32,
    tls: Option<Arc<rustls::ServerConfig>>,
    session: Option<ServerConnection>,
    decoder: Decoder,
    /// Send our CSM when the client's arrives (off: a server that never does).
    send_csm: bool,
    /// Answer Register (2.01), Update (2.04), De-register (2.02).
    answer: bool,
    /// Every message the server received on any connection, in order.
    received: Vec<Vec<u8>>,
    /// Bytes for the client.
    outbox: Vec<u8>,
}

impl Peer {
    fn on_open(&mut self) {
        self.connected = true;
        self.opened += 1;
        self.decoder = Decoder::new(1 << 16);
        self.session = self
            .tls
            .as_ref()
            .map(|c| ServerConnection::new(Arc::clone(c)).unwrap());
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        assert!(self.connected, "bytes on no connection");
        let plaintext = match self.session.as_mut() {
            Some(tls) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    tls.read_tls(&mut rest).unwrap();
                    if tls.process_new_packets().is_err() {
                        self.flush_tls();
                        return;
                    }
                }
                let mut plaintext = Vec::new();
                let _ = std::io::Read::read_to_end(&mut tls.reader(), &mut plaintext);
                plaintext
            }
            None => bytes.to_vec(),
        };
        self.decoder.push(&plaintext);
        while let Some(message) = self.decoder.next_frame().unwrap() {
            self.on_message(&message);
        }
        self.flush_tls();
    }

    fn on_message(&mut self, bytes: &[u8]) {
        self.received.push(bytes.to_vec());
        let message = frame::parse(bytes).unwrap();
        if message.code == signal::CSM {
            if self.send_csm {
                let csm = Signal::Csm {
                    max_message_size: Some(1152),
                    block_wise: false,
                };
                self.send(&signal::encode(&csm, &[]));
            }
            return;
        }
        if signal::is_signal(message.code) || !self.answer {
            return;
        }
        let packet = frame::to_packet(&message).unwrap();
        let code = match packet.header.code {
            MessageClass::Request(RequestType::Post) if path(&packet) == "rd" => {
                ResponseType::Created
            }
            MessageClass::Request(RequestType::Post) => ResponseType::Changed,
            MessageClass::Request(RequestType::Delete) => ResponseType::Deleted,
            _ => return,
        };
        let mut answer = Packet::new();
        answer.header.code = MessageClass::Response(code);
        answer.set_token(packet.get_token().to_vec());
        if code == ResponseType::Created {
            answer.add_option(CoapOption::LocationPath, b"rd".to_vec());
            answer.add_option(CoapOption::LocationPath, b"7".to_vec());
        }
        self.send(&frame::encode_packet(&answer));
    }

    /// Plaintext for the client (through TLS when there is one).
    fn send(&mut self, bytes: &[u8]) {
        match self.session.as_mut() {
            Some(tls) => std::io::Write::write_all(&mut tls.writer(), bytes).unwrap(),
            None => self.outbox.extend_from_slice(bytes),
        }
    }

    fn flush_tls(&mut self) {
        if let Some(tls) = self.session.as_mut() {
            while tls.wants_write() {
                tls.write_tls(&mut self.outbox).unwrap();
            }
        }
    }

    /// The CoAP requests and responses it received, parsed (signals left out).
    fn packets(&self) -> Vec<Packet> {
        self.received
            .iter()
            .map(|b| frame::parse(b).unwrap())
            .filter(|m| !signal::is_signal(m.code))
            .map(|m| frame::to_packet(&m).unwrap())
            .collect()
    }

    fn signals(&self) -> Vec<Signal> {
        self.received
            .iter()
            .map(|b| frame::parse(b).unwrap())
            .filter(|m| signal::is_signal(m.code))
            .map(|m| signal::parse(&m).unwrap())
            .collect()
    }
}

fn path(packet: &Packet) -> String {
    crate::coap::message::uri_path(packet).unwrap().join("/")
}

struct World {
    now: Instant,
    client: Client,
    peer: Peer,
    events: Vec<Event>,
    commands: Vec<LinkCommand>,
}

impl World {
    fn new(tls: Option<(TlsSettings, Arc<rustls::ServerConfig>)>) -> World {
        let (client_tls, server_tls) = match tls {
            Some((settings, server)) => (
                Some(Arc::new(
                    TlsClientConfig::build(&settings, "localhost").unwrap(),
                )),
                Some(server),
            ),
            None => (None, None),
        };
        let config = ClientConfig {
            server: SERVER,
            binding: "T".into(),
            version: LwM2mVersion::V1_1,
            update_jitter: 0.0,
            stream: Some(StreamConfig {
                tls: client_tls,
                setup_timeout: 10 * SECOND,
            }),
            ..ClientConfig::default()
        };
        let client = Client::new(Arc::new(config), "tcp-0001", device(), 3);
        World {
            now: Instant::ZERO,
            client,
            peer: Peer {
                connected: false,
                opened: 0,
                tls: server_tls,
                session: None,
                decoder: Decoder::new(1 << 16),
                send_csm: true,
                answer: true,
                received: Vec::new(),
                outbox: Vec::new(),
            },
            events: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// Moves bytes both ways until nothing moves.
    fn settle(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some(command) = self.client.poll_link() {
                moved = true;
                match &command {
                    LinkCommand::Open(to) => {
                        assert_eq!(*to, SERVER);
                        self.peer.on_open();
                    }
                    LinkCommand::Send(bytes) => self.peer.on_bytes(bytes),
                    LinkCommand::Close => self.peer.connected = false,
                }
                self.commands.push(command);
            }
            assert!(self.client.poll_transmit().is_none(), "no datagrams");
            if self.peer.connected && !self.peer.outbox.is_empty() {
                moved = true;
                let bytes = std::mem::take(&mut self.peer.outbox);
                // Cut in two: the client must join the pieces.
                let (a, b) = bytes.split_at(bytes.len() / 2);
                self.client.handle_datagram(self.now, SERVER, a);
                self.client.handle_datagram(self.now, SERVER, b);
            }
            while let Some(e) = self.client.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("still moving after 50 rounds");
    }

    /// Runs the clock to `until`, firing the client's deadlines on the way.
    fn run_until(&mut self, until: Instant) {
        self.settle();
        while let Some(at) = self.client.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.client.handle_timeout(self.now);
            self.settle();
        }
        self.now = until;
    }

    fn start(&mut self) {
        self.client.start(self.now);
        self.settle();
    }

    /// The server sends `bytes` (plaintext) now.
    fn server_sends(&mut self, bytes: &[u8]) {
        self.peer.send(bytes);
        self.peer.flush_tls();
        self.settle();
    }

    fn setups(&self) -> Vec<ConnectionRecord> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Connection(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    fn ended(&self, kind: RequestKind) -> Vec<RequestOutcome> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Request(r) if r.kind == kind => Some(r.outcome),
                _ => None,
            })
            .collect()
    }

    fn lost(&self) -> Vec<ConnectionFailure> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ConnectionLost(f) => Some(*f),
                _ => None,
            })
            .collect()
    }
}

fn request(method: RequestType, path: &str, token: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(method);
    p.set_token(token.to_vec());
    for segment in path.split('/') {
        p.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    p
}

#[test]
fn csm_first_then_register_with_binding_t() {
    let mut w = World::new(None);
    w.peer.send_csm = false;
    w.start();
    assert_eq!(w.commands[0], LinkCommand::Open(SERVER));
    assert_eq!(
        w.peer.signals(),
        [Signal::Csm {
            max_message_size: Some(crate::coap::tcp::OUR_MAX_MESSAGE_SIZE),
            block_wise: false
        }]
    );
    assert!(
        w.peer.packets().is_empty(),
        "no Register before the server's CSM"
    );
    w.now += Duration::from_millis(3);
    w.server_sends(&signal::encode(
        &Signal::Csm {
            max_message_size: None,
            block_wise: false,
        },
        &[],
    ));
    let setups = w.setups();
    assert_eq!(setups.len(), 1);
    assert_eq!(setups[0].outcome, ConnectionOutcome::Connected);
    assert_eq!(
        setups[0].completed.saturating_since(setups[0].started),
        Duration::from_millis(3)
    );
    let register = &w.peer.packets()[0];
    assert_eq!(path(register), "rd");
    let query = crate::coap::message::uri_query(register).unwrap();
    assert!(
        query.contains(&"b=T") && query.contains(&"lwm2m=1.1"),
        "{query:?}"
    );
    assert_eq!(w.client.state(), ClientState::Registered);
    assert_eq!(
        w.ended(RequestKind::Register),
        [RequestOutcome::Response(0x41)]
    );
}

#[test]
fn server_requests_observe_and_notifications_without_acks() {
    let mut w = World::new(None);
    w.start();
    assert_eq!(w.client.state(), ClientState::Registered);
    let mut observe = request(RequestType::Get, "3/0/13", &[0x0B]);
    observe.add_option(CoapOption::Observe, vec![]);
    w.server_sends(&frame::encode_packet(&observe));
    let answers = w.peer.packets();
    let first = answers.last().unwrap();
    assert_eq!(first.get_token(), [0x0B]);
    assert_eq!(
        first.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    assert!(first.get_option(CoapOption::Observe).is_some());
    // The clock resource changes every second: notifications follow, none tracked.
    w.run_until(w.now + 130 * SECOND);
    let notifications = w
        .peer
        .packets()
        .iter()
        .filter(|p| p.get_token() == [0x0B])
        .count();
    assert!(notifications >= 3, "{notifications}");
    let notify = w.ended(RequestKind::Notify);
    assert!(!notify.is_empty());
    assert!(
        notify.iter().all(|o| *o == RequestOutcome::Unconfirmed),
        "{notify:?}"
    );
    assert_eq!(w.client.state(), ClientState::Registered);
}

#[test]
fn a_ping_gets_a_pong() {
    let mut w = World::new(None);
    w.start();
    w.server_sends(&signal::encode(&Signal::Ping { custody: false }, &[7]));
    assert_eq!(
        w.peer.signals().last(),
        Some(&Signal::Pong { custody: false })
    );
    let pong = w.peer.received.last().unwrap();
    assert_eq!(frame::parse(pong).unwrap().token, [7]);
}

#[test]
fn release_or_abort_ends_what_is_in_flight_and_registers_again() {
    for (signal, name) in [
        (
            Signal::Release {
                alternative_addresses: vec![],
                hold_off: None,
            },
            "release",
        ),
        (
            Signal::Abort {
                bad_csm_option: None,
                diagnostic: "going away".into(),
            },
            "abort",
        ),
    ] {
        let mut w = World::new(None);
        w.start();
        // The next Update goes out unanswered, then the server lets go.
        w.peer.answer = false;
        let update_at = w.client.poll_timeout().unwrap();
        w.run_until(update_at);
        assert_eq!(w.peer.packets().len(), 2, "Register and Update");
        w.peer.answer = true;
        w.server_sends(&signal::encode(&signal, &[]));
        assert_eq!(w.lost().len(), 1, "{name}");
        assert_eq!(w.lost()[0].name(), name);
        assert_eq!(
            w.ended(RequestKind::Update),
            [RequestOutcome::Aborted],
            "{name}"
        );
        assert!(w.commands.contains(&LinkCommand::Close));
        // A new connection, a new Register.
        assert_eq!(w.peer.opened, 2, "{name}");
        assert_eq!(
            w.ended(RequestKind::Register),
            [
                RequestOutcome::Response(0x41),
                RequestOutcome::Response(0x41)
            ],
            "{name}"
        );
        assert_eq!(w.client.state(), ClientState::Registered, "{name}");
        assert_eq!(w.setups().len(), 2);
    }
}

#[test]
fn a_refused_connection_fails_like_a_register_attempt_and_is_retried() {
    let mut w = World::new(None);
    w.peer.send_csm = false;
    w.start();
    w.client.handle_link_closed(w.now, LinkClosed::Refused);
    w.settle();
    let setups = w.setups();
    assert_eq!(
        setups[0].outcome,
        ConnectionOutcome::Failed(ConnectionFailure::Link(LinkClosed::Refused))
    );
    assert_eq!(w.ended(RequestKind::Register), [RequestOutcome::Unsent]);
    assert_eq!(w.client.state(), ClientState::Registering);
    // The registration procedure's retry timer (60 s), then a new connection.
    w.peer.send_csm = true;
    w.run_until(w.now + 59 * SECOND);
    assert_eq!(w.peer.opened, 1);
    w.run_until(w.now + 2 * SECOND);
    assert_eq!(w.peer.opened, 2);
    assert_eq!(w.client.state(), ClientState::Registered);
}

#[test]
fn a_server_that_never_sends_its_csm_times_the_setup_out() {
    let mut w = World::new(None);
    w.peer.send_csm = false;
    w.start();
    w.run_until(w.now + 11 * SECOND);
    assert_eq!(
        w.setups()[0].outcome,
        ConnectionOutcome::Failed(ConnectionFailure::SetupTimeout)
    );
    assert_eq!(w.commands.last(), Some(&LinkCommand::Close));
    assert!(!w.peer.connected);
}

#[test]
fn an_unanswered_register_times_out_at_the_exchange_bound() {
    let mut w = World::new(None);
    w.peer.answer = false;
    w.start();
    let bound = w.client.config().coap.separate_response_timeout;
    w.run_until(w.now + bound.saturating_sub(SECOND));
    assert!(w.ended(RequestKind::Register).is_empty());
    w.run_until(w.now + 2 * SECOND);
    assert_eq!(w.ended(RequestKind::Register), [RequestOutcome::Timeout]);
    let registers = w.peer.packets().len();
    assert_eq!(registers, 1, "no retransmission over TCP");
}

#[test]
fn stop_deregisters_then_closes() {
    let mut w = World::new(None);
    w.start();
    w.client.stop(w.now);
    w.settle();
    assert_eq!(
        w.ended(RequestKind::Deregister),
        [RequestOutcome::Response(0x42)]
    );
    assert_eq!(w.client.state(), ClientState::Stopped);
    assert_eq!(w.commands.last(), Some(&LinkCommand::Close));
    assert!(w.client.poll_link().is_none());
}

#[test]
fn over_tls_csm_and_register_ride_the_session_and_close_notify_ends_it() {
    let pki = TestPki::new("client-stream");
    let mut w = World::new(Some((pki.settings(), pki.server_config(false))));
    w.start();
    assert_eq!(w.setups()[0].outcome, ConnectionOutcome::Connected);
    assert_eq!(w.client.state(), ClientState::Registered);
    assert_eq!(path(&w.peer.packets()[0]), "rd");
    let session = w.peer.session.as_ref().unwrap();
    assert_eq!(session.alpn_protocol(), Some(&b"coap"[..]));
    w.client.stop(w.now);
    w.settle();
    assert_eq!(w.client.state(), ClientState::Stopped);
    // The last bytes before the close are TLS's goodbye.
    let n = w.commands.len();
    assert!(matches!(w.commands[n - 2], LinkCommand::Send(_)));
    assert_eq!(w.commands[n - 1], LinkCommand::Close);
}

#[test]
fn over_tls_a_certificate_from_another_ca_fails_the_setup() {
    let pki = TestPki::new("client-stream-server");
    let other = TestPki::new("client-stream-other");
    let mut w = World::new(Some((other.settings(), pki.server_config(false))));
    w.start();
    assert_eq!(
        w.setups()[0].outcome,
        ConnectionOutcome::Failed(ConnectionFailure::Tls(TlsFailure::Certificate(
            crate::security::x509::CertProblem::UnknownIssuer
        )))
    );
    assert_eq!(w.commands.last(), Some(&LinkCommand::Close));
    assert!(w.peer.packets().is_empty(), "nothing in clear");
    assert_eq!(w.ended(RequestKind::Register), [RequestOutcome::Unsent]);
}

#[test]
fn every_request_ends_once() {
    let mut w = World::new(None);
    w.start();
    w.peer.answer = false;
    w.run_until(w.now + 400 * SECOND);
    w.server_sends(&signal::encode(
        &Signal::Abort {
            bad_csm_option: None,
            diagnostic: String::new(),
        },
        &[],
    ));
    w.client.stop(w.now);
    w.run_until(w.now + 200 * SECOND);
    w.client.abandon(w.now);
    while let Some(e) = w.client.poll_event() {
        w.events.push(e);
    }
    for kind in [
        RequestKind::Register,
        RequestKind::Update,
        RequestKind::Deregister,
    ] {
        let sent = w
            .events
            .iter()
            .filter(|e| matches!(e, Event::Sent(k) if *k == kind))
            .count();
        let ended: Vec<RequestOutcome> = w.ended(kind);
        let unsent = ended
            .iter()
            .filter(|o| **o == RequestOutcome::Unsent)
            .count();
        assert_eq!(sent, ended.len() - unsent, "{kind:?}: {ended:?}");
    }
}
