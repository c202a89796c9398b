//! DTLS clients and the DTLS server in one thread under a simulated clock: no network, no sleep.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{DtlsServerConfig, MAX_UNVERIFIED, SecureServer, UNVERIFIED_LIFETIME};
use crate::client::{Client, ClientConfig, ClientState, Event, HandshakeOutcome};
use crate::clock::Instant;
use crate::model::Path;
use crate::security::dtls::{DtlsParams, ServerKeys};
use crate::security::{Credential, Psk};
use crate::server::{Server, ServerConfig};

const KEY: &[u8] = b"fleet-key-01234";

fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5684))
}

fn peer(k: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 40_000 + k as u16))
}

fn endpoint(k: usize) -> String {
    format!("sec-{k:02}")
}

/// Quick handshakes both sides, so failures show within seconds of simulated time.
fn quick() -> DtlsParams {
    DtlsParams {
        flight_start_rto: Duration::from_millis(200),
        flight_retries: 2,
        handshake_timeout: Duration::from_secs(3),
    }
}

fn at(secs: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(secs)
}

/// Client `k` with PSK `KEY`, its message IDs and tokens from `seed`.
fn client(k: usize, seed: u64) -> Client {
    let psk = Psk {
        identity: endpoint(k).into_bytes(),
        key: KEY.to_vec(),
    };
    client_with(k, seed, Credential::Psk(psk))
}

/// Client `k` with these credentials; its clock starts at Unix time 1,700,000,000.
fn client_with(k: usize, seed: u64, credential: Credential) -> Client {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let set = crate::model::TemplateSet::load_dir(std::path::Path::new(dir)).unwrap();
    let template = set.device("environment-sensor").unwrap();
    let config = Arc::new(ClientConfig {
        server: server_addr(),
        update_jitter: 0.0,
        dtls: quick(),
        ..ClientConfig::default()
    });
    let device = crate::model::Device::new(template.clone(), k as u64, 1_700_000_000);
    Client::new(config, &endpoint(k), device, seed).with_credential(credential)
}

struct World {
    now: Instant,
    clients: Vec<Client>,
    server: SecureServer,
    events: Vec<Vec<Event>>,
}

impl World {
    /// `clients` clients whose keys are `KEY`, a server with these keys reading /3/0/0 from
    /// each every second.
    fn new(clients: usize, config: &DtlsServerConfig) -> World {
        let server_config = ServerConfig {
            read: Some((Path::resource(3, 0, 0), Duration::from_secs(1))),
            ..ServerConfig::default()
        };
        World::with_server(clients, config, server_config)
    }

    fn with_server(
        clients: usize,
        config: &DtlsServerConfig,
        server_config: ServerConfig,
    ) -> World {
        let clients = (0..clients)
            .map(|k| client(k, k as u64))
            .collect::<Vec<_>>();
        World::with_clients(clients, config, server_config)
    }

    fn with_clients(
        clients: Vec<Client>,
        config: &DtlsServerConfig,
        server_config: ServerConfig,
    ) -> World {
        let server = SecureServer::new(Server::new(server_config, 5), config);
        World {
            now: Instant::ZERO,
            events: clients.iter().map(|_| Vec::new()).collect(),
            clients,
            server,
        }
    }

    /// A server config whose keys are `KEY` for every client but `wrong`.
    fn keys(clients: usize, wrong: Option<usize>) -> DtlsServerConfig {
        let map: HashMap<Vec<u8>, Vec<u8>> = (0..clients)
            .map(|k| {
                let key = if Some(k) == wrong {
                    b"another-key-000".to_vec()
                } else {
                    KEY.to_vec()
                };
                (endpoint(k).into_bytes(), key)
            })
            .collect();
        DtlsServerConfig {
            params: quick(),
            ..DtlsServerConfig::new(ServerKeys::from_map(map))
        }
    }

