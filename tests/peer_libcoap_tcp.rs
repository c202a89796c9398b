//! CoAP over TCP and TLS (RFC 8323, `LwM2M` binding T) against code nobody here wrote: libcoap's
//! resource directory (`coap-rd-openssl`, Debian's `libcoap3-bin`, OpenSSL 3 backend), which
//! listens on TCP and TLS beside UDP and DTLS. The engine's clients connect, exchange CSMs,
//! (over TLS: verify the directory's certificate, made for the test) and register (2.01); the
//! directory's own log says how many it answered. With a CA that did not sign the directory's
//! certificate, every setup fails, is counted, and the run still ends within its deadline. Ports 25600-25629.
//!
//! The directory's list of registrations (`/.well-known/core`) is not a count to compare: over
//! TCP it gives several registrations the same location (the ids it makes look derived from the
//! message ID, which is always 0 over TCP), so its list holds fewer entries than it answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/pki.rs"]
mod pki;
#[path = "support/shipped.rs"]
mod shipped;

use lwm2m_swarm::client::RequestKind;
use lwm2m_swarm::engine::{Engine, EngineConfig, TransportKind};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::security::tls::TlsClientConfig;

use accounting::assert_accounted;

const CLIENTS: u64 = 200;

/// What a run saw: the engine's counts once every Register ended (the stop begins then) and at
/// the end, and the 2.01 answers the directory logged by then.
struct Run {
    at_hold: Snapshot,
    snapshot: Snapshot,
    created_by_directory: usize,
}

/// Runs `CLIENTS` clients against `rd` at `uri` (its `[tls]` is `tls`), reading the directory's
/// log once every Register ended.
fn run(rd: &peers::LibcoapRd, uri: &str, tls: &str) -> Run {
    let toml = format!(
        "[server]\nuri = \"{uri}\"\n{tls}[client]\nlifetime = \"300s\"\nseed = 5\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {CLIENTS}\nrate = 100\nhold = \"60s\"\nstop_timeout = \"3s\"\n"
    );
    let fleet = Fleet::from_toml(&toml, "tcp.toml").unwrap_or_else(|e| panic!("{e}"));
    let templates = fleet
        .check(shipped::templates())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = fleet.plan();
    // Generous: a loaded box may run late; the counts are what the tests check.
    let limit = plan.total_duration() + Duration::from_secs(30);
    let server = plan.server.clone().expect("a server");
    let mut config = EngineConfig::new(if uri.starts_with("coaps") {
        rd.dtls
    } else {
        rd.tcp()
    });
    config.transport = TransportKind::Tcp;
    config.tls = fleet.tls.as_ref().map(|settings| {
        Arc::new(TlsClientConfig::build(settings, &server.host).unwrap_or_else(|e| panic!("{e}")))
    });
    let started = Instant::now();
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    let mut at_hold = None;
    while !engine.is_finished() {
        assert!(
            started.elapsed() < limit,
            "the run did not end within {limit:?}"
        );
        let s = engine.snapshot();
        // The long hold is only a deadline: the stop begins once every Register ended.
        if at_hold.is_none() && peers::registers_ended(&s, CLIENTS) {
            at_hold = Some((logged_answers(rd, s.request(RequestKind::Register).ok), s));
            engine.stop();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let snapshot = engine.join().expect("engine ends cleanly");
    let (created_by_directory, at_hold) = at_hold.expect("read during the hold");
    Run {
        at_hold,
        snapshot,
        created_by_directory,
    }
}

/// The 2.01 answers the directory has logged, once it has logged the `registered` the engine
/// counts (it logs each answer as it sends it) or a generous deadline has passed.
fn logged_answers(rd: &peers::LibcoapRd, registered: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answers = rd.answers("2.01");
        if answers >= registered as usize || Instant::now() >= deadline {
            return answers;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The directory crashes on the first De-register (a double free in libcoap 4.3.1's example,
/// over UDP and TCP alike): the other clients lose their connection, try to register again and
/// are refused. So the counts are checked during the hold, and the stop for sending and
/// accounting only.
fn assert_registered_everyone(run: &Run) {
    let s = &run.at_hold;
    let c = &s.connections;
    assert_eq!((c.ok, c.failed, c.aborted), (CLIENTS, 0, 0), "{s}");
    assert!(c.lost.is_empty(), "{s}");
    let register = s.request(RequestKind::Register);
    assert_eq!((register.sent, register.ok), (CLIENTS, CLIENTS), "{s}");
    assert_eq!(register.codes, vec![(Some(0x41), CLIENTS)], "{s}");
    assert_eq!(
        register.retransmissions, 0,
        "nothing is retransmitted over TCP: {s}"
    );
    assert_eq!(
        run.created_by_directory, CLIENTS as usize,
        "2.01 answers the directory logged"
    );
    assert!(
        s.to_string()
            .contains(&format!("tcp connections: ok {CLIENTS}")),
        "{s}"
    );
    let s = &run.snapshot;
    assert!(s.request(RequestKind::Deregister).sent >= 1, "{s}");
    assert_accounted(s);
}

#[test]
fn libcoap_rd_registers_200_clients_over_tcp() {
    let log = std::env::temp_dir().join(format!("lwm2m-swarm-rd-tcp-{}.log", std::process::id()));
    let rd = peers::LibcoapRd::start_logged(25_600, None, &log);
    let uri = format!("coap+tcp://127.0.0.1:{}", rd.tcp().port());
    let run = run(&rd, &uri, "");
    drop(rd);
    let _ = std::fs::remove_file(&log);
    assert_registered_everyone(&run);
    println!("{}", run.snapshot);
}

#[test]
fn libcoap_rd_registers_200_clients_over_tls_with_a_verified_certificate() {
    let pki = pki::Pki::new("tls-ok");
    let log = pki.dir.join("rd.log");
    let rd = peers::LibcoapRd::start_logged(25_610, Some(&pki.server_cert_and_key), &log);
    let uri = format!("coaps+tcp://localhost:{}", rd.dtls.port());
    let tls = format!("[tls]\nca_file = \"{}\"\n", pki.ca().display());
    let run = run(&rd, &uri, &tls);
    assert_registered_everyone(&run);
    println!("{}", run.snapshot);
}

#[test]
fn a_certificate_from_another_ca_fails_every_setup_and_the_run_ends() {
    let pki = pki::Pki::new("tls-server");
    let other = pki::Pki::new("tls-other");
    let log = pki.dir.join("rd.log");
    let rd = peers::LibcoapRd::start_logged(25_620, Some(&pki.server_cert_and_key), &log);
    let uri = format!("coaps+tcp://localhost:{}", rd.dtls.port());
    let tls = format!("[tls]\nca_file = \"{}\"\n", other.ca().display());
    let run = run(&rd, &uri, &tls);
    let s = &run.snapshot;
    let c = &s.connections;
    assert_eq!((c.ok, c.failed, c.aborted), (0, CLIENTS, 0), "{s}");
    assert_eq!(
        c.failures,
        vec![("peer_certificate_unknown_issuer".to_string(), CLIENTS)],
        "{s}"
    );
    let register = s.request(RequestKind::Register);
    assert_eq!(register.sent, 0, "nothing went out in clear: {s}");
    assert_eq!(
        register.unsent, CLIENTS,
        "each failed setup ends its Register: {s}"
    );
    assert_eq!(run.created_by_directory, 0);
    // The directory's side: each client told it why (rustls sends the alert).
    assert_eq!(rd.logged("alert read:fatal:unknown CA"), CLIENTS as usize);
    assert_accounted(s);
    println!("{s}");
}
