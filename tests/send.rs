//! Send (`POST /dp`, LWM2M 1.1) on a simulated clock: the period and its jitter, the payload,
//! Mute Send, queue mode, and a fleet sending to the embedded server with the request
//! accounting intact.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/sim.rs"]
mod sim;
#[path = "support/world.rs"]
mod world;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, RequestType, ResponseType};
use lwm2m_swarm::client::{
    Client, ClientConfig, ClientState, Dropped, Event, RequestKind, RequestOutcome, SendConfig,
};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::content::{self, ContentFormat};
use lwm2m_swarm::metrics::Recorder;
use lwm2m_swarm::model::{Path, Record};
use lwm2m_swarm::server::{Server, ServerConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shipped::device;
use sim::{Sim, uint_option, uri_path};
use world::{Hop, World};

const SECOND: Duration = Duration::from_secs(1);
/// 2.04 Changed, as a request record's code.
const CHANGED: u8 = 0x44;

fn send_config(every: u64, jitter: u64, format: ContentFormat) -> SendConfig {
    SendConfig {
        paths: vec![
            Path::resource(3303, 0, 5700),
            Path::resource(3, 0, 0),
            Path::resource(1, 0, 1),
        ],
        every: Duration::from_secs(every),
        jitter: Duration::from_secs(jitter),
        format,
    }
}

fn config(send: SendConfig) -> ClientConfig {
    ClientConfig {
        lifetime: Duration::from_secs(3600),
        update_jitter: 0.0,
        send: Some(send),
        ..ClientConfig::default()
    }
}

fn registered(config: ClientConfig, seed: u64) -> Sim {
    let client = Client::new(Arc::new(config), "sim-0001", device(seed), seed);
    let mut sim = Sim::new(client);
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    sim
}

/// The Sends' records: when each was due, and how it ended.
fn sends(events: &[(Instant, Event)]) -> Vec<(Instant, RequestOutcome)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Request(r) if r.kind == RequestKind::Send => Some((r.intended, r.outcome)),
            _ => None,
        })
        .collect()
}

fn registered_at(sim: &Sim) -> Instant {
    sim.request_records()
        .iter()
        .find(|r| r.kind == RequestKind::Register)
        .expect("registered")
        .completed
}

#[test]
fn sends_every_period_within_its_jitter() {
    for seed in 0..4 {
        let mut sim = registered(config(send_config(60, 10, ContentFormat::SenmlCbor)), seed);
        let start = registered_at(&sim);
        sim.run_for(Duration::from_secs(3000));
        let sends = sends(&sim.events);
        // 3000 s at 50..70 s apart: 42 to 60 Sends.
        assert!((42..=60).contains(&sends.len()), "{}", sends.len());
        let mut previous = start;
        let mut gaps = Vec::new();
        for (due, outcome) in &sends {
            let gap = due.saturating_since(previous);
            assert!(
                (50 * SECOND..=70 * SECOND).contains(&gap),
                "seed {seed}: {gap:?}"
            );
            assert_eq!(*outcome, RequestOutcome::Response(CHANGED));
            gaps.push(gap);
            previous = *due;
        }
        // Jitter is drawn, not fixed: the gaps differ.
        gaps.sort();
        assert!(
            gaps[gaps.len() - 1].saturating_sub(gaps[0]) >= 5 * SECOND,
            "{gaps:?}"
        );
        let posts = sim.server.requests_named(RequestType::Post, "/dp");
        assert_eq!(posts.len(), sends.len());
        for (_, packet) in &posts {
            assert_eq!(
                uint_option(packet, CoapOption::ContentFormat),
                Some(112),
                "SenML CBOR by default"
            );
        }
    }
}

/// Decodes a Send the scripted server received, with the client's device as the schema.
fn decode(sim: &Sim, packet: &coap_lite::Packet, format: ContentFormat) -> Vec<Record> {
    content::decode(format, &Path::ROOT, &packet.payload, sim.client.device())
        .unwrap_or_else(|e| panic!("the Send decodes: {e}"))
}