    /// Delivers datagrams until quiet, then moves the clock to the next deadline; stops at
    /// `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            let mut moved = true;
            while moved {
                moved = false;
                for (k, client) in self.clients.iter_mut().enumerate() {
                    while let Some((to, bytes)) = client.poll_transmit() {
                        assert_eq!(to, server_addr());
                        self.server.handle_datagram(self.now, peer(k), &bytes);
                        moved = true;
                    }
                    while let Some(event) = client.poll_event() {
                        self.events[k].push(event);
                    }
                }
                while let Some((to, bytes)) = self.server.poll_transmit() {
                    let k = usize::from(to.port() - 40_000);
                    self.clients[k].handle_datagram(self.now, server_addr(), &bytes);
                    moved = true;
                }
            }
            let next = self
                .clients
                .iter()
                .filter_map(Client::poll_timeout)
                .chain(self.server.poll_timeout())
                .min();
            match next {
                Some(next) if next <= until => {
                    self.now = self.now.max(next);
                    for client in &mut self.clients {
                        if client.poll_timeout().is_some_and(|t| t <= self.now) {
                            client.handle_timeout(self.now);
                        }
                    }
                    if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.server.handle_timeout(self.now);
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    fn handshakes(&self, k: usize) -> Vec<HandshakeOutcome> {
        self.events[k]
            .iter()
            .filter_map(|e| match e {
                Event::Handshake(h) => Some(h.outcome),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn clients_handshake_register_answer_reads_and_close() {
    let mut w = World::new(5, &World::keys(5, None));
    for client in &mut w.clients {
        client.start(Instant::ZERO);
    }
    w.run_until(at(5));
    let stats = w.server.stats();
    assert_eq!(w.server.server().registration_count(), 5, "{stats:?}");
    for (k, client) in w.clients.iter().enumerate() {
        assert_eq!(client.state(), ClientState::Registered);
        assert_eq!(w.handshakes(k), vec![HandshakeOutcome::Connected]);
        assert!(w.server.is_connected(peer(k)));
    }
    assert_eq!(stats.dtls.handshakes_ok, 5, "{stats:?}");
    assert_eq!(stats.dtls.handshakes_failed, 0, "{stats:?}");
    assert_eq!(stats.dtls.sessions, 5, "{stats:?}");
    // Reads every second went out encrypted and came back answered.
    assert!(stats.read.ok >= 15, "{stats:?}");
    assert_eq!(stats.read.timeout, 0, "{stats:?}");
    assert_eq!(stats.dtls.unsent, 0, "{stats:?}");

    // Stopping de-registers over the session, then close_notify ends it on the server too.
    for client in &mut w.clients {
        client.stop(at(5));
    }
    w.run_until(at(8));
    let stats = w.server.stats();
    assert_eq!(stats.deregisters, 5, "{stats:?}");
    assert_eq!(w.server.server().registration_count(), 0);
    assert_eq!(stats.dtls.closed, 5, "{stats:?}");
    assert_eq!(stats.dtls.sessions, 0, "{stats:?}");
    assert_eq!(stats.dtls.sessions_opened, 5, "{stats:?}");
    assert!(
        stats.to_string().contains("handshakes ok 5 failed 0"),
        "{stats}"
    );
    // No close_notify answers a stopped client's: nothing arrived at a client that had left.
    let dropped: Vec<_> = w
        .events
        .iter()
        .flatten()
        .filter(|e| matches!(e, Event::Dropped(_)))
        .collect();
    assert!(dropped.is_empty(), "{dropped:?}");
}

#[test]
fn a_wrong_key_fails_on_both_sides_and_spares_the_others() {
    let mut w = World::new(3, &World::keys(3, Some(1)));
    for client in &mut w.clients {
        client.start(Instant::ZERO);
    }
    w.run_until(at(10));
    let stats = w.server.stats();
    assert_eq!(stats.dtls.handshakes_ok, 2, "{stats:?}");
    // The client's Finished does not decrypt: the server's handshake times out.
    assert!(stats.dtls.handshakes_failed >= 1, "{stats:?}");
    assert!(w.server.server().registration(&endpoint(1)).is_none());
    assert!(w.server.server().registration(&endpoint(0)).is_some());
    assert!(
        matches!(w.handshakes(1).first(), Some(HandshakeOutcome::Failed(_))),
        "{:?}",
        w.handshakes(1)
    );
    // The failed session is gone: nothing is left open but the two good ones.
    assert_eq!(stats.dtls.sessions, 2, "{stats:?}");
    assert!(!w.server.is_connected(peer(1)));
}

#[test]
fn quiet_sessions_expire_and_strangers_are_dropped() {
    let config = DtlsServerConfig {
        idle_timeout: Duration::from_secs(2),
        ..World::keys(1, None)
    };
    // No server load, so nothing keeps the session busy.
    let mut w = World::with_server(1, &config, ServerConfig::default());
    w.clients[0].start(Instant::ZERO);
    w.run_until(at(1));
    assert!(w.server.is_connected(peer(0)));
    w.run_until(at(4));
    let stats = w.server.stats();
    // Quiet for 2 s: expired with a close_notify, and the client, told, handshook again.
    assert!(stats.dtls.expired >= 1, "{stats:?}");
    assert_eq!(
        stats.dtls.sessions_opened, stats.dtls.handshakes_ok,
        "{stats:?}"
    );
    assert_eq!(
        stats.dtls.sessions,
        stats.dtls.sessions_opened - stats.dtls.expired,
        "{stats:?}"
    );
    assert!(stats.dtls.sessions_opened > stats.dtls.expired, "{stats:?}");

    // Records from a peer without a session, not a ClientHello: dropped, counted.
    w.server.handle_datagram(
        w.now,
        peer(9),
        &[23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0],
    );
    assert_eq!(w.server.stats().dtls.no_session, 1);
    assert!(w.server.poll_transmit().is_none());
}

#[test]
fn server_keys_stay_out_of_debug_output() {
    let config = World::keys(2, None);
    let shown = format!(
        "{config:?} {:?}",
        SecureServer::new(Server::new(ServerConfig::default(), 1), &config)
    );
    assert!(!shown.contains("fleet-key"), "{shown}");
    assert!(shown.contains("<hidden>"), "{shown}");
}

#[test]
fn a_client_that_starts_over_on_the_same_address_gets_a_fresh_session() {
    let mut w = World::new(1, &World::keys(1, None));
    w.clients[0].start(Instant::ZERO);
    w.run_until(at(1));
    assert!(w.server.is_connected(peer(0)));
    // The device restarts without a goodbye: a new client, same address, same identity.
    w.clients[0] = client(0, 99);
    w.clients[0].start(at(1));
    w.run_until(at(3));
    assert_eq!(w.clients[0].state(), ClientState::Registered);
    let stats = w.server.stats();
    assert_eq!(stats.dtls.handshakes_ok, 2, "{stats:?}");
    assert_eq!(stats.dtls.lost, 1, "{stats:?}");
    assert_eq!(stats.dtls.sessions, 1, "{stats:?}");
    assert_eq!(stats.replaced, 1, "{stats:?}");
}

/// A real client's first `ClientHello` (no cookie yet).
fn first_client_hello(seed: u64) -> Vec<u8> {
    let mut c = client(0, seed);
    c.start(Instant::ZERO);
    let (_, hello) = c.poll_transmit().expect("a ClientHello");
    assert!(crate::security::dtls::is_client_hello(&hello));
    hello
}

/// `ClientHello`s from many spoofed addresses get a `HelloVerifyRequest` each and open no
/// session; the handshakes waiting for a cookie stay bounded.
#[test]
fn client_hellos_from_spoofed_addresses_open_no_session() {
    let mut server = SecureServer::new(
        Server::new(ServerConfig::default(), 1),
        &World::keys(1, None),
    );
    let hello = first_client_hello(1);
    let spoofed = MAX_UNVERIFIED + 100;
    for i in 0..spoofed {
        let from = SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 5683));
        server.handle_datagram(at(0), from, &hello);
        let (to, reply) = server.poll_transmit().expect("a HelloVerifyRequest");
        assert_eq!(to, from);
        assert!(crate::security::dtls::is_hello_verify_request(&reply));
        assert!(server.poll_transmit().is_none());
    }
    let dtls = server.stats().dtls;
    assert_eq!(dtls.sessions_opened, 0, "{dtls:?}");
    assert_eq!(dtls.sessions, 0, "{dtls:?}");
    assert_eq!(dtls.hello_verify_requests, spoofed as u64, "{dtls:?}");
    assert_eq!(server.unverified(), MAX_UNVERIFIED);
    assert_eq!(dtls.unverified_dropped, 100, "{dtls:?}");
    // Later, all of them have timed out.
    let later = at(0) + UNVERIFIED_LIFETIME;
    server.handle_datagram(later, SocketAddr::from(([10, 8, 0, 1], 5683)), &hello);
    assert_eq!(server.unverified(), 1);
    assert_eq!(server.stats().dtls.unverified_dropped, spoofed as u64);
}

/// A `ClientHello` without a cookie from an established session's address (a spoofed one, or
/// a restart that never returns the cookie) leaves the session alone.
#[test]
fn an_established_session_survives_a_client_hello_without_a_cookie() {
    let mut w = World::new(1, &World::keys(1, None));
    w.clients[0].start(Instant::ZERO);
    w.run_until(at(1));
    assert!(w.server.is_connected(peer(0)));
    let reads = w.server.stats().read.ok;
    w.server
        .handle_datagram(w.now, peer(0), &first_client_hello(77));
    assert!(w.server.is_connected(peer(0)));
    // The HelloVerifyRequest goes to the real client, which is not handshaking: it ignores it.
    w.run_until(at(4));
    assert!(w.server.is_connected(peer(0)));
    assert_eq!(w.clients[0].state(), ClientState::Registered);
    let stats = w.server.stats();
    assert!(stats.read.ok >= reads + 2, "reads go on: {stats:?}");
    assert_eq!(stats.dtls.lost, 0, "{stats:?}");
    assert_eq!(stats.dtls.sessions_opened, 1, "{stats:?}");
    assert_eq!(stats.dtls.hello_verify_requests, 2, "{stats:?}");
}

#[test]
fn handshakes_beyond_the_session_cap_are_refused_and_counted() {
    let config = DtlsServerConfig {
        max_sessions: 1,
        ..World::keys(2, None)
    };
    let mut w = World::with_server(2, &config, ServerConfig::default());
    w.clients[0].start(Instant::ZERO);
    w.run_until(at(1));
    w.clients[1].start(at(1));
    w.run_until(at(3));
    assert!(w.server.is_connected(peer(0)));
    assert!(!w.server.is_connected(peer(1)));
    let dtls = w.server.stats().dtls;
    assert_eq!(dtls.sessions, 1, "{dtls:?}");
    assert!(dtls.sessions_full >= 1, "{dtls:?}");
}

mod certificates;
