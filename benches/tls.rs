//! TLS connection harness: how fast clients set up CoAP-over-TLS connections (TCP connect, TLS
//! handshake, CSM exchange) and register, and what an open TLS connection costs in memory, at a
//! few thousand connections. The peer is libcoap's resource directory (`coap-rd-openssl`,
//! Debian's `libcoap3-bin`), in its own process, with a certificate made for the run.
//!
//! `cargo bench --bench tls -- [--clients 4000] [--rate 1000]`
//!
//! The fleet runs over plain TCP at half and at full size, then over TLS, each against a fresh
//! directory (it crashes on the first De-register, so a run is measured once every client is
//! registered). Memory is this process's heap, counted by its allocator, from just before the
//! engine starts to once all are registered: the two TCP runs give the cost of one more client
//! (the engine's fixed costs cancel out), the TLS run minus the TCP run what TLS adds to an open
//! connection.

#[path = "../tests/support/accounting.rs"]
mod accounting;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../tests/support/peers.rs"]
mod peers;
#[path = "../tests/support/pki.rs"]
mod pki;
#[path = "../tests/support/shipped.rs"]
mod shipped;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lwm2m_swarm::client::{ClientState, RequestKind};
use lwm2m_swarm::engine::{Engine, EngineConfig, TransportKind};
use lwm2m_swarm::fleet::Fleet;
use lwm2m_swarm::security::tls::TlsClientConfig;

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map_or(default, |v| v.parse().expect("a number"))
}

/// One run until every client is registered: (seconds from the first start, heap growth from
/// just before the engine started).
/// The directory listens on `port` (CoAP over UDP and TCP) and `port + 1` (DTLS and TLS).
fn measure(clients: u64, rate: u64, port: u16, pki: Option<&pki::Pki>) -> Option<(f64, isize)> {
    let log =
        std::env::temp_dir().join(format!("lwm2m-swarm-tls-bench-{}.log", std::process::id()));
    let rd =
        peers::LibcoapRd::start_logged(port, pki.map(|p| p.server_cert_and_key.as_path()), &log);
    let (uri, tls) = match pki {
        Some(p) => (
            format!("coaps+tcp://localhost:{}", rd.dtls.port()),
            format!("[tls]\nca_file = \"{}\"\n", p.ca().display()),
        ),
        None => (
            format!("coap+tcp://127.0.0.1:{}", rd.tcp().port()),
            String::new(),
        ),
    };
    let toml = format!(
        "[server]\nuri = \"{uri}\"\n{tls}[client]\nlifetime = \"600s\"\nseed = 5\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = {rate}\nhold = \"60s\"\nstop_timeout = \"2s\"\n"
    );
    let fleet = Fleet::from_toml(&toml, "tls-bench.toml").expect("fleet");
    let templates = fleet.check(shipped::templates()).expect("check");
    let mut config = EngineConfig::new(if pki.is_some() { rd.dtls } else { rd.tcp() });
    config.transport = TransportKind::Tcp;
    config.tls = fleet.tls.as_ref().map(|settings| {
        Arc::new(TlsClientConfig::build(settings, "localhost").expect("TLS configuration"))
    });
    let heap_before = counting_alloc::heap_in_use();
    let started = Instant::now();
    let engine = Engine::start(fleet.plan(), templates, &config).expect("engine");
    let mut result = None;
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
        let s = engine.snapshot();
        if s.state(ClientState::Registered) == clients {
            let took = started.elapsed().as_secs_f64();
            // Let the last answers settle, then count the heap.
            std::thread::sleep(Duration::from_millis(500));
            result = Some((took, counting_alloc::heap_in_use() - heap_before));
            let s = engine.snapshot();
            let register = s.request(RequestKind::Register);
            let ms = |q: f64| register.latency.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{}: {clients} clients registered {took:.2} s after the first start \
                 (offered {rate}/s); register from the due time p50 {:.2} ms, p99 {:.2} ms\n  {}",
                if pki.is_some() { "TLS" } else { "TCP" },
                ms(0.5),
                ms(0.99),
                s.connections.connections_line()
            );
            break;
        }
    }
    if result.is_none() {
        println!(
            "not every client registered within 60 s:\n{}",
            engine.snapshot()
        );
    }
    engine.stop();
    let _ = engine.join();
    drop(rd);
    let _ = std::fs::remove_file(&log);
    result
}

fn main() {
    let clients = arg("--clients", 4000);
    let rate = arg("--rate", 1000);
    println!("tls bench: {clients} clients at {rate}/s against coap-rd-openssl (libcoap 4.3.1)");
    // Each run its own ports (25700-25711): the last run's connections may linger.
    let half = measure(clients / 2, rate, 25_700, None);
    let plain = measure(clients, rate, 25_704, None);
    let pki = pki::Pki::new("tls-bench");
    let tls = measure(clients, rate, 25_710, Some(&pki));
    let (Some((_, half_heap)), Some((_, plain_heap)), Some((took, tls_heap))) = (half, plain, tls)
    else {
        println!("no figures: a run did not register every client");
        return;
    };
    println!(
        "TLS connections set up and registered: {:.0}/s ({clients} in {took:.2} s)",
        clients as f64 / took
    );
    let added = clients - clients / 2;
    println!(
        "heap growth once all registered: {:.1} MiB for {} and {:.1} MiB for {clients} clients \
         over TCP, {:.1} MiB for {clients} over TLS: {:.0} B per registered TCP client, {:.0} B \
         more per open TLS connection",
        half_heap as f64 / 1_048_576.0,
        clients / 2,
        plain_heap as f64 / 1_048_576.0,
        tls_heap as f64 / 1_048_576.0,
        (plain_heap - half_heap) as f64 / added as f64,
        (tls_heap - plain_heap) as f64 / clients as f64
    );
}