#[test]
fn the_payload_decodes_to_the_devices_values() {
    for format in [ContentFormat::SenmlCbor, ContentFormat::SenmlJson] {
        let send = send_config(60, 0, format);
        let paths = send.paths.clone();
        let mut sim = registered(config(send), 3);
        let due = registered_at(&sim) + 60 * SECOND;
        // The device as it is just before the Send: read at the Send's instant it must give
        // what the Send carried (the walk generator's state included).
        sim.run_until(registered_at(&sim) + 59 * SECOND);
        let mut twin = sim.client.device().clone();
        sim.run_until(due + SECOND);
        let posts = sim.server.requests_named(RequestType::Post, "/dp");
        assert_eq!(posts.len(), 1, "{format:?}");
        let (_, packet) = &posts[0];
        assert_eq!(
            uint_option(packet, CoapOption::ContentFormat),
            Some(u32::from(format.code()))
        );
        let sent_at = sim
            .request_records()
            .iter()
            .find(|r| r.kind == RequestKind::Send)
            .expect("the Send ended")
            .sent;
        assert_eq!(sent_at, due, "sent when due: nothing was queued before it");
        let expected: Vec<Record> = paths
            .iter()
            .flat_map(|p| twin.read(p, sent_at).expect("the device has the path"))
            .collect();
        assert_eq!(expected.len(), 3);
        assert_eq!(decode(&sim, packet, format), expected, "{format:?}");
    }
}

/// Writes Mute Send (`/1/0/23`) as text: "1" mutes, "0" unmutes.
fn write_mute(sim: &mut Sim, muted: bool) {
    let mut write = sim.server.request(RequestType::Put, "/1/0/23");
    write.add_option(CoapOption::ContentFormat, Vec::new());
    write.payload = if muted { b"1".to_vec() } else { b"0".to_vec() };
    let token = sim.send_to_client(&write);
    sim.run_for(SECOND);
    let reply = sim.server.reply_to(&token).expect("the Write was answered");
    assert_eq!(
        reply.packet.header.code,
        MessageClass::Response(ResponseType::Changed)
    );
}

#[test]
fn mute_send_stops_and_restarts_sending() {
    let mut sim = registered(config(send_config(30, 0, ContentFormat::SenmlCbor)), 5);
    let count = |sim: &Sim| sim.server.requests_named(RequestType::Post, "/dp").len();
    sim.run_for(Duration::from_secs(100));
    assert_eq!(count(&sim), 3, "every 30 s while Mute Send is false");

    write_mute(&mut sim, true);
    let muted = count(&sim);
    sim.run_for(Duration::from_secs(300));
    assert_eq!(count(&sim), muted, "no Send while muted");

    write_mute(&mut sim, false);
    sim.run_for(Duration::from_secs(300));
    let resumed = count(&sim) - muted;
    assert!((9..=10).contains(&resumed), "{resumed}");
    // Muted Sends are not requests: nothing was left unsent or failed.
    assert!(
        sends(&sim.events)
            .iter()
            .all(|(_, o)| *o == RequestOutcome::Response(CHANGED))
    );
}

#[test]
fn a_sleeping_client_wakes_updates_sends_and_sleeps_again() {
    let mut sim = registered(
        ClientConfig {
            queue_mode: true,
            awake_window: 10 * SECOND,
            ..config(send_config(120, 0, ContentFormat::SenmlCbor))
        },
        7,
    );
    // The Update is at 80% of an hour: the first Sends come while no Update is due.
    sim.run_for(Duration::from_secs(1000));
    let posts: Vec<_> = sim
        .server
        .requests
        .iter()
        .filter(|r| r.method == RequestType::Post)
        .map(|r| (r.at, uri_path(&r.packet)))
        .collect();
    let dp: Vec<_> = posts.iter().filter(|(_, p)| p == "/dp").collect();
    assert_eq!(dp.len(), 8, "{posts:?}");
    for (at, _) in &dp {
        // Each Send right behind the Update of its wake-up (one round trip apart).
        let update = posts
            .iter()
            .rev()
            .find(|(u, p)| u < at && p.starts_with("/rd/"))
            .expect("an Update before the Send");
        assert!(at.saturating_since(update.0) <= Duration::from_millis(20));
    }
    // Woke, Update, Send, asleep again: once per Send, in that order.
    let story: Vec<&str> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Woke => Some("woke"),
            Event::Sent(RequestKind::Update) => Some("update"),
            Event::Sent(RequestKind::Send) => Some("send"),
            Event::State(ClientState::Sleeping) => Some("sleep"),
            _ => None,
        })
        .collect();
    let expected: Vec<&str> = std::iter::once("sleep")
        .chain(["woke", "update", "send", "sleep"].repeat(8))
        .collect();
    assert_eq!(story, expected);
    assert!(
        !sim.events
            .iter()
            .any(|(_, e)| *e == Event::Dropped(Dropped::Asleep))
    );
}

