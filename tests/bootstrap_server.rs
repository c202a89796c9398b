//! The embedded bootstrap server, the embedded LWM2M server and real clients on one simulated
//! clock and network: clients bootstrap, then register where they were sent, over plain CoAP
//! or DTLS (the fleet's key with the bootstrap server, the written one with the LWM2M server).

#[path = "support/shipped.rs"]
mod shipped;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lwm2m_swarm::client::{
    BootstrapOutcome, Client, ClientBootstrapConfig, ClientConfig, ClientState, Event, RequestKind,
    RequestOutcome, SendConfig,
};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::content::ContentFormat;
use lwm2m_swarm::security::Psk;
use lwm2m_swarm::security::dtls::ServerKeys;
use lwm2m_swarm::server::{
    BootstrapServer, BootstrapServerConfig, DtlsServerConfig, Provisioning, SecureServer, Served,
    Server, ServerConfig, ServerStats,
};
use shipped::device;

const SECOND: Duration = Duration::from_secs(1);
const FLEET_KEY: &[u8] = b"fleet-key-012345";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn bootstrap_addr() -> SocketAddr {
    addr(5783)
}

fn server_addr() -> SocketAddr {
    addr(5683)
}

/// Servers and clients by address; datagrams take 5 ms, and some may be dropped.
struct World {
    now: Instant,
    servers: Vec<(SocketAddr, Box<dyn Served>)>,
    clients: Vec<Client>,
    events: Vec<Vec<Event>>,
    by_addr: HashMap<SocketAddr, usize>,
    /// (due, sequence) -> (from, to, bytes)
    in_transit: BinaryHeap<Reverse<(Instant, u64)>>,
    payloads: HashMap<u64, (SocketAddr, SocketAddr, Vec<u8>)>,
    sequence: u64,
    /// Drops every n-th datagram (0: none).
    drop_every: u64,
    sent: u64,
}

fn client_addr(i: usize) -> SocketAddr {
    addr(20_000 + i as u16)
}

impl World {
    fn new(servers: Vec<(SocketAddr, Box<dyn Served>)>, clients: Vec<Client>) -> World {
        let by_addr = (0..clients.len()).map(|i| (client_addr(i), i)).collect();
        World {
            now: Instant::from_micros(1_000_000),
            servers,
            events: vec![Vec::new(); clients.len()],
            clients,
            by_addr,
            in_transit: BinaryHeap::new(),
            payloads: HashMap::new(),
            sequence: 0,
            drop_every: 0,
            sent: 0,
        }
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.sent += 1;
        if self.drop_every > 0 && self.sent.is_multiple_of(self.drop_every) {
            return;
        }
        self.sequence += 1;
        self.in_transit.push(Reverse((
            self.now + Duration::from_millis(5),
            self.sequence,
        )));
        self.payloads.insert(self.sequence, (from, to, bytes));
    }

    fn drain(&mut self) {
        for i in 0..self.clients.len() {
            while let Some((to, bytes)) = self.clients[i].poll_transmit() {
                self.send(client_addr(i), to, bytes);
            }
            while let Some(event) = self.clients[i].poll_event() {
                self.events[i].push(event);
            }
        }
        for s in 0..self.servers.len() {
            let from = self.servers[s].0;
            while let Some((to, bytes)) = self.servers[s].1.poll_transmit() {
                self.send(from, to, bytes);
            }
        }
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            self.drain();
            let delivery = self.in_transit.peek().map(|Reverse((at, _))| *at);
            let timers = self
                .clients
                .iter()
                .filter_map(Client::poll_timeout)
                .chain(self.servers.iter().filter_map(|(_, s)| s.poll_timeout()));
            let Some(next) = delivery
                .into_iter()
                .chain(timers)
                .min()
                .filter(|n| *n <= until)
            else {
                self.now = self.now.max(until);
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            if delivery == Some(next) {
                let Reverse((_, sequence)) = self.in_transit.pop().expect("due datagram");
                let (from, to, bytes) = self.payloads.remove(&sequence).expect("payload");
                if let Some(&i) = self.by_addr.get(&to) {
                    self.clients[i].handle_datagram(now, from, &bytes);
                } else if let Some((_, server)) = self.servers.iter_mut().find(|(a, _)| *a == to) {
                    server.handle_datagram(now, from, &bytes);
                }
                continue;
            }
            for (_, server) in &mut self.servers {
                if server.poll_timeout().is_some_and(|at| at <= now) {
                    server.handle_timeout(now);
                }
            }
            for client in &mut self.clients {
                if client.poll_timeout().is_some_and(|at| at <= now) {
                    client.handle_timeout(now);
                }
            }
        }
    }

    fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    fn stats(&self, at: SocketAddr) -> ServerStats {
        self.servers
            .iter()
            .find(|(a, _)| *a == at)
            .expect("a server there")
            .1
            .snapshot()
    }

    fn bootstraps(&self) -> Vec<BootstrapOutcome> {
        self.events
            .iter()
            .flatten()
            .filter_map(|e| match e {
                Event::Bootstrap(b) => Some(b.outcome),
                _ => None,
            })
            .collect()
    }
}

fn clients(count: usize, preferred: Option<ContentFormat>, psk: bool) -> Vec<Client> {
    let config = Arc::new(ClientConfig {
        server: bootstrap_addr(),
        bootstrap: Some(ClientBootstrapConfig {
            preferred_format: preferred,
            ..ClientBootstrapConfig::default()
        }),
        lifetime: Duration::from_secs(600),
        ..ClientConfig::default()
    });
    (0..count)
        .map(|i| {
            let name = format!("bs-{i:04}");
            let client = Client::new(Arc::clone(&config), &name, device(i as u64), 7 + i as u64);
            if psk {
                client.with_psk(Psk {
                    identity: name.into_bytes(),
                    key: FLEET_KEY.to_vec(),
                })
            } else {
                client
            }
        })
        .collect()
}

/// The bootstrap server sends clients to the LWM2M server, writing lifetime 120 s.
fn provisioning(uri: &str, master: Option<&[u8]>) -> Provisioning {
    Provisioning {
        psk_master: master.map(<[u8]>::to_vec),
        lifetime: Duration::from_secs(120),
        ..Provisioning::new(uri)
    }
}

fn start_all(world: &mut World) {
    for i in 0..world.clients.len() {
        world.clients[i].start(world.now);
        world.run_for(Duration::from_millis(20));
    }
}

#[test]
fn clients_bootstrap_then_register_where_they_were_sent() {
    let clients = clients(50, None, false);
    let bootstrap = BootstrapServer::new(
        BootstrapServerConfig::new(provisioning("coap://127.0.0.1:5683", None)),
        1,
    );
    let servers: Vec<(SocketAddr, Box<dyn Served>)> = vec![
        (bootstrap_addr(), Box::new(bootstrap)),
        (
            server_addr(),
            Box::new(Server::new(ServerConfig::default(), 2)),
        ),
    ];
    let mut world = World::new(servers, clients);
    start_all(&mut world);
    world.run_for(10 * SECOND);

    let b = world.stats(bootstrap_addr()).bootstrap;
    assert_eq!(
        (b.accepted, b.finished, b.failed, b.in_progress),
        (50, 50, 0, 0)
    );
    // Discover, two Deletes, two Writes and the Finish per client, all answered well.
    assert_eq!((b.discover.sent, b.discover.ok), (50, 50));
    assert_eq!((b.delete.sent, b.delete.ok), (100, 100));
    assert_eq!((b.write.sent, b.write.ok), (100, 100));
    assert_eq!((b.finish.sent, b.finish.ok), (50, 50));
    assert_eq!(
        world.bootstraps(),
        vec![BootstrapOutcome::Finished; 50],
        "both sides agree"
    );
    let s = world.stats(server_addr());
    assert_eq!((s.registered, s.registers), (50, 50));
    for client in &world.clients {
        assert_eq!(client.state(), ClientState::Registered);
        assert_eq!(client.server(), server_addr());
    }
}

