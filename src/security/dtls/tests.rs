//! A client and a dimpl DTLS server in one thread under a simulated clock: no network, no sleep.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use dimpl::crypto::Dtls12CipherSuite;
use dimpl::{Config, Dtls, Output, PskResolver};

use super::{DtlsParams, Failure, std_instant};
use crate::client::{
    Client, ClientConfig, ClientState, Event, HandshakeOutcome, RequestKind, RequestOutcome,
};
use crate::clock::Instant;
use crate::metrics::Recorder;
use crate::security::Psk;

const KEY: &[u8] = b"secret-psk-0123";

fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5684))
}

struct Keys(Vec<u8>);

impl PskResolver for Keys {
    fn resolve(&self, identity: &[u8]) -> Option<Vec<u8>> {
        (identity == b"dtls-0001").then(|| self.0.clone())
    }
}

fn server(key: &[u8], now: Instant) -> Dtls {
    let config = Config::builder()
        .with_psk_server(Some(b"hint".to_vec()), Arc::new(Keys(key.to_vec())))
        .dtls12_cipher_suites(&[Dtls12CipherSuite::PSK_AES128_CCM_8])
        .dtls13_cipher_suites(&[])
        .dangerously_set_rng_seed(7)
        .build()
        .unwrap();
    Dtls::new_12_psk(Arc::new(config), std_instant(now))
}

fn device() -> crate::model::Device {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let set = crate::model::TemplateSet::load_dir(std::path::Path::new(dir)).unwrap();
    crate::model::Device::new(set.device("environment-sensor").unwrap(), 1, 1_700_000_000)
}

/// The client, a DTLS server that answers Register 2.01, and a clock.
struct World {
    now: Instant,
    client: Client,
    server: Dtls,
    server_deadline: Option<Instant>,
    server_key: Vec<u8>,
    /// CoAP the server received, decrypted.
    received: Vec<Packet>,
    events: Vec<Event>,
}

impl World {
    fn new(server_key: &[u8]) -> World {
        let config = ClientConfig {
            server: server_addr(),
            update_jitter: 0.0,
            ..ClientConfig::default()
        };
        let psk = Psk {
            identity: b"dtls-0001".to_vec(),
            key: KEY.to_vec(),
        };
        let client = Client::new(Arc::new(config), "dtls-0001", device(), 3).with_psk(psk);
        World {
            now: Instant::ZERO,
            client,
            server: server(server_key, Instant::ZERO),
            server_deadline: None,
            server_key: server_key.to_vec(),
            received: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Server side: takes what dimpl has to say; answers a Register.
    fn drain_server(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let mut plaintexts = Vec::new();
        loop {
            match self.server.poll_output(&mut buf) {
                Output::Packet(p) => out.push(p.to_vec()),
                Output::ApplicationData(d) => plaintexts.push(d.to_vec()),
                Output::Timeout(at) => {
                    self.server_deadline = Some(super::our_instant(at));
                    break;
                }
                _ => {}
            }
        }
        for plaintext in plaintexts {
            let packet = Packet::from_bytes(&plaintext).expect("CoAP inside DTLS");
            let code = match packet.header.code {
                MessageClass::Request(RequestType::Post) => Some(ResponseType::Created),
                MessageClass::Request(RequestType::Delete) => Some(ResponseType::Deleted),
                _ => None,
            };
            if let Some(code) = code {
                let mut answer = Packet::new();
                answer.header.set_type(MessageType::Acknowledgement);
                answer.header.message_id = packet.header.message_id;
                answer.header.code = MessageClass::Response(code);
                answer.set_token(packet.get_token().to_vec());
                if code == ResponseType::Created {
                    answer.add_option(CoapOption::LocationPath, b"rd".to_vec());
                    answer.add_option(CoapOption::LocationPath, b"r1".to_vec());
                }
                self.server
                    .send_application_data(&answer.to_bytes().unwrap())
                    .unwrap();
            }
            self.received.push(packet);
        }
        if !self.received.is_empty() && out.is_empty() {
            // The answer just queued.
            let mut buf = [0u8; 2048];
            while let Output::Packet(p) = self.server.poll_output(&mut buf) {
                out.push(p.to_vec());
            }
        }
        out
    }

    /// Delivers datagrams both ways until quiet, then moves the clock to the next deadline;
    /// stops at `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            let mut moved = true;
            while moved {
                moved = false;
                while let Some((to, bytes)) = self.client.poll_transmit() {
                    assert_eq!(to, server_addr());
                    // A server that errors out drops the datagram, as libcoap would.
                    let _ = self.server.handle_timeout(std_instant(self.now));
                    let _ = self.server.handle_packet(&bytes);
                    moved = true;
                }
                for bytes in self.drain_server() {
                    self.client.handle_datagram(self.now, server_addr(), &bytes);
                    moved = true;
                }
                while let Some(event) = self.client.poll_event() {
                    self.events.push(event);
                }
            }
            let next = [self.client.poll_timeout(), self.server_deadline]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.client.handle_timeout(self.now);
                    }
                    if self.server_deadline.is_some_and(|t| t <= self.now) {
                        self.server_deadline = None;
                        if self.server.handle_timeout(std_instant(self.now)).is_err() {
                            // The server gave up on the session: it forgets it.
                            self.server = server(&self.server_key, self.now);
                        }
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    fn handshakes(&self) -> Vec<HandshakeOutcome> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Handshake(h) => Some(h.outcome),
                _ => None,
            })
            .collect()
    }
}