#[test]
fn the_embedded_server_counts_the_sends_and_their_values() {
    let clients = 20;
    let mut world = World::new(
        ServerConfig::default(),
        config(send_config(30, 5, ContentFormat::SenmlCbor)),
        clients,
    );
    // 5% of datagrams lost each way: retransmissions, a few timeouts, every request accounted.
    let mut rng = SmallRng::seed_from_u64(11);
    world.drop = Box::new(move |_: Hop, _: &[u8]| rng.random::<f64>() < 0.05);
    for i in 0..clients {
        world.start(i);
    }
    world.run_for(Duration::from_secs(600));
    for client in &mut world.clients {
        client.stop(world.now);
    }
    world.run_for(Duration::from_secs(300));

    let mut recorder = Recorder::new();
    let mut ok = 0;
    for i in 0..clients {
        for (_, event) in &world.events[i] {
            recorder.event(event);
            if let Event::Request(r) = event
                && r.kind == RequestKind::Send
                && r.outcome == RequestOutcome::Response(CHANGED)
            {
                ok += 1;
            }
        }
    }
    let snapshot = recorder.snapshot(Duration::from_secs(900));
    accounting::assert_accounted(&snapshot);
    let send = snapshot.request(RequestKind::Send);
    // 20 clients, 600 s, one every 25..35 s: about 400 Sends.
    assert!((300..=480).contains(&send.sent), "{}", send.sent);
    assert_eq!(send.ok, ok);
    let stats = *world.server.stats();
    // The server counts each Send it decoded once (retransmissions are answered from its
    // cache); an answer lost on every try leaves the client with a timeout, not an ok.
    assert!(stats.sends >= ok && stats.sends <= send.sent, "{stats:?}");
    assert_eq!(stats.send_values, 3 * stats.sends, "three values per Send");
    assert!(
        stats
            .to_string()
            .contains(&format!("sends {}", stats.sends))
    );
}

#[test]
fn the_server_refuses_sends_it_cannot_take() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let peer = world::client_addr(0);
    let post = |format: u16, payload: &[u8], mid: u16| {
        let mut packet = lwm2m_swarm::coap::message::request(
            RequestType::Post,
            &["dp"],
            &[],
            Some(format),
            payload.to_vec(),
            lwm2m_swarm::coap::Token::default(),
        );
        packet.header.message_id = mid;
        packet.to_bytes().expect("encodes")
    };
    let answer = |server: &mut Server| {
        let (_, bytes) = server.poll_transmit().expect("an answer");
        coap_lite::Packet::from_bytes(&bytes)
            .expect("decodes")
            .header
            .code
    };
    let json = br#"[{"bn":"/3303/0/","n":"5700","v":21.5}]"#;
    server.handle_datagram(Instant::ZERO, peer, &post(110, json, 1));
    assert_eq!(
        answer(&mut server),
        MessageClass::Response(ResponseType::NotFound),
        "no registration from this peer"
    );
    let mut register = lwm2m_swarm::coap::message::request(
        RequestType::Post,
        &["rd"],
        &["ep=dp-test", "lt=300", "lwm2m=1.1"],
        None,
        Vec::new(),
        lwm2m_swarm::coap::Token::default(),
    );
    register.header.message_id = 2;
    server.handle_datagram(Instant::ZERO, peer, &register.to_bytes().unwrap());
    assert_eq!(
        answer(&mut server),
        MessageClass::Response(ResponseType::Created)
    );
    server.handle_datagram(Instant::ZERO, peer, &post(0, b"21.5", 3));
    assert_eq!(
        answer(&mut server),
        MessageClass::Response(ResponseType::UnsupportedContentFormat)
    );
    server.handle_datagram(Instant::ZERO, peer, &post(110, b"[{", 4));
    assert_eq!(
        answer(&mut server),
        MessageClass::Response(ResponseType::BadRequest)
    );
    server.handle_datagram(Instant::ZERO, peer, &post(110, json, 5));
    assert_eq!(
        answer(&mut server),
        MessageClass::Response(ResponseType::Changed)
    );
    assert_eq!((server.stats().sends, server.stats().send_values), (1, 1));
    // A second block with no first: 4.08, nothing counted.
    let mut stray = coap_lite::Packet::from_bytes(&post(110, &[b' '; 16], 6)).unwrap();
    lwm2m_swarm::coap::block::set_block1(
        &mut stray,
        lwm2m_swarm::coap::block::BlockValue::new(1, true, 16).unwrap(),
    );
    server.handle_datagram(Instant::ZERO, peer, &stray.to_bytes().unwrap());
    assert_eq!(
        answer(&mut server),
        MessageClass::Response(ResponseType::RequestEntityIncomplete)
    );
    assert_eq!(server.stats().sends, 1);
}

