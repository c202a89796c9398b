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

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// The Python bootstrap server; killed when dropped.
struct AiocoapBootstrap {
    child: Child,
    stdin: Option<ChildStdin>,
    facts: Arc<Mutex<Vec<Value>>>,
}

impl AiocoapBootstrap {
    fn start(port: u16, server_uri: &str) -> AiocoapBootstrap {
        peers::ensure_installed();
        let script = peers::root().join("tests/peers/aiocoap_bootstrap.py");
        let mut child = Command::new(peers::peer_python())
            .arg(&script)
            .args([&port.to_string(), server_uri, &WRITTEN_LIFETIME.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let facts = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        {
            let facts = Arc::clone(&facts);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(fact) = serde_json::from_str::<Value>(&line) {
                        facts.lock().unwrap().push(fact);
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        let peer = AiocoapBootstrap {
            child,
            stdin,
            facts,
        };
        assert!(
            peer.wait_for(Duration::from_secs(20), |f| f
                .iter()
                .any(|e| e["ev"] == "listening")),
            "the aiocoap bootstrap server did not start"
        );
        peer
    }

    fn facts(&self) -> Vec<Value> {
        self.facts.lock().unwrap().clone()
    }

    fn wait_for(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.facts()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for AiocoapBootstrap {
    fn drop(&mut self) {
        // Closing stdin ends it; the kill is for when it does not.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn clients_bootstrap_from_an_aiocoap_bootstrap_server() {
    let server = Runner::start_loopback(ServerConfig::default(), 1).expect("server starts");
    let port = peers::free_udp_port();
    let peer = AiocoapBootstrap::start(port, &format!("coap://{}", server.local_addr()));

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
