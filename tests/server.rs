//! The embedded server against the project's own clients: simulated time for the protocol,
//! real loopback UDP for the runner.

#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/world.rs"]
mod world;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use lwm2m_swarm::client::{
    Client, ClientConfig, ClientState, Dropped, Event, OperationKind, RequestKind, RequestOutcome,
};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::model::Path;
use lwm2m_swarm::server::run::Runner;
use lwm2m_swarm::server::{ObserveLoad, OperationStats, ServerConfig, WriteLoad};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shipped::device;
use world::{Hop, World};

const SECOND: Duration = Duration::from_secs(1);

fn temperature() -> Path {
    Path::resource(3303, 0, 5700)
}

fn full_load() -> ServerConfig {
    ServerConfig {
        read: Some((temperature(), 30 * SECOND)),
        observe: Some(ObserveLoad {
            path: temperature(),
            pmin: Some(5),
            pmax: Some(20),
        }),
        write: Some(WriteLoad {
            path: Path::resource(3, 0, 14),
            value: "+02:00".into(),
            every: 60 * SECOND,
        }),
        execute: Some((Path::resource(3304, 0, 5605), 90 * SECOND)),
        ..ServerConfig::default()
    }
}

fn client_config(lifetime: u64) -> ClientConfig {
    ClientConfig {
        lifetime: Duration::from_secs(lifetime),
        ..ClientConfig::default()
    }
}

/// Operations of `kind` the clients answered, by code class 2.xx.
fn answered_ok(world: &World, kind: OperationKind) -> u64 {
    (0..world.clients.len())
        .map(|i| {
            world
                .client_events(i, |e| match e {
                    Event::Operation(op) if op.kind == kind && op.code >> 5 == 2 => Some(()),
                    _ => None,
                })
                .len() as u64
        })
        .sum()
}

fn answered(op: &OperationStats) -> u64 {
    op.ok + op.client_error + op.server_error
}

#[test]
fn fifty_clients_get_the_configured_load() {
    let mut world = World::new(
        full_load(),
        ClientConfig {
            confirmable_notifications: 0.5,
            ..client_config(300)
        },
        50,
    );
    for i in 0..50 {
        world.start(i);
        world.run_for(Duration::from_millis(100));
    }
    let started = world.now;
    world.run_for(600 * SECOND);

    registrations_match_the_clients(&world, started);
    let stats = *world.server.stats();
    assert_eq!(stats.registers, 50);
    // Lifetime 300 s, Update at ~80 %: two per client in ten minutes.
    assert!((100..=150).contains(&stats.updates), "{}", stats.updates);
    // One per period per client, the first at a random offset within the period.
    assert!((950..=1050).contains(&stats.read.sent), "{:?}", stats.read);
    assert!((450..=550).contains(&stats.write.sent), "{:?}", stats.write);
    assert!(
        (300..=350).contains(&stats.execute.sent),
        "{:?}",
        stats.execute
    );
    assert_eq!(stats.observe.ok, 50);
    assert_eq!(stats.write_attributes.ok, 50);
    // pmax 20 s over ten minutes.
    assert!(stats.notifications >= 50 * 25, "{}", stats.notifications);
    assert_eq!(stats.retransmissions, 0);
    assert_eq!(stats.duplicates + stats.malformed + stats.unmatched, 0);

    // Stop every client: the last answers arrive, then the De-registers.
    for i in 0..50 {
        let now = world.now;
        world.clients[i].stop(now);
    }
    world.run_for(10 * SECOND);
    let stats = *world.server.stats();
    assert_eq!(stats.deregisters, 50);
    assert_eq!(world.server.registration_count(), 0);
    for (kind, op) in [
        (OperationKind::Read, stats.read),
        (OperationKind::Write, stats.write),
        (OperationKind::Execute, stats.execute),
        (OperationKind::Observe, stats.observe),
        (OperationKind::WriteAttributes, stats.write_attributes),
    ] {
        // Every request ended exactly once, and what the server saw answered the clients answered.
        assert_eq!(
            op.sent,
            answered(&op) + op.timeout + op.reset + op.aborted,
            "{kind:?}"
        );
        assert_eq!(
            op.timeout + op.reset + op.client_error + op.server_error,
            0,
            "{kind:?}"
        );
        let by_clients = answered_ok(&world, kind);
        assert!(
            by_clients >= op.ok && by_clients <= op.ok + op.aborted,
            "{kind:?}: clients {by_clients}, server {op:?}"
        );
    }
    notifications_all_arrived(&world);
    first_reads_are_spread(&world);
}