/// The Sends of every client that ended 2.04.
fn sends_ok(world: &World) -> u64 {
    world
        .events
        .iter()
        .flatten()
        .filter(|(_, e)| {
            matches!(e, Event::Request(r) if r.kind == RequestKind::Send
                && r.outcome == RequestOutcome::Response(CHANGED))
        })
        .count() as u64
}

#[test]
fn a_send_larger_than_a_block_goes_in_block1_blocks_and_counts_once() {
    let paths: Vec<Path> = [1, 3, 4, 6, 3303, 3304].map(Path::object).to_vec();
    let values_per_send: usize = paths
        .iter()
        .map(|p| device(0).read(p, Instant::ZERO).expect("readable").len())
        .sum();
    let mut client = config(SendConfig {
        paths,
        ..send_config(30, 5, ContentFormat::SenmlJson)
    });
    client.coap.block_size = 256;
    for (loss, clients) in [(0.0, 1), (0.05, 10)] {
        let mut world = World::new(ServerConfig::default(), client.clone(), clients);
        // The Block1 numbers of the POSTs to /dp that reach the server, and their Size1.
        let blocks = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let seen = std::rc::Rc::clone(&blocks);
        let mut rng = SmallRng::seed_from_u64(12);
        world.drop = Box::new(move |hop: Hop, bytes: &[u8]| {
            let lost = rng.random::<f64>() < loss;
            if let (Hop::ToServer(_), false) = (hop, lost)
                && let Ok(packet) = coap_lite::Packet::from_bytes(bytes)
                && uri_path(&packet) == "/dp"
            {
                let option = uint_option(&packet, CoapOption::Block1).expect("block-wise");
                let size1 = uint_option(&packet, CoapOption::Size1);
                seen.borrow_mut().push((option >> 4, size1));
            }
            lost
        });
        for i in 0..clients {
            world.start(i);
        }
        world.run_for(Duration::from_secs(300));
        for client in &mut world.clients {
            client.stop(world.now);
        }
        world.run_for(Duration::from_secs(300));

        let mut recorder = Recorder::new();
        for (_, event) in world.events.iter().flatten() {
            recorder.event(event);
        }
        let snapshot = recorder.snapshot(Duration::from_secs(600));
        accounting::assert_accounted(&snapshot);
        let send = snapshot.request(RequestKind::Send);
        let stats = *world.server.stats();
        let blocks = blocks.borrow();
        let firsts: Vec<_> = blocks.iter().filter(|(num, _)| *num == 0).collect();
        let size = firsts.first().and_then(|(_, size1)| *size1).expect("Size1");
        assert!(size > 256 * 3, "{size} bytes: four blocks or more");
        assert!(firsts.iter().all(|(_, size1)| size1.is_some()));
        assert_eq!(send.ok, sends_ok(&world));
        assert_eq!(stats.send_values, values_per_send as u64 * stats.sends);
        if loss == 0.0 {
            // 300 s, one every 25..35 s: 8 to 12 Sends, each one request of all its blocks.
            assert!((8..=12).contains(&send.sent), "{}", send.sent);
            assert_eq!((send.ok, stats.sends), (send.sent, send.sent));
            assert_eq!(firsts.len() as u64, send.sent);
            // Each Send's blocks in order, as many as its Size1 takes.
            let mut expected = Vec::new();
            for (_, size1) in &firsts {
                expected.extend(0..size1.expect("Size1").div_ceil(256));
            }
            let nums: Vec<u32> = blocks.iter().map(|(num, _)| *num).collect();
            assert_eq!(nums, expected);
        } else {
            // Each Send the server decoded counted once, however many blocks and retransmissions.
            assert!(send.sent >= 60, "{}", send.sent);
            assert!(send.ok >= send.sent * 8 / 10, "{send:?}");
            assert!(
                stats.sends >= send.ok && stats.sends <= send.sent,
                "{stats:?}"
            );
        }
    }
}
