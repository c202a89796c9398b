//! The fleet engine end to end over loopback UDP, against the embedded server running on its own
//! thread: registrations, updates, server load, queue mode, churn, stop, garbage.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use accounting::{assert_accounted, assert_consistent};
use lwm2m_swarm::client::{ClientState, OperationKind, RequestKind, state_index};
use lwm2m_swarm::engine::{Engine, EngineConfig, TransportKind};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::model::Path;
use lwm2m_swarm::security::dtls::{DtlsParams, ServerKeys};
use lwm2m_swarm::server::{
    DtlsServerConfig, ObserveLoad, ReadCompositeLoad, Runner, ServerConfig, ServerStats,
    WriteCompositeLoad, WriteLoad,
};
use lwm2m_swarm::transport::PortRange;

/// Runs `fleet_toml` against an embedded server with `server_config`; returns both sides'
/// counts. `during` is called about every 100 ms with the engine while it runs.
/// Each test gets its own client ports: tests run in parallel.
fn run(
    fleet_toml: &str,
    server_config: ServerConfig,
    transport: TransportKind,
    first_port: u16,
    mut during: impl FnMut(&Engine),
) -> (Snapshot, ServerStats) {
    let server = Runner::start_loopback(server_config, 1).expect("server starts");
    let fleet = Fleet::from_toml(fleet_toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let device_templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = fleet.plan();
    let limit = plan.total_duration() + Duration::from_secs(10);
    let mut config = EngineConfig::new(server.local_addr());
    config.transport = transport;
    config.ports = Some(PortRange::new(first_port, first_port + 99).unwrap());
    let engine = Engine::start(plan, device_templates, &config).expect("engine starts");
    let snapshot = drive(engine, limit, &mut during);
    let stats = server.stop().expect("server stops cleanly");
    (snapshot, stats)
}

/// Polls `engine` about every 100 ms until it ends (within `limit`), checking at every
/// snapshot, for every kind, that what ended never exceeds what was sent (the rest is in
/// flight), and calling `during`; returns the final counts.
fn drive(engine: Engine, limit: Duration, mut during: impl FnMut(&Engine)) -> Snapshot {
    let started = Instant::now();
    while !engine.is_finished() {
        assert!(
            started.elapsed() < limit,
            "the run did not end within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_consistent(&engine.snapshot());
        during(&engine);
    }
    engine.join().expect("engine ends cleanly")
}

fn fleet(clients: u64, rate: u64, hold: &str, client: &str, population: &str) -> String {
    format!(
        "[client]\nlifetime = \"60s\"\nseed = 3\n{client}\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n{population}\n\
         [load]\nclients = {clients}\nrate = {rate}\nhold = \"{hold}\"\nstop_timeout = \"10s\"\n"
    )
}

#[test]
fn a_fleet_registers_updates_answers_the_server_and_deregisters() {
    let clients = 300;
    let server_config = ServerConfig {
        read: Some((Path::resource(3, 0, 0), Duration::from_millis(700))),
        observe: Some(ObserveLoad {
            path: Path::resource(3303, 0, 5700),
            pmin: Some(1),
            pmax: Some(2),
        }),
        write: Some(WriteLoad {
            path: Path::resource(3, 0, 14),
            value: "+02:00".into(),
            every: Duration::from_secs(2),
        }),
        // Registration Update Trigger: each one makes the client send an Update.
        execute: Some((Path::resource(1, 0, 8), Duration::from_secs(2))),
        discover: Some((Path::instance(3, 0), Duration::from_secs(2))),
        ..ServerConfig::default()
    };
    // Updates come at 5% of the 60 s lifetime: about 3 s after registering.
    let text = fleet(
        clients,
        600,
        "4s",
        "update_fraction = 0.05\nupdate_jitter = 0.01",
        "",
    );
    let (s, server) = run(&text, server_config, TransportKind::Shared, 21000, |_| {});

    let register = s.request(RequestKind::Register);
    assert_eq!(register.ok, clients, "{s}");
    assert_eq!(register.timeout + register.error, 0, "{s}");
    assert!(s.request(RequestKind::Update).ok >= clients, "{s}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
    assert_accounted(&s);
    assert!(s.request(RequestKind::Notify).sent >= clients, "{s}");
    // What the clients answered, and what the server saw, agree.
    assert!(s.operation(OperationKind::Read).ok >= clients, "{s}");
    // Every server operation has the client's handling time, all well under a second.
    for kind in [
        OperationKind::Read,
        OperationKind::Observe,
        OperationKind::Discover,
    ] {
        let o = s.operation(kind);
        assert_eq!(o.handling.len(), o.total, "{kind:?}");
        assert!(
            o.handling.max() < 1_000_000,
            "{kind:?}: {}",
            o.handling.max()
        );
    }
    // A Read answered just before the client's De-register reaches the server after it: the
    // server counts those as aborted.
    let reads = s.operation(OperationKind::Read).ok;
    assert!(
        server.read.ok <= reads && reads <= server.read.ok + server.read.aborted,
        "{s}\n{server}"
    );
    assert_eq!(s.operation(OperationKind::Observe).ok, clients);
    assert_eq!(server.observe.ok, clients);
    for (kind, at_server) in [
        (OperationKind::Write, server.write),
        (OperationKind::Execute, server.execute),
        (OperationKind::Discover, server.discover),
    ] {
        let ours = s.operation(kind);
        assert!(at_server.ok >= clients, "{kind:?}: {server}");
        assert_eq!(ours.error, 0, "{kind:?}: {s}");
        assert!(
            at_server.ok <= ours.ok && ours.ok <= at_server.ok + at_server.aborted,
            "{kind:?}: ours {ours:?}, server {at_server:?}"
        );
    }
    // Updates come from the lifetime schedule and from every Execute of /1/0/8.
    assert!(
        s.request(RequestKind::Update).ok >= server.execute.ok,
        "{s}\n{server}"
    );
    assert!(server.notifications >= clients, "{server}");
    assert_eq!(server.registers, clients);
    assert_eq!(server.deregisters, clients);
    assert_eq!(server.registered, 0);
    assert_eq!(s.state(ClientState::Stopped), clients);
    assert_eq!(s.started, clients);
    assert_eq!(
        s.traffic.unmatched + s.traffic.truncated + s.traffic.send_errors,
        0
    );
    assert_eq!(
        s.traffic.datagrams_in, server.datagrams_sent,
        "{s}\n{server}"
    );
    assert_eq!(
        s.traffic.datagrams_out, server.datagrams_received,
        "{s}\n{server}"
    );
}

#[test]
fn ten_thousand_clients_register_get_observed_and_leave() {
    let clients = 10_000;
    let server_config = ServerConfig {
        observe: Some(ObserveLoad {
            path: Path::resource(3, 0, 13),
            pmin: Some(30),
            pmax: Some(60),
        }),
        ..ServerConfig::default()
    };
    // Bound by counts: the stop begins once every client is registered and observed, the long
    // hold is only the deadline (a loaded box may take several seconds to get there).
    let text = fleet(clients, 5_000, "60s", "", "");
    let (s, server) = run(
        &text,
        server_config,
        TransportKind::Shared,
        21100,
        |engine| {
            let s = engine.snapshot();
            if s.state(ClientState::Registered) == clients
                && s.operation(OperationKind::Observe).ok == clients
            {
                engine.stop();
            }
        },
    );
    assert_eq!(s.request(RequestKind::Register).ok, clients, "{s}");
    let registered = state_index(ClientState::Registered);
    assert_eq!(
        s.peak_states[registered], clients,
        "all registered at once: {s}"
    );
    assert_eq!(s.operation(OperationKind::Observe).ok, clients, "{s}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
    assert_eq!(server.registered, 0, "{server}");
    assert_accounted(&s);
}

#[test]
fn queue_mode_requests_wait_for_the_update() {
    let clients = 40;
    // Awake 1 s after each exchange, Update every ~3 s; the server reads every 500 ms and holds
    // what comes due while a client sleeps.
    let server_config = ServerConfig {
        read: Some((Path::resource(3, 0, 0), Duration::from_millis(500))),
        awake_window: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let text = fleet(
        clients,
        200,
        "7s",
        "awake_window = \"1s\"\nupdate_fraction = 0.05\nupdate_jitter = 0.0",
        "behaviour = \"sleepy\"",
    );
    let mut slept = 0;
    let (s, server) = run(
        &text,
        server_config,
        TransportKind::Shared,
        21200,
        |engine| {
            slept = slept.max(engine.snapshot().state(ClientState::Sleeping));
        },
    );
    assert!(slept > 0, "no client was ever seen asleep: {s}");
    assert!(server.queue.held > 0, "{server}");
    assert!(server.queue.delivered > 0, "{server}");
    // Held reads reach the clients after their Update, and are answered.
    assert!(
        s.operation(OperationKind::Read).ok >= server.queue.delivered,
        "{s}\n{server}"
    );
    assert!(s.woke > 0);
    // The held Reads arrive right after the Update that follows each wake-up.
    let delay = &s.wake_to_request;
    assert!(!delay.is_empty(), "{s}");
    assert!(delay.len() <= s.woke);
    assert!(
        delay.max() < 1_000_000,
        "a held request came {} us after waking",
        delay.max()
    );
    assert!(
        s.operation(OperationKind::Read).handling.len() >= server.read.ok,
        "{s}"
    );
    assert_eq!(s.request(RequestKind::Register).ok, clients);
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
}

#[test]
fn churning_clients_deregister_and_come_back() {
    let clients = 30;
    let text = fleet(
        clients,
        300,
        "5s",
        "reboot_time = \"500ms\"",
        "behaviour = \"churn\"\nchurn_every = \"1500ms\"\nchurn_jitter = \"300ms\"",
    );
    let (s, server) = run(
        &text,
        ServerConfig::default(),
        TransportKind::Shared,
        21300,
        |_| {},
    );
    assert!(
        s.started >= 2 * clients,
        "restarts: {}",
        s.started - clients
    );
    let register = s.request(RequestKind::Register);
    assert!(register.ok >= 2 * clients, "{s}");
    // Every churn de-registers, and so does the final stop.
    assert!(
        s.request(RequestKind::Deregister).ok >= register.ok - clients,
        "{s}"
    );
    assert_eq!(server.registered, 0, "{server}");
    assert_accounted(&s);
}

#[test]
fn per_client_sockets_work_too() {
    let clients = 50;
    let text = fleet(clients, 500, "1s", "", "");
    let (s, server) = run(
        &text,
        ServerConfig::default(),
        TransportKind::PerClient,
        21400,
        |_| {},
    );
    assert_eq!(s.request(RequestKind::Register).ok, clients, "{s}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
    assert_eq!(server.registers, clients);
}

#[test]
fn garbage_and_strays_are_counted_and_the_run_goes_on() {
    let clients = 20;
    let text = fleet(clients, 200, "2s", "", "");
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = false;
    let (s, _) = run(
        &text,
        ServerConfig::default(),
        TransportKind::Shared,
        21500,
        |engine| {
            let snapshot = engine.snapshot();
            if !sent && snapshot.state(ClientState::Registered) == clients {
                let client = engine.client_endpoint(0).unwrap();
                // Not CoAP at all, a CON with a bad option, and a ping; then a datagram for an
                // address in the plan's range that no client uses.
                junk.send_to(b"\xff\xff garbage", client).unwrap();
                junk.send_to(&[0x40, 0x01, 0x12, 0x34, 0xF0], client)
                    .unwrap();
                junk.send_to(&[0x40, 0x00, 0x12, 0x35], client).unwrap();
                let mut nobody = engine.client_endpoint(clients - 1).unwrap();
                nobody.set_ip("127.0.99.99".parse().unwrap());
                junk.send_to(b"hello", nobody).unwrap();
                sent = true;
            }
        },
    );
    assert!(sent, "clients never all registered: {s}");
    assert!(s.traffic.malformed >= 2, "{s}");
    assert!(s.traffic.unmatched >= 1, "{s}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
    // The ping and the bad CON were answered with RST (the stray address landed on the shard's
    // wildcard socket and was counted as unmatched, above).
    let mut reply = [0u8; 64];
    junk.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut rsts = 0;
    while let Ok((n, _)) = junk.recv_from(&mut reply) {
        if n == 4 && reply[0] >> 4 & 3 == 3 {
            rsts += 1;
        }
    }
    assert!(rsts >= 2, "RSTs to the bad CON and the ping: {rsts}");
}

/// The server goes away mid-run: the stop's De-registers go unanswered, and when the stop
/// timeout ends they are counted as aborted; nothing is left in flight and the run ends on time.
#[test]
fn a_stop_that_runs_out_of_time_accounts_for_everything() {
    let clients = 20;
    let server = Runner::start_loopback(ServerConfig::default(), 1).expect("server starts");
    let text = fleet(clients, 200, "1s", "", "")
        .replace("stop_timeout = \"10s\"", "stop_timeout = \"4s\"");
    let fleet = Fleet::from_toml(&text, "test.toml").unwrap();
    let device_templates = fleet.check(shipped::templates()).unwrap();
    let mut config = EngineConfig::new(server.local_addr());
    config.ports = Some(PortRange::new(21600, 21699).unwrap());
    let engine = Engine::start(fleet.plan(), device_templates, &config).unwrap();
    // Ramp 0.1 s + hold 1 s + stop timeout 4 s as planned; the De-registers' own retransmissions
    // would run for over 60 s (ACK timeout 2 s, 4 retransmissions), so ending by the deadline
    // means the stop timeout ended them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.snapshot().state(ClientState::Registered) < clients {
        assert!(Instant::now() < deadline, "{}", engine.snapshot());
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop().unwrap();
    while !engine.is_finished() {
        assert!(Instant::now() < deadline, "{}", engine.snapshot());
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = engine.join().unwrap();
    let deregister = s.request(RequestKind::Deregister);
    assert_eq!(deregister.sent, clients, "{s}");
    // Aborted by the stop timeout, none timed out by retransmissions running out.
    assert_eq!(deregister.aborted, clients, "{s}");
    assert!(deregister.retransmissions > 0, "{s}");
    assert_accounted(&s);
    assert_eq!(s.state(ClientState::Stopped), clients);
}

/// Pausing holds new starts; a faster start rate runs the rest of the ramp sooner.
#[test]
fn starts_can_be_paused_and_sped_up() {
    let clients = 100;
    // As planned: 20 starts/s, 5 s of ramp.
    let text = fleet(clients, 20, "0s", "", "");
    let mut phase = 0;
    let mut paused_at = None;
    let mut sped_up_at = None;
    let mut rest_took = None;
    let (s, _) = run(
        &text,
        ServerConfig::default(),
        TransportKind::Shared,
        21700,
        |engine| {
            let snapshot = engine.snapshot();
            match phase {
                0 if snapshot.started >= 10 => {
                    engine.pause_starts(true);
                    paused_at = Some((Instant::now(), snapshot.started));
                    phase = 1;
                }
                1 if paused_at.is_some_and(|(at, _)| at.elapsed() > Duration::from_secs(1)) => {
                    // Nothing started while paused (give a publication period for stragglers).
                    let (_, before) = paused_at.unwrap();
                    assert!(
                        snapshot.started <= before + 5,
                        "{} > {before}",
                        snapshot.started
                    );
                    engine.set_start_rate(20.0);
                    engine.pause_starts(false);
                    assert!((engine.start_rate() - 20.0).abs() < f64::EPSILON);
                    sped_up_at = Some((Instant::now(), snapshot.started));
                    phase = 2;
                }
                2 if snapshot.started == clients => {
                    rest_took = sped_up_at.map(|(at, _)| at.elapsed());
                    phase = 3;
                }
                _ => {}
            }
        },
    );
    assert_eq!(phase, 3, "never saw every client started: {s}");
    // The rest of the ramp: about 90 starts, 4.5 s at the planned 20/s, a quarter of a second at
    // 400/s. Under half the planned time shows the speed-up and leaves a loaded box ample slack.
    let (_, started_before) = sped_up_at.unwrap();
    let planned = Duration::from_secs_f64((clients - started_before) as f64 / 20.0);
    let rest_took = rest_took.unwrap();
    assert!(
        rest_took < planned / 2,
        "{rest_took:?}, planned {planned:?}"
    );
    assert_eq!(s.request(RequestKind::Register).ok, clients, "{s}");
}

/// Quick handshakes, so a wrong key fails within the test's time on both sides.
fn quick_dtls() -> DtlsParams {
    DtlsParams {
        flight_start_rto: Duration::from_millis(200),
        flight_retries: 2,
        handshake_timeout: Duration::from_secs(2),
    }
}

/// Runs a `[security]` fleet against the embedded server over DTLS; the server holds the keys
/// from `keys` (the fleet's own when `None`).
fn run_dtls(
    fleet_toml: &str,
    server_config: ServerConfig,
    keys: Option<ServerKeys>,
    first_port: u16,
) -> (Snapshot, ServerStats) {
    let fleet = Fleet::from_toml(fleet_toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let credentials = fleet.credentials().unwrap().expect("a [security] table");
    let mut plan = fleet.plan();
    let lwm2m_swarm::fleet::Credentials::Psk(psk) = &credentials else {
        panic!("a PSK fleet: {credentials:?}");
    };
    let keys = keys.unwrap_or_else(|| ServerKeys::from_map(psk.server_keys(plan.clients)));
    let dtls = DtlsServerConfig {
        params: quick_dtls(),
        ..DtlsServerConfig::new(keys)
    };
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Runner::start_with(loopback, server_config, 1, Some(&dtls)).expect("binds");
    let device_templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    for group in &mut plan.groups {
        let mut config = (*group.config).clone();
        config.dtls = quick_dtls();
        group.config = std::sync::Arc::new(config);
    }
    let limit = plan.total_duration() + Duration::from_secs(20);
    let mut config = EngineConfig::new(server.local_addr());
    config.ports = Some(PortRange::new(first_port, first_port + 99).unwrap());
    config.credentials = Some(std::sync::Arc::new(credentials));
    let engine = Engine::start(plan, device_templates, &config).expect("engine starts");
    let snapshot = drive(engine, limit, |_| {});
    let stats = server.stop().expect("server stops cleanly");
    (snapshot, stats)
}

fn dtls_fleet(clients: u64, hold: &str) -> String {
    format!(
        "[client]\nlifetime = \"60s\"\nseed = 3\nendpoint_prefix = \"sec-\"\n\
         [security]\nmode = \"psk\"\n\
         derive = {{ master = \"000102030405060708090a0b0c0d0e0f\" }}\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 100\nhold = \"{hold}\"\nstop_timeout = \"10s\"\n"
    )
}

#[test]
fn dtls_clients_register_answer_reads_and_deregister_over_the_embedded_dtls_server() {
    let clients = 50;
    let server_config = ServerConfig {
        read: Some((Path::resource(3, 0, 0), Duration::from_millis(500))),
        ..ServerConfig::default()
    };
    let (s, server) = run_dtls(&dtls_fleet(clients, "3s"), server_config, None, 24300);
    // Both sides agree: every client handshook once, registered, was read, and left.
    assert_eq!(s.handshakes.ok, clients, "{s}");
    assert_eq!(s.handshakes.failed, 0, "{s}");
    // Each began once and none is left in progress.
    assert_eq!(s.handshakes.started, clients, "{s}");
    assert_eq!(server.dtls.handshakes_ok, clients, "{server:?}");
    assert_eq!(server.dtls.handshakes_failed, 0, "{server:?}");
    assert_eq!(s.request(RequestKind::Register).ok, clients, "{s}");
    assert_eq!(server.registers, clients, "{server:?}");
    assert_eq!(s.request(RequestKind::Deregister).ok, clients, "{s}");
    assert_eq!(server.deregisters, clients, "{server:?}");
    assert_eq!(server.registered, 0, "{server:?}");
    // A Read every 500 ms for ~3 s per client, all answered over DTLS.
    assert!(server.read.ok >= 3 * clients, "{server:?}");
    assert_eq!(server.read.timeout, 0, "{server:?}");
    // Both sides agree, but for a Read the De-register overtook: answered, yet aborted here.
    let answered = s.operation(OperationKind::Read).ok;
    assert!(
        (server.read.ok..=server.read.ok + server.read.aborted).contains(&answered),
        "{answered} {server:?}"
    );
    // Every client said goodbye: the server holds no session.
    assert_eq!(server.dtls.closed, clients, "{server:?}");
    assert_eq!(server.dtls.sessions, 0, "{server:?}");
    assert_eq!(server.dtls.no_session + server.dtls.unsent, 0, "{server:?}");
}

#[test]
fn a_wrong_key_is_a_failed_handshake_on_both_sides() {
    let clients = 5;
    let wrong = ServerKeys::shared(b"not-the-fleet-key".to_vec());
    let (s, server) = run_dtls(
        &dtls_fleet(clients, "3s"),
        ServerConfig::default(),
        Some(wrong),
        24400,
    );
    assert_eq!(s.handshakes.ok, 0, "{s}");
    assert!(s.handshakes.failed >= clients, "{s}");
    assert_eq!(server.dtls.handshakes_ok, 0, "{server:?}");
    assert!(server.dtls.handshakes_failed >= clients, "{server:?}");
    assert_eq!(server.registers, 0, "{server:?}");
    assert_eq!(s.request(RequestKind::Register).ok, 0, "{s}");
}

/// The embedded server's LWM2M 1.1 composite load: Read-, Write- and Observe-Composite go to
/// the 1.1 clients only (the 1.0 ones get none, so none answers 4.05), every request is
/// accounted for on both sides, and what the clients answered is what the server counted.
#[test]
fn composite_load_reaches_the_1_1_clients_only() {
    let (modern, legacy) = (120, 40);
    let server_config = ServerConfig {
        read_composite: Some(ReadCompositeLoad {
            // /3/0/999 does not exist: left out of the answers, which stay 2.05.
            paths: vec![
                Path::resource(3, 0, 0),
                Path::resource(3303, 0, 5700),
                Path::resource(3, 0, 999),
            ],
            every: Duration::from_millis(700),
        }),
        write_composite: Some(WriteCompositeLoad {
            values: vec![
                (Path::resource(3, 0, 14), "+02:00".into()),
                (Path::resource(3303, 0, 5750), "indoor".into()),
            ],
            every: Duration::from_secs(1),
        }),
        observe_composite: Some(vec![
            Path::resource(3303, 0, 5700),
            Path::resource(3303, 1, 5700),
        ]),
        ..ServerConfig::default()
    };
    let text = format!(
        "[client]\nlifetime = \"60s\"\nseed = 5\n\
         [[population]]\nname = \"modern\"\nshare = 0.75\ntemplate = \"environment-sensor\"\n\
         [[population]]\nname = \"legacy\"\nshare = 0.25\ntemplate = \"environment-sensor\"\n\
         client = {{ lwm2m = \"1.0\" }}\n\
         [load]\nclients = {}\nrate = 400\nhold = \"4s\"\nstop_timeout = \"10s\"\n",
        modern + legacy
    );
    let (s, server) = run(&text, server_config, TransportKind::Shared, 28600, |_| {});

    assert_accounted(&s);
    assert_eq!(s.request(RequestKind::Register).ok, modern + legacy, "{s}");
    assert_eq!(
        s.request(RequestKind::Deregister).ok,
        modern + legacy,
        "{s}"
    );
    for (kind, at_server) in [
        (OperationKind::ReadComposite, server.read_composite),
        (OperationKind::WriteComposite, server.write_composite),
        (OperationKind::ObserveComposite, server.observe_composite),
    ] {
        let ours = s.operation(kind);
        // Every request the server sent ended once; none failed.
        assert_eq!(
            at_server.sent,
            at_server.ok
                + at_server.client_error
                + at_server.server_error
                + at_server.timeout
                + at_server.reset
                + at_server.aborted,
            "{kind:?}: {server}"
        );
        assert_eq!(
            at_server.client_error + at_server.server_error + at_server.timeout + at_server.reset,
            0,
            "{kind:?}: {server}"
        );
        assert_eq!(ours.error, 0, "{kind:?}: {s}");
        assert!(at_server.ok >= modern, "{kind:?}: {server}");
        // An answer sent just before the client's De-register reaches the server after it.
        assert!(
            at_server.ok <= ours.ok && ours.ok <= at_server.ok + at_server.aborted,
            "{kind:?}: ours {ours:?}, server {at_server:?}"
        );
        assert_eq!(ours.handling.len(), ours.total, "{kind:?}");
    }
    assert_eq!(
        s.operation(OperationKind::ObserveComposite).ok,
        modern,
        "{s}"
    );
    assert_eq!(server.observe_composite.sent, modern, "{server}");
    // The 1.0 clients were sent nothing they would refuse.
    assert_eq!(s.operation(OperationKind::Other).total, 0, "{s}");
    // The two temperatures move every 10 s: the composite observations notify.
    assert!(s.request(RequestKind::Notify).sent > 0, "{s}");
    // One arriving after its client's De-register is refused: it still arrived.
    assert_eq!(
        server.notifications + server.notifications_rejected,
        s.request(RequestKind::Notify).sent,
        "{s}\n{server}"
    );
}