fn at(secs: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(secs)
}

#[test]
fn dtls_client_handshakes_registers_and_answers_a_read() {
    let mut w = World::new(KEY);
    w.client.start(w.now);
    w.run_until(at(1));
    assert_eq!(w.handshakes(), vec![HandshakeOutcome::Connected]);
    assert_eq!(w.client.state(), ClientState::Registered);
    assert_eq!(w.client.location(), Some("rd/r1"));
    let register = w.received.first().expect("the Register arrived decrypted");
    assert!(
        register
            .get_option(CoapOption::UriQuery)
            .is_some_and(|q| q.iter().any(|v| v == b"ep=dtls-0001"))
    );

    // The server reads /3303/0/5700 over the session; the answer comes back encrypted.
    let mut read = Packet::new();
    read.header.set_type(MessageType::Confirmable);
    read.header.message_id = 0x4242;
    read.header.code = MessageClass::Request(RequestType::Get);
    read.set_token(vec![9, 9]);
    for segment in ["3303", "0", "5700"] {
        read.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    w.server
        .send_application_data(&read.to_bytes().unwrap())
        .unwrap();
    w.run_until(at(2));
    let answer = w
        .received
        .iter()
        .find(|p| p.get_token() == [9, 9])
        .expect("the client answered the Read over DTLS");
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::Content)
    );
    assert!(!answer.payload.is_empty());
    assert!(w.events.iter().any(
        |e| matches!(e, Event::Request(r) if r.kind == RequestKind::Register
                && r.outcome == RequestOutcome::Response(0x41))
    ));

    // Stopping de-registers over the session, then says goodbye.
    w.client.stop(w.now);
    w.run_until(at(3));
    assert_eq!(w.client.state(), ClientState::Stopped);
    assert!(
        w.received
            .iter()
            .any(|p| p.header.code == MessageClass::Request(RequestType::Delete))
    );
}