#[test]
fn the_written_lifetime_and_format_are_used() {
    // SenML CBOR asked for with pct; the registrations carry the written lifetime.
    let clients = clients(5, Some(ContentFormat::SenmlCbor), false);
    let bootstrap = BootstrapServer::new(
        BootstrapServerConfig::new(provisioning("coap://127.0.0.1:5683", None)),
        1,
    );
    let server = Server::new(ServerConfig::default(), 2);
    let mut world = World::new(
        vec![
            (bootstrap_addr(), Box::new(bootstrap)),
            (server_addr(), Box::new(server)),
        ],
        clients,
    );
    start_all(&mut world);
    world.run_for(5 * SECOND);
    assert_eq!(world.stats(bootstrap_addr()).bootstrap.finished, 5);
    assert_eq!(world.stats(server_addr()).registered, 5);
    // Updates come at the written lifetime's pace (120 s, at 80%), not the fleet's 600 s.
    world.run_for(130 * SECOND);
    let updates = world.events[0]
        .iter()
        .filter(|e| matches!(e, Event::Request(r) if r.kind == RequestKind::Update))
        .count();
    assert!(updates >= 1, "{:?}", world.events[0]);
}

#[test]
fn over_dtls_each_side_uses_its_own_keys() {
    let master = b"provisioning-master";
    let provisioning = provisioning("coaps://127.0.0.1:5684", Some(master));
    let server_keys = provisioning.server_keys().expect("PSK clients");
    let bootstrap = SecureServer::new(
        BootstrapServer::new(BootstrapServerConfig::new(provisioning), 1),
        &DtlsServerConfig::new(ServerKeys::shared(FLEET_KEY.to_vec())),
    );
    let server = SecureServer::new(
        Server::new(ServerConfig::default(), 2),
        &DtlsServerConfig::new(server_keys),
    );
    let dtls_server = addr(5684);
    let mut world = World::new(
        vec![
            (bootstrap_addr(), Box::new(bootstrap)),
            (dtls_server, Box::new(server)),
        ],
        clients(20, None, true),
    );
    start_all(&mut world);
    world.run_for(10 * SECOND);

    let b = world.stats(bootstrap_addr());
    assert_eq!(b.bootstrap.finished, 20, "{b}");
    assert_eq!(b.dtls.handshakes_ok, 20);
    // Every client said goodbye to the bootstrap server once done, after the server's
    // MAX_TRANSMIT_WAIT (93 s): until then a retransmitted Finish is still answered.
    assert_eq!((b.dtls.closed, b.dtls.sessions), (0, 20), "{b}");
    world.run_for(90 * SECOND);
    let b = world.stats(bootstrap_addr());
    assert_eq!((b.dtls.closed, b.dtls.sessions), (20, 0), "{b}");
    let s = world.stats(dtls_server);
    assert_eq!(s.dtls.handshakes_ok, 20, "{s}");
    assert_eq!(s.registered, 20, "{s}");
    assert!(
        world
            .clients
            .iter()
            .all(|c| c.is_secure() && c.server() == dtls_server)
    );

    // The LWM2M server knows no fleet key: a client that skips the bootstrap cannot get in.
    let direct = Client::new(
        Arc::new(ClientConfig {
            server: dtls_server,
            ..ClientConfig::default()
        }),
        "bs-0000",
        device(99),
        99,
    )
    .with_psk(Psk {
        identity: b"bs-0000".to_vec(),
        key: FLEET_KEY.to_vec(),
    });
    world.clients.push(direct);
    world.events.push(Vec::new());
    world.by_addr.insert(client_addr(20), 20);
    world.clients[20].start(world.now);
    world.run_for(60 * SECOND);
    assert_ne!(world.clients[20].state(), ClientState::Registered);
    assert_eq!(world.stats(dtls_server).registered, 20);
}

