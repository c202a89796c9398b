//! `--trace` inside the engine, under a simulated clock: the traced clients' datagrams, and only
//! theirs, reach the pcap in both directions, the delayed ones of an emulated link included;
//! read back with the pcap-file crate.

#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/simnet.rs"]
mod simnet;

use std::net::SocketAddr;
use std::time::Duration;

use lwm2m_swarm::clock::{Instant, SimulatedClock};
use lwm2m_swarm::engine::{EngineConfig, Simulation};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::server::{Server, ServerConfig};
use lwm2m_swarm::trace::{EndpointPattern, Schemas, TraceSink, TraceWriter};
use lwm2m_swarm::transport::PortRange;
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;

use simnet::{Loss, SimNetwork};

const FLEET: &str = "[client]\nlifetime = \"60s\"\nendpoint_prefix = \"t-\"\nwidth = 2\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [network]\ndelay = \"30ms\"\n\
    [load]\nclients = 20\nrate = 20\nhold = \"5s\"\nstop_timeout = \"5s\"\n";

#[test]
fn the_traced_clients_datagrams_go_both_ways_into_the_pcap() {
    let fleet = Fleet::from_toml(FLEET, "trace.toml").unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let server_addr: SocketAddr = "127.0.0.1:5683".parse().unwrap();
    let mut config = EngineConfig::new(server_addr);
    config.ports = Some(PortRange::new(20_000, 20_000).unwrap());
    let path = std::env::temp_dir().join(format!("lwm2m-swarm-sim-{}.pcap", std::process::id()));
    let (writer, tap) = TraceWriter::start(
        EndpointPattern::new("t-1?").unwrap(),
        &TraceSink::Pcap(path.clone()),
        Schemas(Vec::new()),
    )
    .unwrap();
    config.trace = Some(tap);
    let clock = SimulatedClock::starting_at(Instant::ZERO);
    let network = SimNetwork::new(
        clock.clone(),
        Server::new(ServerConfig::default(), 7),
        server_addr,
        Duration::from_millis(10),
        Loss { seed: 7, rate: 0.0 },
    );
    let mut sim = Simulation::new(fleet.plan(), templates, &config, clock, network).unwrap();
    config.trace = None;
    let finished = sim
        .run_until(Instant::ZERO + Duration::from_secs(60))
        .unwrap();
    assert!(finished, "the schedule ends within a simulated minute");
    let addresses: Vec<SocketAddr> = (10..20)
        .filter_map(|k| sim.layout().endpoint_of_client(k))
        .collect();
    drop(sim);
    let totals = writer.finish().unwrap();
    assert_eq!(totals.clients, 10, "t-10 .. t-19");
    assert_eq!(totals.dropped, 0);

    let mut reader = PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.header().datalink, DataLink::RAW);
    let (mut up, mut down, mut registers, mut created) = (0, 0, 0, 0);
    while let Some(packet) = reader.next_packet() {
        let data = packet.unwrap().data.into_owned();
        assert_eq!(data[0], 0x45, "IPv4 without options");
        assert_eq!(data[9], 17, "UDP");
        let ip =
            |at: usize| std::net::Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3]);
        let port = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
        let from = SocketAddr::from((ip(12), port(20)));
        let to = SocketAddr::from((ip(16), port(22)));
        let coap = &data[28..];
        if to == server_addr {
            assert!(addresses.contains(&from), "only traced clients: {from}");
            up += 1;
            // CON POST with Uri-Path "rd" first: a Register or an Update.
            if coap[1] == 0x02 && coap.windows(3).any(|w| w == b"\xb2rd") {
                registers += 1;
            }
        } else {
            assert_eq!(from, server_addr);
            assert!(addresses.contains(&to), "only traced clients: {to}");
            down += 1;
            if coap[1] == 0x41 {
                created += 1;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    assert_eq!(up + down, totals.written);
    assert!(
        registers >= 10 && created == 10,
        "registers {registers}, 2.01 Created {created}"
    );
    assert!(
        down >= 20,
        "the 2.01s and the 2.02s of the De-registers at least: {down}"
    );
    assert!(up >= 20, "the Registers and De-registers at least: {up}");
}
