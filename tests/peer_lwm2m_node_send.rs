//! Send (`POST /dp`) against npm `lwm2m-node-lib` 1.4.0 (`tests/peers/lwm2m-node-server.js`):
//! the library routes only `/rd` and leaves `/dp` unanswered: no response, not even an empty
//! ACK, so each client retransmits its Send (holding its later requests behind it, NSTART = 1)
//! until the stop gives up on it. The test pins that down, so a peer that starts taking `/dp` is
//! seen.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_swarm::client::RequestKind;
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::Fleet;
use peers::NodePeer;

const CLIENTS: u64 = 5;

fn fleet_toml(server: SocketAddr) -> String {
    format!(
        r#"
[server]
uri = "coap://{server}"

[client]
lwm2m = "1.1"
lifetime = "60s"
seed = 9
endpoint_prefix = "node-send-"
width = 2

[[population]]
name = "sensors"
count = {CLIENTS}
template = "environment-sensor"
send = {{ paths = ["/3303/0/5700", "/3/0/9"], every = "1s", format = "senml-json" }}

[load]
clients = {CLIENTS}
rate = 50
hold = "4s"
stop_timeout = "5s"
"#
    )
}

#[test]
fn lwm2m_node_lib_leaves_a_send_unanswered() {
    let mut peer = NodePeer::start();
    let fleet = Fleet::from_toml(&fleet_toml(peer.addr()), "peer_lwm2m_node_send.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    let devices = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = fleet.plan();
    let limit = plan.total_duration() + Duration::from_secs(20);
    let engine = Engine::start(plan, devices, &EngineConfig::new(peer.addr()))
        .unwrap_or_else(|e| panic!("engine: {e}"));
    let deadline = Instant::now() + limit;
    while !engine.is_finished() {
        assert!(peer.is_running(), "lwm2m-node-lib died:\n{}", peer.report());
        if Instant::now() > deadline {
            engine.stop();
            panic!("the engine did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let snapshot = engine.join().unwrap_or_else(|e| panic!("engine: {e}"));
    let events = peer.stop();
    let registered = events.iter().filter(|e| e["ev"] == "register").count();
    assert_eq!(registered as u64, CLIENTS, "{snapshot}");

    accounting::assert_accounted(&snapshot);
    let send = snapshot.request(RequestKind::Send);
    // One Send each went out; the next one queued behind it and never went.
    assert_eq!(send.sent, CLIENTS, "{snapshot}");
    assert_eq!((send.ok, send.error), (0, 0), "{snapshot}");
    // Not even acknowledged: each was retransmitted (the first retransmission comes within 3 s).
    assert!(send.retransmissions >= CLIENTS, "{snapshot}");
    // Still retransmitting when the stop gave up on it.
    assert_eq!(send.aborted + send.timeout, CLIENTS, "{snapshot}");
    assert!(send.unsent >= CLIENTS, "{snapshot}");
}