fn registrations_match_the_clients(world: &World, started: Instant) {
    let server = &world.server;
    assert_eq!(server.registration_count(), 50);
    for (i, client) in world.clients.iter().enumerate() {
        assert_eq!(client.state(), ClientState::Registered);
        let registration = server.registration(client.endpoint_name()).expect("known");
        assert_eq!(Some(registration.location().as_str()), client.location());
        assert_eq!(registration.peer(), world.addrs[i]);
        assert_eq!(registration.lifetime(), 300 * SECOND);
        assert!(registration.is_observed());
        assert!(
            registration.last_update() > started,
            "updated during the run"
        );
        assert!(
            registration
                .object_links()
                .links
                .iter()
                .any(|l| l.path == Path::instance(3303, 0))
        );
    }
}

fn notifications_all_arrived(world: &World) {
    let stats = *world.server.stats();
    // Every notification a client sent arrived: counted, or refused once its registration was gone.
    let notified: u64 = (0..50)
        .map(|i| {
            world
                .client_events(i, |e| match e {
                    Event::Request(r) if r.kind == RequestKind::Notify => Some(r.outcome),
                    _ => None,
                })
                .iter()
                // ACKed, unconfirmed (NON) or refused with RST: each reached the server.
                .filter(|(_, o)| {
                    matches!(
                        o,
                        RequestOutcome::Response(0)
                            | RequestOutcome::Unconfirmed
                            | RequestOutcome::Reset
                    )
                })
                .count() as u64
        })
        .sum();
    assert_eq!(
        notified,
        stats.notifications + stats.notifications_rejected,
        "{stats:?}"
    );
    assert!(stats.notifications_rejected <= 50);
}

fn first_reads_are_spread(world: &World) {
    // The first Reads are spread over the period, not fired together.
    let first_reads: Vec<Instant> = (0..50)
        .filter_map(|i| {
            world
                .client_events(i, |e| match e {
                    Event::Operation(op) if op.kind == OperationKind::Read => Some(()),
                    _ => None,
                })
                .first()
                .map(|(at, ())| *at)
        })
        .collect();
    let spread = *first_reads.iter().max().unwrap() - *first_reads.iter().min().unwrap();
    assert!(spread > 15 * SECOND, "first Reads within {spread:?}");
}

#[test]
fn a_sleeping_client_gets_held_reads_right_after_its_update() {
    let mut world = World::new(
        ServerConfig {
            read: Some((temperature(), 150 * SECOND)),
            ..ServerConfig::default()
        },
        ClientConfig {
            queue_mode: true,
            update_jitter: 0.0,
            ..client_config(600)
        },
        1,
    );
    world.start(0);
    world.run_for(SECOND);
    assert!(world.server.registration("sim-0000").unwrap().queue_mode());
    // Updates at 480 s and 960 s after registering; awake 93 s after each.
    world.run_for(970 * SECOND);

    let stats = *world.server.stats();
    assert_eq!(stats.updates, 2);
    assert!(stats.queue.held >= 2, "{:?}", stats.queue);
    assert_eq!(stats.queue.delivered, stats.queue.held);
    // Delivered in the same instant as the Update's answer (sans-IO: no delay at all).
    assert_eq!(stats.queue.delay_max_us, 0);
    assert_eq!(stats.read.timeout, 0);
    assert_eq!(stats.read.ok, stats.read.sent);

    let asleep = world.client_events(0, |e| (*e == Event::Dropped(Dropped::Asleep)).then_some(()));
    assert!(asleep.is_empty(), "the server sent while the client slept");
    let updates = world.client_events(0, |e| match e {
        Event::Request(r) if r.kind == RequestKind::Update => Some(r.sent),
        _ => None,
    });
    let reads = world.client_events(0, |e| match e {
        Event::Operation(op) if op.kind == OperationKind::Read => Some(op.received),
        _ => None,
    });
    assert_eq!(reads.len() as u64, stats.read.ok);
    let slept = world.client_events(0, |e| {
        (*e == Event::State(ClientState::Sleeping)).then_some(())
    });
    assert!(slept.len() >= 2, "the client slept between Updates");
    // Each Update is followed by a held Read within one round trip, before the client sleeps again.
    for (_, update_sent) in &updates {
        let read = reads
            .iter()
            .map(|(_, at)| *at)
            .find(|at| *at >= *update_sent)
            .expect("a Read after the Update");
        assert!(
            read - *update_sent <= Duration::from_millis(20),
            "{:?}",
            read - *update_sent
        );
    }
}

