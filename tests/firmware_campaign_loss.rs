//! The embedded server's firmware campaign, push and pull, with real clients through a link that
//! loses 15% of the datagrams each way, on the simulated clock: every device ends updated or
//! failed with its reason, the server's counts add up, and both sides' requests are accounted.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/world.rs"]
mod world;

use std::sync::Arc;
use std::time::Duration;

use lwm2m_swarm::client::{Client, ClientConfig, Event, FirmwareConfig, FirmwareStep};
use lwm2m_swarm::model::Device;
use lwm2m_swarm::server::{CampaignConfig, CampaignMode, Firmware, ServerConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use world::World;

const DEVICES: usize = 200;
const IMAGE: usize = 8 * 1024;
const MAX_CONCURRENT: usize = 40;
const LOSS: f64 = 0.15;
const UPDATE_TIME: Duration = Duration::from_secs(20);

fn meter(seed: u64) -> Device {
    let template = shipped::templates()
        .device("smart-meter")
        .expect("shipped template");
    Device::new(template, seed, 1_700_000_000)
}

/// Runs a campaign of every device through the lossy link until no device is left in it.
fn lossy_campaign(mode: CampaignMode, seed: u64) -> World {
    let campaign = CampaignConfig {
        share: 1.0,
        start: Duration::from_secs(60),
        mode,
        max_concurrent: MAX_CONCURRENT,
        firmware: Firmware::generated("fw-2.0", IMAGE),
        version: None,
        timeout: Duration::from_secs(120),
        block_size: 512,
    };
    let server = ServerConfig {
        campaigns: vec![campaign],
        ..ServerConfig::default()
    };
    let config = Arc::new(ClientConfig {
        lifetime: Duration::from_secs(24 * 3600),
        firmware: FirmwareConfig {
            update_time: UPDATE_TIME,
            ..FirmwareConfig::default()
        },
        ..ClientConfig::default()
    });
    let mut world = World::new(server, ClientConfig::default(), DEVICES);
    let mut rng = StdRng::seed_from_u64(seed);
    world.drop = Box::new(move |_, _| rng.random_bool(LOSS));
    for i in 0..DEVICES {
        let name = format!("sim-{i:04}");
        world.clients[i] = Client::new(Arc::clone(&config), &name, meter(i as u64), 100 + i as u64);
        world.start(i);
    }
    world.run_for(Duration::from_secs(50));
    assert_eq!(
        world.server.registration_count(),
        DEVICES,
        "every device registered (with retransmissions) before the campaign"
    );
    // Bounded: two simulated hours at most.
    for _ in 0..720 {
        world.run_for(Duration::from_secs(10));
        let c = world.server.stats().campaign;
        if c.started == DEVICES as u64 && c.in_progress() == 0 {
            break;
        }
    }
    world
}

/// The server's counts add up, each device's end matches the client's own account, and every
/// request of both sides ended once.
fn check(world: &World) {
    let c = world.server.stats().campaign;
    println!(
        "{c}; server retransmissions {}",
        world.server.stats().retransmissions
    );
    let all = DEVICES as u64;
    assert_eq!((c.targeted, c.started, c.waiting), (all, all, 0), "{c}");
    assert_eq!(c.in_progress(), 0, "every device ended: {c}");
    assert_eq!(c.downloading, 0, "{c}");
    assert_eq!(c.updated + c.failed, all, "{c}");
    assert_eq!(
        c.failures.iter().sum::<u64>(),
        c.failed,
        "each failure has one reason: {c}"
    );
    assert!(c.downloaded >= c.updated, "{c}");
    assert_eq!(c.download_time.count, c.downloaded);
    assert_eq!(c.update_time.count, c.updated);
    // Loss costs retransmissions, not updates: the campaign reads State again when a
    // notification of Downloaded was lost, and waits for the Register when Execute's answer was.
    assert!(c.updated >= all * 9 / 10, "{c}");
    let r = c.requests;
    assert_eq!(
        r.sent,
        r.ok + r.client_error + r.server_error + r.timeout + r.reset + r.aborted,
        "the campaign's requests: {r:?}"
    );
    assert!(
        world.server.stats().retransmissions > 0,
        "the loss was felt: the server retransmitted"
    );

    let updated_clients = (0..DEVICES)
        .filter(|&i| {
            let steps = world.client_events(i, |e| match e {
                Event::Firmware(f) => Some(f.step),
                _ => None,
            });
            matches!(steps.last(), Some((_, FirmwareStep::Updated)))
        })
        .count() as u64;
    // The server counts a device updated only once it read Update Result 1 after the update.
    assert!(
        updated_clients >= c.updated,
        "{updated_clients} clients updated: {c}"
    );

    let snapshot = world.snapshot(Duration::from_secs(60));
    accounting::assert_accounted(&snapshot);
    assert_eq!(snapshot.firmware.updated, updated_clients);
}

#[test]
fn a_pull_campaign_through_15_percent_loss_each_way_ends_every_device() {
    let world = lossy_campaign(CampaignMode::Pull, 1);
    check(&world);
    let c = world.server.stats().campaign;
    assert!(
        c.blocks_served >= c.downloaded * (IMAGE as u64 / 1024),
        "{c:?}"
    );
}

#[test]
fn a_push_campaign_through_15_percent_loss_each_way_ends_every_device() {
    let world = lossy_campaign(CampaignMode::Push, 2);
    check(&world);
    let c = world.server.stats().campaign;
    assert_eq!(c.blocks_served, 0, "a push serves no Block2 GETs: {c:?}");
}
