//! Figures for docs/performance.md, not a check: DTLS PSK through OpenSSL (`openssl` feature)
//! against dimpl, on libcoap's DTLS resource directory: handshakes per second, and bytes per open
//! session (OpenSSL allocates with malloc, past any counting allocator, so glibc's in-use bytes,
//! `mallinfo2`, for every path). PSK and certificate figures through dimpl alone are in
//! `benches/dtls.rs`. Run optimised:
//!
//! `DTLS_RATE=1000 cargo test --release --features openssl --test openssl_figures -- --ignored --nocapture`
//!
//! `DTLS_CLIENTS` (default 2000) sets the fleet size, `DTLS_RATE` (default 20000) the starts per
//! second.

#![cfg(feature = "openssl")]

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use lwm2m_swarm::client::{ClientState, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::security::{CredentialSource, SharedKey};
use lwm2m_swarm::transport::PortRange;

/// Bytes malloc has handed out and not taken back, in every arena (ours go through `System`,
/// which is malloc, so this counts Rust and C allocations alike).
#[allow(unsafe_code)]
fn malloc_in_use() -> isize {
    // SAFETY: mallinfo2 takes nothing and returns a plain struct.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as isize
}

const KEY: &str = "figures-psk";

/// How the clients talk to the directory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Psk,
    /// PSK through OpenSSL with this suite.
    Openssl(lwm2m_swarm::security::PskCipher),
}

/// The directory for `mode` (certificates: one from a CA made here, which also issues the
/// clients'), and the clients' credentials.
fn peer(mode: Mode) -> (peers::LibcoapRd, Option<Arc<dyn CredentialSource>>) {
    let shared = SharedKey {
        key: KEY.as_bytes().to_vec(),
    };
    match mode {
        Mode::Plain => (peers::LibcoapRd::start(KEY), None),
        Mode::Psk => (peers::LibcoapRd::start(KEY), Some(Arc::new(shared))),
        Mode::Openssl(cipher) => {
            let source = lwm2m_swarm::security::ThroughOpenssl {
                source: shared,
                cipher,
            };
            (peers::LibcoapRd::start(KEY), Some(Arc::new(source)))
        }
    }
}

/// One fleet run's figures once all registered.
struct Run {
    /// Handshakes per second over the ramp.
    rate: f64,
    /// Bytes malloc holds (ours and OpenSSL's).
    malloc: isize,
}

fn measure(clients: u64, mode: Mode, first_port: u16) -> Run {
    let (peer, credentials) = peer(mode);
    let secure = mode != Mode::Plain;
    let rate: u64 = std::env::var("DTLS_RATE").map_or(20_000, |n| n.parse().expect("a number"));
    let toml = format!(
        "[client]\nlifetime = \"600s\"\nseed = 5\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = {rate}\nhold = \"30s\"\nstop_timeout = \"1s\"\n"
    );
    let fleet = Fleet::from_toml(&toml, "figures.toml").expect("fleet");
    let templates = fleet.check(shipped::templates()).expect("check");
    let server_port = if secure {
        peer.dtls.port()
    } else {
        peer.dtls.port() - 1
    };
    let mut config = EngineConfig::new(([127, 0, 0, 1], server_port).into());
    config.ports = Some(PortRange::new(first_port, first_port + 49).unwrap());
    config.credentials = credentials;
    let started = Instant::now();
    let engine = Engine::start(fleet.plan(), templates, &config).expect("engine");
    let mut run = Run {
        rate: 0.0,
        malloc: 0,
    };
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        let s = engine.snapshot();
        if s.state(ClientState::Registered) == clients {
            let took = started.elapsed().as_secs_f64();
            run.rate = s.handshakes.ok as f64 / took;
            // Let the last answers settle, then count what malloc holds.
            std::thread::sleep(Duration::from_millis(500));
            run.malloc = malloc_in_use();
            let s = engine.snapshot();
            println!(
                "{} clients, {}: all registered after {took:.2} s; registers {}; {}",
                clients,
                match mode {
                    Mode::Plain => "plain",
                    Mode::Psk => "DTLS PSK",
                    Mode::Openssl(_) => "DTLS PSK on OpenSSL",
                },
                s.request(RequestKind::Register).ok,
                s.handshakes
            );
            break;
        }
    }
    if run.malloc == 0 {
        let s = engine.snapshot();
        println!(
            "{clients} clients: {} registered after 60 s; {}",
            s.state(ClientState::Registered),
            s.handshakes
        );
    }
    engine.stop();
    let _ = engine.join();
    drop(peer);
    run
}

#[test]
#[ignore = "a figure, not a check: run optimised with --features openssl --ignored --nocapture"]
fn psk_gcm_on_openssl_against_dimpl_ccm8() {
    use lwm2m_swarm::security::PskCipher;
    let clients = std::env::var("DTLS_CLIENTS").map_or(2000, |n| n.parse().expect("a number"));
    let plain = measure(clients, Mode::Plain, 27_300);
    let runs = [
        ("dimpl CCM-8", measure(clients, Mode::Psk, 27_350)),
        (
            "OpenSSL GCM",
            measure(clients, Mode::Openssl(PskCipher::Aes128Gcm), 27_400),
        ),
        (
            "OpenSSL CCM-8",
            measure(clients, Mode::Openssl(PskCipher::Aes128Ccm8), 27_450),
        ),
    ];
    for (name, run) in runs {
        assert!(
            run.malloc > 0,
            "{name}: a run did not register every client"
        );
        let per_session = (run.malloc - plain.malloc) as f64 / clients as f64;
        println!(
            "{name}: {:.0} handshakes/s (ramp to all registered); malloc in use {:.1} MiB \
             plain, {:.1} MiB DTLS: {per_session:.0} B per open session",
            run.rate,
            plain.malloc as f64 / 1_048_576.0,
            run.malloc as f64 / 1_048_576.0
        );
    }
}