#[test]
fn a_silent_client_expires_a_talking_one_stays() {
    let mut world = World::new(ServerConfig::default(), client_config(120), 2);
    world.start(0);
    world.start(1);
    world.run_for(SECOND);
    assert_eq!(world.server.registration_count(), 2);
    // Client 1 goes silent: the network loses everything it sends.
    world.drop = Box::new(|hop, _| hop == Hop::ToServer(1));
    world.run_for(119 * SECOND);
    assert!(
        world.server.registration("sim-0001").is_some(),
        "not before its lifetime"
    );
    world.run_for(2 * SECOND);
    assert!(world.server.registration("sim-0001").is_none());
    assert_eq!(world.server.stats().expired, 1);
    world.run_for(400 * SECOND);
    assert!(world.server.registration("sim-0000").is_some());
    assert!(world.server.stats().updates >= 4);
    assert_eq!(world.server.stats().expired, 1);
    assert_eq!(world.server.stats().registered, 1);
}

#[test]
fn a_retransmitted_register_registers_once() {
    let mut world = World::new(ServerConfig::default(), client_config(300), 1);
    // The network loses the server's first answer: the client retransmits its Register.
    let mut dropped = false;
    world.drop = Box::new(move |hop, _| {
        let drop = hop == Hop::ToClient(0) && !dropped;
        dropped |= drop;
        drop
    });
    world.start(0);
    world.run_for(10 * SECOND);
    let stats = *world.server.stats();
    assert_eq!(stats.registers, 1);
    assert_eq!(stats.duplicates, 1);
    assert_eq!(world.server.registration_count(), 1);
    let client = &world.clients[0];
    assert_eq!(client.state(), ClientState::Registered);
    let registration = world.server.registration("sim-0000").unwrap();
    assert_eq!(client.location(), Some(registration.location().as_str()));
    let registers = world.client_events(0, |e| match e {
        Event::Request(r) if r.kind == RequestKind::Register => Some(*r),
        _ => None,
    });
    assert_eq!(registers.len(), 1);
    assert_eq!(registers[0].1.retransmissions, 1);
}

#[test]
fn garbage_is_counted_and_the_server_carries_on() {
    let mut world = World::new(
        ServerConfig {
            read: Some((temperature(), 10 * SECOND)),
            ..ServerConfig::default()
        },
        client_config(300),
        1,
    );
    let mut rng = SmallRng::seed_from_u64(5);
    let garbage = 10_000u64;
    for i in 0..garbage {
        let mut bytes = vec![0u8; rng.random_range(0..40)];
        rng.fill(&mut bytes[..]);
        if i % 2 == 0 && !bytes.is_empty() {
            // Version 1, so parsing goes past the first byte.
            bytes[0] = 0x40 | (bytes[0] & 0x3F);
        }
        let from = SocketAddr::from(([10, 0, 0, (i % 200) as u8], 5683));
        world.inject(from, &bytes);
    }
    world.start(0);
    world.run_for(60 * SECOND);

    let stats = *world.server.stats();
    assert!(stats.malformed > garbage / 4, "{stats:?}");
    assert_eq!(stats.datagrams_received, garbage + world.uplink_count);
    assert_eq!(stats.registers, 1);
    assert!(stats.read.ok >= 5, "{:?}", stats.read);
    // Garbage earns RSTs and 4.xx answers, never a success.
    assert!(!world.stray.is_empty());
    for (_, bytes) in &world.stray {
        let code = bytes[1];
        assert!(
            code == 0 || code >> 5 == 4,
            "reply code {code:#x} to garbage"
        );
    }
}

