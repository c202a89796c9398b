//! Bootstrapping fleets end to end over loopback UDP: the engine's clients, the embedded
//! bootstrap server and the embedded LWM2M server it sends them to, each on its own thread,
//! over plain CoAP and over DTLS. Client ports 25100-25299.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lwm2m_swarm::client::{ClientState, OperationKind, RequestKind, state_index};
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::model::Path;
use lwm2m_swarm::security::dtls::ServerKeys;
use lwm2m_swarm::server::{
    BootstrapServer, BootstrapServerConfig, DtlsServerConfig, ObserveLoad, Provisioning, Runner,
    ServerConfig, ServerStats,
};
use lwm2m_swarm::transport::PortRange;

fn fleet(clients: u64, security: &str) -> Fleet {
    let text = format!(
        "[client]\nlifetime = \"60s\"\nseed = 5\nendpoint_prefix = \"ebs-\"\n\
         [bootstrap]\nfinish_timeout = \"20s\"\ncontent_format = \"senml-json\"\n{security}\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 500\nhold = \"60s\"\nstop_timeout = \"10s\"\n"
    );
    Fleet::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// The fleet against a bootstrap server sending clients to an LWM2M server that observes
/// `/3/0/13`; returns the engine's counts, the bootstrap server's and the LWM2M server's.
fn run(fleet: &Fleet, first_port: u16) -> (Snapshot, ServerStats, ServerStats) {
    let templates = fleet.check(shipped::templates()).unwrap();
    let credentials = fleet.credentials().unwrap().map(Arc::new);
    let loopback = "127.0.0.1:0".parse().unwrap();
    let mut provisioning = Provisioning {
        psk_master: credentials.as_ref().map(|_| b"test master".to_vec()),
        lifetime: Duration::from_secs(45),
        ..Provisioning::new("")
    };
    let server_config = ServerConfig {
        observe: Some(ObserveLoad {
            path: Path::resource(3, 0, 13),
            pmin: None,
            pmax: None,
        }),
        ..ServerConfig::default()
    };
    let server_dtls = provisioning.server_keys().map(DtlsServerConfig::new);
    let server = Runner::start_with(loopback, server_config, 1, server_dtls.as_ref()).unwrap();
    let scheme = if credentials.is_some() {
        "coaps"
    } else {
        "coap"
    };
    provisioning.server_uri = format!("{scheme}://{}", server.local_addr());
    let fleet_keys = credentials.as_deref().map(|c| {
        let lwm2m_swarm::fleet::Credentials::Psk(psk) = c else {
            panic!("this test's fleets use PSK");
        };
        DtlsServerConfig::new(ServerKeys::from_map(psk.server_keys(fleet.clients)))
    });
    let bootstrap = Runner::serve(
        loopback,
        BootstrapServer::new(BootstrapServerConfig::new(provisioning), 2),
        fleet_keys.as_ref(),
    )
    .unwrap();

    let mut config = EngineConfig::new(bootstrap.local_addr());
    config.ports = Some(PortRange::new(first_port, first_port + 99).unwrap());
    config.credentials = credentials.map(|c| c as Arc<dyn lwm2m_swarm::security::CredentialSource>);
    let plan = fleet.plan();
    let clients = plan.clients;
    let limit = plan.total_duration() + Duration::from_secs(10);
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    let started = Instant::now();
    while !engine.is_finished() {
        assert!(started.elapsed() < limit, "the run did not end in time");
        std::thread::sleep(Duration::from_millis(100));
        let s = engine.snapshot();
        accounting::assert_consistent(&s);
        // Bound by counts: the stop begins once every client is registered and observed; the
        // long hold is only the deadline.
        if s.state(ClientState::Registered) == clients
            && s.operation(OperationKind::Observe).ok == clients
        {
            engine.stop();
        }
        // Every bootstrap attempt that ended is one of the requests that ended or never went.
        let b = s.request(RequestKind::Bootstrap);
        assert!(s.bootstrap.total() <= b.sent + b.unsent, "{s}");
    }
    let snapshot = engine.join().unwrap();
    (snapshot, bootstrap.stop().unwrap(), server.stop().unwrap())
}

fn assert_both_sides_agree(s: &Snapshot, bootstrap: &ServerStats, server: &ServerStats, n: u64) {
    // The clients: every Bootstrap-Request answered 2.04, every bootstrap finished, timed.
    let request = s.request(RequestKind::Bootstrap);
    assert_eq!(
        (request.sent, request.ok, request.in_flight()),
        (n, n, 0),
        "{s}"
    );
    assert_eq!(
        (
            s.bootstrap.finished,
            s.bootstrap.failed,
            s.bootstrap.aborted
        ),
        (n, 0, 0),
        "{s}"
    );
    assert_eq!(s.bootstrap.duration.len(), n);
    // Timed from request to finish: within the fleet's 20 s finish timeout, or it failed.
    assert!(s.bootstrap.duration.max() < 20_000_000, "{s}");
    // The bootstrap server saw the same.
    let b = &bootstrap.bootstrap;
    assert_eq!(
        (b.accepted, b.finished, b.failed, b.in_progress),
        (n, n, 0, 0),
        "{bootstrap}"
    );
    assert_eq!((b.write.ok, b.finish.ok), (2 * n, n), "{bootstrap}");
    // Then the LWM2M server: every client registered there, was observed and left.
    let register = s.request(RequestKind::Register);
    assert_eq!((register.ok, server.registers), (n, n), "{s}\n{server}");
    assert_eq!(server.observe.ok, n, "{server}");
    assert_eq!(s.request(RequestKind::Deregister).ok, n, "{s}");
    assert_eq!(server.deregisters, n, "{server}");
    assert_eq!(s.peak_states[state_index(ClientState::Registered)], n);
    assert_eq!(s.states[state_index(ClientState::Stopped)], n);
    accounting::assert_accounted(s);
}

#[test]
fn a_fleet_bootstraps_then_registers_with_the_server_it_was_given() {
    let n = 300;
    let (s, bootstrap, server) = run(&fleet(n, ""), 25100);
    assert_both_sides_agree(&s, &bootstrap, &server, n);
    assert_eq!(s.handshakes.total(), 0);
}

#[test]
fn over_dtls_the_fleet_keys_open_the_bootstrap_and_the_written_ones_the_server() {
    let n = 100;
    let security = "[security]\nmode = \"psk\"\nkey = \"00112233445566778899aabbccddeeff\"\n";
    let (s, bootstrap, server) = run(&fleet(n, security), 25200);
    assert_both_sides_agree(&s, &bootstrap, &server, n);
    // Two handshakes per client: one with each server, each with its own keys.
    assert_eq!((s.handshakes.ok, s.handshakes.failed), (2 * n, 0), "{s}");
    assert_eq!(bootstrap.dtls.handshakes_ok, n, "{bootstrap}");
    assert_eq!(server.dtls.handshakes_ok, n, "{server}");
    // Clients closed their bootstrap sessions when they moved on.
    assert_eq!(bootstrap.dtls.closed, n, "{bootstrap}");
}
