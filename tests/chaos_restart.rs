//! Chaos: `serve` killed (SIGKILL) while a fleet is registered, and started again on the same
//! port. The new instance knows none of the old locations, so the clients' next Updates get
//! 4.04 and every client registers again; the final De-registers all get 2.02, and every
//! request the clients sent is accounted for.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/serve.rs"]
mod serve;
#[path = "support/shipped.rs"]
mod shipped;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use accounting::{assert_accounted, assert_consistent};
use lwm2m_swarm::client::RequestKind;
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::transport::PortRange;
use serve::{Serve, registered_now};

const CLIENTS: u64 = 300;

/// `serve` on `port` of loopback, status lines every 200 ms.
fn serve(port: u16) -> Serve {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"));
    command.args([
        "serve",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--status-every",
        "200ms",
    ]);
    Serve::start(command)
}

/// Polls `serve`'s status lines until the registration count is `n`.
fn wait_registered(serve: &Serve, n: u64, engine: &Engine, deadline: Duration) {
    let started = Instant::now();
    while registered_now(&serve.status()) != Some(n) {
        assert!(
            started.elapsed() < deadline,
            "not {n} registered within {deadline:?}; the server's status lines:\n{}\nclients:\n{}",
            serve.status(),
            engine.snapshot()
        );
        assert_consistent(&engine.snapshot());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last status line's `name N`.
fn last_count(status: &str, name: &str) -> u64 {
    let line = status.lines().last().unwrap_or("");
    line.split(&format!("{name} "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{name} N` in {line:?}"))
}

#[test]
fn a_fleet_registers_again_with_a_restarted_server() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let first = serve(port);
    let fleet = format!(
        "[client]\nlifetime = \"10s\"\nseed = 3\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {CLIENTS}\nrate = 300\nhold = \"30s\"\nstop_timeout = \"10s\"\n"
    );
    let fleet = Fleet::from_toml(&fleet, "chaos.toml").unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = fleet.plan();
    let limit = plan.total_duration() + Duration::from_secs(30);
    let mut config = EngineConfig::new(SocketAddr::from(([127, 0, 0, 1], port)));
    config.ports = Some(PortRange::new(27300, 27399).unwrap());
    let engine = Engine::start(plan, templates, &config).expect("engine starts");

    wait_registered(&first, CLIENTS, &engine, Duration::from_secs(20));
    let before = first.stop();
    let second = serve(port);
    let restarted = Instant::now();
    // Every client's next Update (within 8 s of its last) finds no registration: it registers
    // again, on the new instance, under a location the old one never handed out.
    wait_registered(&second, CLIENTS, &engine, Duration::from_secs(20));
    let back_after = restarted.elapsed();

    let started = Instant::now();
    while !engine.is_finished() {
        assert!(
            started.elapsed() < limit,
            "the run did not end in {limit:?}"
        );
        assert_consistent(&engine.snapshot());
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = engine.join().expect("engine ends cleanly");
    second.wait_for("the De-registers", Duration::from_secs(10), |status| {
        registered_now(status) == Some(0)
    });
    let after = second.stop();

    assert_accounted(&s);
    let deregister = s.request(RequestKind::Deregister);
    assert_eq!(deregister.sent, CLIENTS, "{s}");
    assert_eq!(
        deregister.ok, CLIENTS,
        "every De-register answered 2.02:\n{s}"
    );
    let register = s.request(RequestKind::Register);
    assert!(register.ok >= 2 * CLIENTS, "registered twice each:\n{s}");
    assert!(
        s.request(RequestKind::Update).error >= CLIENTS,
        "each client's first Update to the new instance got 4.04:\n{s}"
    );
    assert_eq!(last_count(&after, "deregisters"), CLIENTS, "{after}");
    assert!(last_count(&after, "registers") >= CLIENTS, "{after}");
    assert_eq!(last_count(&after, "registered"), 0, "{after}");
    assert!(
        before.contains(&format!("registered {CLIENTS}")),
        "{before}"
    );
    eprintln!("all {CLIENTS} registered again {back_after:?} after the restart");
}
