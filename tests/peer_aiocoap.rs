//! Bootstrap against a second CoAP stack: `tests/peers/aiocoap_bootstrap.py`, a bootstrap
//! server written on the `PyPI` library `aiocoap` (npm's `lwm2m-node-lib` has none). It writes
//! the Security instance in `SenML` JSON and the Server instance in TLV it encodes itself; the
//! engine's clients must take both, finish, and register with the embedded LWM2M server with
//! the lifetime it wrote. Client ports 25420-25439.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use std::time::{Duration, Instant};

use lwm2m_swarm::client::RequestKind;
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::server::{Runner, ServerConfig};
use lwm2m_swarm::transport::PortRange;
use serde_json::Value;

const CLIENTS: u64 = 20;
/// Written by the bootstrap server: Updates then come every ~10 s instead of the fleet's 4 min.
const WRITTEN_LIFETIME: u64 = 20;

#[test]
fn clients_bootstrap_from_an_aiocoap_bootstrap_server() {
    let server = Runner::start_loopback(ServerConfig::default(), 1).expect("server starts");
    let port = peers::free_udp_port();
    let args = [
        port.to_string(),
        format!("coap://{}", server.local_addr()),
        WRITTEN_LIFETIME.to_string(),
    ];
    let peer = peers::AiocoapPeer::start("aiocoap_bootstrap.py", &args);

    let fleet = Fleet::from_toml(
        &format!(
            "[client]\nlifetime = \"5m\"\nendpoint_prefix = \"aio-\"\n[bootstrap]\n\
             [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
             [load]\nclients = {CLIENTS}\nrate = 20\nhold = \"14s\"\nstop_timeout = \"5s\"\n"
        ),
        "aiocoap.toml",
    )
    .unwrap();
    let templates = fleet.check(shipped::templates()).unwrap();
    let mut config = EngineConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    config.ports = Some(PortRange::new(25420, 25439).unwrap());
    let plan = fleet.plan();
    let limit = plan.total_duration() + Duration::from_secs(10);
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    let started = Instant::now();
    while !engine.is_finished() {
        assert!(started.elapsed() < limit, "the run did not end in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = engine.join().unwrap();
    let stats = server.stop().unwrap();

    // Our side: every bootstrap finished, every client registered and updated at the pace of
    // the written lifetime (20 s: an Update ~10 s after registering), then left.
    assert_eq!(s.bootstrap.finished, CLIENTS, "{s}");
    assert_eq!(s.request(RequestKind::Bootstrap).ok, CLIENTS, "{s}");
    assert_eq!(stats.registers, CLIENTS, "{stats}");
    assert!(stats.updates >= CLIENTS, "{stats}");
    assert_eq!(stats.deregisters, CLIENTS, "{stats}");
    // Theirs: every sequence answered 2.xx at each step; the Discover as LWM2M 1.1 says.
    let facts = peer.facts();
    let done: Vec<&Value> = facts.iter().filter(|f| f["ev"] == "done").collect();
    assert_eq!(
        done.len() as u64,
        CLIENTS,
        "{:?}",
        facts
            .iter()
            .filter(|f| f["ev"] != "done")
            .collect::<Vec<_>>()
    );
    for fact in done {
        let discover = fact["discover"].as_str().unwrap();
        assert!(discover.starts_with("</>;lwm2m=1.1,"), "{discover}");
        assert!(
            discover.contains("</0/0>") && !discover.contains("ssid"),
            "{discover}"
        );
        assert_eq!(fact["codes"]["write security"], "2.04 Changed", "{fact}");
        assert_eq!(fact["codes"]["write server"], "2.04 Changed", "{fact}");
        assert_eq!(fact["codes"]["finish"], "2.04 Changed", "{fact}");
    }
}
