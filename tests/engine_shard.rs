//! `--shard K/N` and `--start-at` at the engine: shards of one fleet, started together against
//! one embedded server over loopback, run every client once.

use std::time::{Duration, Instant, SystemTime};

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;

use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::{Fleet, Slice};
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::server::{Runner, ServerConfig};
use lwm2m_swarm::transport::PortRange;

const CLIENTS: u64 = 21;

const FLEET: &str = "[client]\nlifetime = \"60s\"\nseed = 3\n\
    [[population]]\nname = \"a\"\ncount = 14\ntemplate = \"environment-sensor\"\n\
    [[population]]\nname = \"b\"\ncount = 7\ntemplate = \"environment-sensor\"\n\
    [load]\nrate = 40\nhold = \"1s\"\nstop_timeout = \"5s\"\n";

/// Runs shard `k` of 3 from `start_at` to its end (within a generous limit), from ports
/// `first_port..first_port + 100`.
fn run_shard(
    k: u32,
    first_port: u16,
    server: std::net::SocketAddr,
    start_at: SystemTime,
) -> (
    Snapshot,
    Vec<Option<std::net::SocketAddr>>,
    lwm2m_swarm::engine::Started,
) {
    let fleet = Fleet::from_toml(FLEET, "shards.toml").unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = fleet.plan().with_slice(Slice::new(k, 3).unwrap()).unwrap();
    let limit = plan.total_duration() + Duration::from_secs(20);
    let mut config = EngineConfig::new(server);
    config.ports = Some(PortRange::new(first_port, first_port + 99).unwrap());
    config.start_at = Some(start_at);
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    let endpoints = (0..CLIENTS).map(|i| engine.client_endpoint(i)).collect();
    let started = engine.started();
    let since = Instant::now();
    while !engine.is_finished() {
        assert!(
            since.elapsed() < limit,
            "shard {k} did not end in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (
        engine.join().expect("engine ends cleanly"),
        endpoints,
        started,
    )
}

fn port(k: u32) -> u16 {
    28_500 + 100 * k as u16
}

#[test]
fn three_shards_started_together_run_every_client_once() {
    let server = Runner::start_loopback(ServerConfig::default(), 1).expect("server starts");
    let addr = server.local_addr();
    let start_at = SystemTime::now() + Duration::from_millis(400);
    let results: Vec<_> = std::thread::scope(|scope| {
        let shards: Vec<_> = (0..3)
            // Disjoint ports, as shards on one host need.
            .map(|k| scope.spawn(move || run_shard(k, port(k), addr, start_at)))
            .collect();
        shards.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = server.stop().expect("server stops cleanly");

    for (k, (snapshot, endpoints, started)) in results.iter().enumerate() {
        let slice = Slice::new(k as u32, 3).unwrap();
        // Each shard ran its slice only: 7 clients, from its own ports.
        accounting::assert_accounted(snapshot);
        assert_eq!(snapshot.started, slice.len(CLIENTS), "shard {k}");
        let register = &snapshot.requests[0];
        assert_eq!(register.ok, slice.len(CLIENTS), "shard {k}: {snapshot}");
        for (i, endpoint) in endpoints.iter().enumerate() {
            assert_eq!(endpoint.is_some(), slice.contains(i as u64), "client {i}");
            if let Some(e) = endpoint {
                assert!(
                    (port(k as u32)..port(k as u32) + 100).contains(&e.port()),
                    "{e}"
                );
            }
        }
        // The ramps line up: none began before --start-at, none much after.
        assert!(started.at >= start_at, "shard {k}: {started:?}");
        let after = started.at.duration_since(start_at).unwrap();
        assert!(after < Duration::from_secs(5), "shard {k}: {after:?}");
        assert!(
            started.late < Duration::from_secs(5),
            "shard {k}: {started:?}"
        );
    }
    // The server saw the whole fleet once: every endpoint name registered, none twice.
    assert_eq!(stats.registers, CLIENTS, "{stats:?}");
    assert_eq!(stats.replaced, 0, "{stats:?}");
    assert_eq!(stats.deregisters, CLIENTS, "{stats:?}");
}

#[test]
fn a_shard_that_starts_after_start_at_begins_at_once_and_says_how_late() {
    let server = Runner::start_loopback(ServerConfig::default(), 2).expect("server starts");
    let start_at = SystemTime::now() - Duration::from_secs(3);
    let (snapshot, _, started) = run_shard(2, 28_800, server.local_addr(), start_at);
    server.stop().expect("server stops cleanly");
    assert!(started.late >= Duration::from_secs(3), "{started:?}");
    assert!(started.late < Duration::from_secs(30), "{started:?}");
    assert_eq!(snapshot.started, Slice::new(2, 3).unwrap().len(CLIENTS));
}