/// Three real clients over loopback UDP against the runner, with the real clock.
#[test]
fn the_runner_serves_over_loopback() {
    let config = ServerConfig {
        read: Some((temperature(), Duration::from_millis(300))),
        ..ServerConfig::default()
    };
    let runner = Runner::start_loopback(config, 7).expect("binds");
    let server = runner.local_addr();
    let origin = std::time::Instant::now();
    let clock = || Instant::from_micros(origin.elapsed().as_micros() as u64);
    let client_config = Arc::new(ClientConfig {
        server,
        ..client_config(300)
    });
    let mut clients: Vec<(UdpSocket, Client)> = (0..3u64)
        .map(|i| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            let name = format!("udp-{i}");
            let client = Client::new(Arc::clone(&client_config), &name, device(i), i);
            (socket, client)
        })
        .collect();
    for (_, client) in &mut clients {
        client.start(clock());
    }
    let mut reads = [0u32; 3];
    let step = |clients: &mut Vec<(UdpSocket, Client)>, reads: &mut [u32; 3]| {
        let mut buf = [0u8; 2048];
        for (i, (socket, client)) in clients.iter_mut().enumerate() {
            while let Ok((len, from)) = socket.recv_from(&mut buf) {
                client.handle_datagram(clock(), from, &buf[..len]);
            }
            if client.poll_timeout().is_some_and(|at| at <= clock()) {
                client.handle_timeout(clock());
            }
            while let Some((to, bytes)) = client.poll_transmit() {
                socket.send_to(&bytes, to).unwrap();
            }
            while let Some(event) = client.poll_event() {
                if matches!(event, Event::Operation(op) if op.kind == OperationKind::Read) {
                    reads[i] += 1;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reads.iter().any(|&n| n < 2) || runner.stats().registered < 3 {
        assert!(std::time::Instant::now() < deadline, "{reads:?} {runner}");
        step(&mut clients, &mut reads);
    }
    assert!(
        clients
            .iter()
            .all(|(_, c)| c.state() == ClientState::Registered)
    );
    assert!(runner.to_string().contains("registered 3"), "{runner}");

    for (_, client) in &mut clients {
        client.stop(clock());
    }
    while clients
        .iter()
        .any(|(_, c)| c.state() != ClientState::Stopped)
    {
        assert!(std::time::Instant::now() < deadline, "{runner}");
        step(&mut clients, &mut reads);
    }
    let stats = runner.stop().expect("clean stop");
    assert_eq!(stats.registers, 3);
    assert_eq!(stats.deregisters, 3);
    assert_eq!(stats.registered, 0);
    assert!(stats.read.ok >= 6, "{:?}", stats.read);
    let by_clients = u64::from(reads.iter().sum::<u32>());
    assert!(by_clients >= stats.read.ok && by_clients <= stats.read.ok + stats.read.aborted);
}

/// A datagram longer than the server takes is counted and dropped, and the server carries on.
#[test]
fn the_runner_counts_oversized_datagrams() {
    let runner = Runner::start_loopback(ServerConfig::default(), 3).expect("binds");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(&[0x40; 3000], runner.local_addr()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while runner.stats().io.truncated == 0 {
        assert!(std::time::Instant::now() < deadline, "{}", runner.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = runner.stop().unwrap();
    assert_eq!(stats.io.truncated, 1);
    assert_eq!(stats.malformed, 0, "the cut datagram was not parsed");
    assert!(stats.to_string().contains("truncated 1"), "{stats}");
}
