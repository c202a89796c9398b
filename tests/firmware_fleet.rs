//! Firmware updates across a fleet against the embedded server, on the simulated clock: every
//! device pushed a package, 5% of each injected failure, Execute where downloaded; every device
//! ends updated or failed with its reason, the counts add up, and the updated ones are
//! registered again with the embedded server.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/world.rs"]
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use lwm2m_swarm::client::{
    Client, ClientConfig, ClientState, Event, FirmwareConfig, FirmwareFailures, FirmwareStep,
};
use lwm2m_swarm::coap::block::{self as blocks, BlockValue};
use lwm2m_swarm::model::Device;
use lwm2m_swarm::server::ServerConfig;
use world::{World, server_addr};

const DEVICES: usize = 400;
const IMAGE: usize = 8 * 1024;

fn meter(seed: u64) -> Device {
    let template = shipped::templates()
        .device("smart-meter")
        .expect("shipped template");
    Device::new(template, seed, 1_700_000_000)
}

/// A request from the server to a client, as the embedded server would frame it.
fn request(method: RequestType, path: &[&str], id: u32) -> Packet {
    let mut packet = Packet::new();
    packet.header.set_type(MessageType::Confirmable);
    packet.header.code = MessageClass::Request(method);
    packet.header.message_id = id as u16;
    packet.set_token(id.to_be_bytes().to_vec());
    for segment in path {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    packet
}

fn to_client(world: &mut World, i: usize, packet: &Packet) {
    let now = world.now;
    let bytes = packet.to_bytes().expect("request encodes");
    world.clients[i].handle_datagram(now, server_addr(), &bytes);
}

fn last_step(world: &World, i: usize) -> Option<FirmwareStep> {
    world
        .client_events(i, |e| match e {
            Event::Firmware(f) => Some(f.step),
            _ => None,
        })
        .last()
        .map(|(_, step)| *step)
}

/// Pushes the package block by block to every device, as a server with one transfer per device
/// would; the next free message id.
fn push_to_everyone(world: &mut World) -> u32 {
    let image: Vec<u8> = (0..IMAGE).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = image.chunks(1024).collect();
    let mut id = 1u32;
    for (num, chunk) in chunks.iter().enumerate() {
        let more = num + 1 < chunks.len();
        for i in 0..DEVICES {
            let mut block = request(RequestType::Put, &["5", "0", "0"], id);
            id += 1;
            blocks::set_block1(&mut block, BlockValue::new(num as u32, more, 1024).unwrap());
            if num == 0 {
                blocks::set_size1(&mut block, IMAGE as u32);
            }
            block.payload = chunk.to_vec();
            to_client(world, i, &block);
        }
        world.run_for(Duration::from_millis(100));
    }
    id
}

/// How each device ended (`updated` or its failure), counted; each started one download and
/// is registered.
fn outcomes(world: &World) -> BTreeMap<String, usize> {
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..DEVICES {
        let steps = world.client_events(i, |e| match e {
            Event::Firmware(f) => Some(f.step),
            _ => None,
        });
        let started = steps
            .iter()
            .filter(|(_, s)| matches!(s, FirmwareStep::Started(_)))
            .count();
        assert_eq!(started, 1, "device {i}: {steps:?}");
        let outcome = match steps.last().map(|(_, s)| *s) {
            Some(FirmwareStep::Updated) => "updated".to_string(),
            Some(FirmwareStep::Failed(failure)) => failure.name().to_string(),
            other => panic!("device {i} ended with {other:?}: {steps:?}"),
        };
        *outcomes.entry(outcome).or_default() += 1;
        assert_eq!(
            world.clients[i].state(),
            ClientState::Registered,
            "device {i}"
        );
    }
    outcomes
}

#[test]
fn a_fleet_pushed_and_updated_ends_updated_or_failed_with_its_reason() {
    let update_time = Duration::from_secs(20);
    let config = ClientConfig {
        lifetime: Duration::from_secs(3600),
        firmware: FirmwareConfig {
            update_time,
            failures: FirmwareFailures {
                integrity: 0.05,
                storage: 0.05,
                connection: 0.05,
                update: 0.05,
            },
            ..FirmwareConfig::default()
        },
        ..ClientConfig::default()
    };
    let config = Arc::new(config);
    let mut world = World::new(ServerConfig::default(), ClientConfig::default(), DEVICES);
    for i in 0..DEVICES {
        let name = format!("sim-{i:04}");
        world.clients[i] = Client::new(Arc::clone(&config), &name, meter(i as u64), 100 + i as u64);
        world.start(i);
    }
    world.run_for(Duration::from_secs(5));
    assert_eq!(world.server.registration_count(), DEVICES);

    let first_free_id = push_to_everyone(&mut world);
    let downloaded: Vec<usize> = (0..DEVICES)
        .filter(|i| matches!(last_step(&world, *i), Some(FirmwareStep::Downloaded { .. })))
        .collect();
    for (id, &i) in (first_free_id..).zip(&downloaded) {
        let execute = request(RequestType::Post, &["5", "0", "2"], id);
        to_client(&mut world, i, &execute);
    }
    world.run_for(update_time + Duration::from_secs(30));

    let outcomes = outcomes(&world);
    assert_eq!(outcomes.values().sum::<usize>(), DEVICES, "{outcomes:?}");
    for reason in [
        "integrity",
        "out-of-storage",
        "connection-lost",
        "update-failed",
    ] {
        // 5% of 400 is 20; the seed decides, within reason.
        let n = outcomes.get(reason).copied().unwrap_or(0);
        assert!((5..=40).contains(&n), "{reason}: {n} in {outcomes:?}");
    }
    assert!(outcomes["updated"] >= DEVICES * 3 / 4, "{outcomes:?}");

    // Every device that went through an update registered again with the embedded server.
    let executed = downloaded.len();
    let rebooted = (0..DEVICES)
        .filter(|i| {
            world
                .client_events(*i, |e| match e {
                    Event::State(ClientState::Rebooting) => Some(()),
                    _ => None,
                })
                .len()
                == 1
        })
        .count();
    assert_eq!(rebooted, executed);
    assert_eq!(world.server.registration_count(), DEVICES);

    let snapshot = world.snapshot(Duration::from_secs(60));
    accounting::assert_accounted(&snapshot);
    let f = &snapshot.firmware;
    assert_eq!(f.started, DEVICES as u64);
    assert_eq!(f.downloaded, executed as u64);
    assert_eq!(f.updated as usize, outcomes["updated"]);
    assert_eq!(f.updated + f.failed_total(), DEVICES as u64);
    assert_eq!(f.update_time.len(), f.updated);
    assert!(f.update_time.min() >= update_time.as_micros() as u64);
}