#[test]
fn lost_datagrams_are_retransmitted_and_every_sequence_is_counted() {
    let bootstrap = BootstrapServer::new(
        BootstrapServerConfig::new(provisioning("coap://127.0.0.1:5683", None)),
        1,
    );
    let mut world = World::new(
        vec![
            (bootstrap_addr(), Box::new(bootstrap)),
            (
                server_addr(),
                Box::new(Server::new(ServerConfig::default(), 2)),
            ),
        ],
        clients(40, None, false),
    );
    world.drop_every = 7;
    start_all(&mut world);
    world.run_for(600 * SECOND);
    let b = world.stats(bootstrap_addr());
    let bs = b.bootstrap;
    assert!(b.retransmissions > 0, "{b}");
    assert_eq!(bs.accepted, bs.finished + bs.failed + bs.in_progress, "{b}");
    assert_eq!(bs.in_progress, 0);
    // Each client ended bootstrapped and registered, whatever it took.
    let finished = world
        .bootstraps()
        .iter()
        .filter(|o| **o == BootstrapOutcome::Finished)
        .count();
    assert_eq!(finished, 40);
    assert!(
        world
            .clients
            .iter()
            .all(|c| c.state() == ClientState::Registered),
        "{:?}",
        world.clients.iter().map(Client::state).collect::<Vec<_>>()
    );
    // Each client's attempts each had one Bootstrap-Request, which ended once (sent and
    // answered, timed out or given up; or never sent).
    for (i, events) in world.events.iter().enumerate() {
        let attempts = events
            .iter()
            .filter(|e| matches!(e, Event::Bootstrap(_)))
            .count();
        let ended: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Request(r) if r.kind == RequestKind::Bootstrap => Some(r.outcome),
                _ => None,
            })
            .collect();
        let sent = events
            .iter()
            .filter(|e| matches!(e, Event::Sent(RequestKind::Bootstrap)))
            .count();
        assert_eq!(attempts, ended.len(), "client {i}: {ended:?}");
        let unsent = ended
            .iter()
            .filter(|o| **o == RequestOutcome::Unsent)
            .count();
        assert_eq!(sent, ended.len() - unsent, "client {i}: {ended:?}");
    }
    // The server finished at least as many as the clients did (a Finish whose answer was
    // lost for good counts as failed there, finished here, never the other way round).
    assert!(bs.finished <= 40 && bs.finished + bs.failed >= 40, "{b}");
}

/// The Server instance a bootstrap server writes takes its unwritten resources from the
/// template: Mute Send stays false, and the clients Send to the server they were sent to.
#[test]
fn bootstrapped_clients_send() {
    let count = 10;
    let config = Arc::new(ClientConfig {
        server: bootstrap_addr(),
        bootstrap: Some(ClientBootstrapConfig::default()),
        lifetime: Duration::from_secs(600),
        send: Some(SendConfig {
            paths: vec![lwm2m_swarm::model::Path::resource(3303, 0, 5700)],
            every: 10 * SECOND,
            jitter: Duration::ZERO,
            format: ContentFormat::SenmlCbor,
        }),
        ..ClientConfig::default()
    });
    let clients: Vec<Client> = (0..count)
        .map(|i| Client::new(Arc::clone(&config), &format!("bs-{i:04}"), device(i), 7 + i))
        .collect();
    let bootstrap = BootstrapServer::new(
        BootstrapServerConfig::new(provisioning("coap://127.0.0.1:5683", None)),
        1,
    );
    let servers: Vec<(SocketAddr, Box<dyn Served>)> = vec![
        (bootstrap_addr(), Box::new(bootstrap)),
        (
            server_addr(),
            Box::new(Server::new(ServerConfig::default(), 2)),
        ),
    ];
    let mut world = World::new(servers, clients);
    start_all(&mut world);
    world.run_for(35 * SECOND);
    let s = world.stats(server_addr());
    assert_eq!(s.registers, count);
    // Three Sends each: registered within the first seconds, one every 10 s.
    assert_eq!((s.sends, s.send_values), (3 * count, 3 * count), "{s:?}");
}