#[test]
fn a_wrong_key_fails_the_handshake_and_is_retried_like_a_register() {
    let mut w = World::new(b"another-key-000");
    w.client.start(w.now);
    w.run_until(at(59));
    let handshakes = w.handshakes();
    assert_eq!(handshakes.len(), 1, "{:?}", w.events);
    let HandshakeOutcome::Failed(failure) = handshakes[0] else {
        panic!("{handshakes:?}");
    };
    // The server cannot decrypt the client's Finished and says nothing: the client gives up.
    assert_eq!(failure, Failure::Timeout);
    // The Register never went out: counted unsent, not sent, and the procedure waits to retry.
    assert!(w.received.is_empty());
    assert!(!w.events.iter().any(|e| matches!(e, Event::Sent(_))));
    assert!(w.events.iter().any(
        |e| matches!(e, Event::Request(r) if r.kind == RequestKind::Register
            && r.outcome == RequestOutcome::Unsent)
    ));
    assert_eq!(w.client.state(), ClientState::Registering);
    let retry = w.client.poll_timeout().expect("a retry is scheduled");
    assert!(retry > w.now, "{retry:?}");

    // The retry (60 s after the first failure) handshakes again, and fails again.
    w.run_until(at(200));
    assert_eq!(w.handshakes().len(), 2, "{:?}", w.handshakes());
}

#[test]
fn handshake_timing_follows_the_simulated_clock() {
    // Nobody answers: ~1 + 2 + 4 + 8 + 16 s of flights (±25% each), all simulated.
    let config = ClientConfig {
        server: server_addr(),
        dtls: DtlsParams {
            flight_start_rto: Duration::from_millis(500),
            flight_retries: 2,
            handshake_timeout: Duration::from_secs(20),
        },
        ..ClientConfig::default()
    };
    let psk = Psk {
        identity: b"x".to_vec(),
        key: KEY.to_vec(),
    };
    let mut client = Client::new(Arc::new(config), "x", device(), 1).with_psk(psk);
    client.start(Instant::ZERO);
    let mut now = Instant::ZERO;
    let mut hellos = 0;
    let mut ended = None;
    let mut recorder = Recorder::new();
    let mut in_progress = Vec::new();
    loop {
        while client.poll_transmit().is_some() {
            hellos += 1;
        }
        while let Some(event) = client.poll_event() {
            recorder.event(&event);
            if let Event::Handshake(h) = event {
                ended = Some(h);
            }
        }
        in_progress.push(recorder.snapshot(Duration::ZERO).handshakes.in_progress());
        if ended.is_some() || now >= at(30) {
            break;
        }
        now = client.poll_timeout().expect("a deadline while handshaking");
        client.handle_timeout(now);
    }
    let ended = ended.expect("the handshake ended");
    // Begun at the start, in progress through the flights, ended once.
    let counted = recorder.snapshot(Duration::ZERO).handshakes;
    assert_eq!((counted.started, counted.failed), (1, 1));
    assert_eq!(in_progress.first(), Some(&1));
    assert_eq!(in_progress.last(), Some(&0));
    // Waiting to retry, the client holds no session: it costs about what a plain client does
    // (a session inline in the client was ~3.4 KB for every failed or stopped client).
    let plain = Client::new(Arc::new(ClientConfig::default()), "x", device(), 1);
    let extra = client.heap_bytes().saturating_sub(plain.heap_bytes());
    assert!(extra < 256, "{extra} B more than a plain client");
    assert_eq!(ended.outcome, HandshakeOutcome::Failed(Failure::Timeout));
    assert_eq!(hellos, 3, "one ClientHello and two retransmissions");
    // 0.5 + 1 + 2 s of back-off, each ±25%.
    let took = ended.completed.saturating_since(ended.started);
    assert!(
        took >= Duration::from_millis(2600) && took <= Duration::from_millis(4400),
        "{took:?}"
    );
}

#[test]
fn keys_stay_out_of_debug_output() {
    let w = World::new(KEY);
    let shown = format!("{:?}", w.client);
    assert!(shown.contains("dtls-0001"));
    assert!(!shown.contains("secret-psk"), "{shown}");
}

#[test]
fn alerts_have_their_rfc_names() {
    assert_eq!(Failure::Alert(20).name(), "bad_record_mac");
    assert_eq!(Failure::Alert(115).name(), "unknown_psk_identity");
    assert_eq!(Failure::Alert(200).name(), "alert_other");
    assert_eq!(Failure::Timeout.name(), "timeout");
}
