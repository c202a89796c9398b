//! CoAP exchanges per second through the engine, against the bare loopback ceiling measured in
//! the same run.
//!
//! `cargo bench --bench throughput -- [--clients 50000] [--hold 10s]`
//!
//! A child process (this binary, `--respond`) answers every CON request at once from one
//! recvmmsg/sendmmsg socket: Register 2.01 with a Location, Update 2.04, De-register 2.02. The
//! parent first measures bare round trips to it (one shared socket, 1,000 source addresses, 256
//! requests in flight: no LWM2M, no clients), then runs a fleet whose clients Update every ~0.5 s
//! (lifetime 10 s, Update at 5%): the engine's exchanges per second over the hold, with their
//! latency from the due time.

#[path = "support/bare_round_trips.rs"]
mod bare_round_trips;
#[path = "support/peer_process.rs"]
mod peer_process;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use bare_round_trips::bare_round_trips;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::RequestKind;
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::fleet::{Fleet, parse_duration};
use lwm2m_swarm::model::TemplateSet;
use lwm2m_swarm::transport::{
    OutgoingDatagram, Poller, PortRange, RecvBuffers, SharedConfig, SharedSocket,
};

const BATCH: usize = 64;

fn main() {
    if std::env::args().any(|a| a == "--respond") {
        respond();
        return;
    }
    let mut clients: u64 = 50_000;
    let mut hold = Duration::from_secs(10);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--clients" => {
                clients = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--clients N");
            }
            "--hold" => {
                hold = args
                    .next()
                    .and_then(|v| parse_duration(&v).ok())
                    .expect("--hold 10s");
            }
            _ => {}
        }
    }
    let (child, server) = peer_process::spawn(&["--respond"]);

    let (bare, bare_time) = bare_round_trips(server, Duration::from_secs(3), update_request);
    let bare_rate = bare as f64 / bare_time.as_secs_f64();
    println!(
        "bare round trips (shared socket, 256 in flight): {bare} in {bare_time:.2?} = {bare_rate:.0}/s"
    );

    let (exchanges, window, p50, p99) = engine_exchanges(server, clients, hold);
    let rate = exchanges as f64 / window.as_secs_f64();
    println!(
        "engine: {clients} clients, {exchanges} Updates answered in {window:.2?} of hold = {rate:.0}/s; \
         latency from the due time p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    println!("ratio engine / bare: {:.2}", rate / bare_rate);
    peer_process::stop(child);
}

/// The responder: answers CON requests with piggybacked ACKs, as fast as it can.
fn respond() {
    let config = SharedConfig {
        batch: BATCH,
        ..SharedConfig::default()
    };
    let mut socket =
        SharedSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &config).expect("bind");
    peer_process::announce(socket.local_addr());
    std::thread::spawn(|| {
        peer_process::wait_for_parent();
        std::process::exit(0);
    });
    let mut poller = Poller::new();
    poller.add(socket.as_fd());
    let mut bufs = RecvBuffers::new(BATCH, 1500);
    let mut replies: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
    let mut next_id = 0u64;
    loop {
        bufs.clear();
        if socket.recv_batch(&mut bufs).expect("recv") == 0 {
            poller.wait(Duration::from_millis(50)).expect("poll");
            continue;
        }
        replies.clear();
        for (d, bytes) in bufs.iter() {
            if let Some(reply) = answer(bytes, &mut next_id) {
                replies.push((d.client, d.peer, reply));
            }
        }
        let batch: Vec<OutgoingDatagram<'_>> = replies
            .iter()
            .map(|(from, to, bytes)| OutgoingDatagram {
                from: *from,
                to: *to,
                payload: bytes,
            })
            .collect();
        // A full buffer drops the rest: the clients retransmit, which the figures would show.
        let _ = socket.send_batch(&batch);
    }
}

fn answer(bytes: &[u8], next_id: &mut u64) -> Option<Vec<u8>> {
    let request = Packet::from_bytes(bytes).ok()?;
    if request.header.get_type() != MessageType::Confirmable {
        return None;
    }
    let MessageClass::Request(method) = request.header.code else {
        return None;
    };
    let path: Vec<&[u8]> = request
        .get_option(CoapOption::UriPath)
        .map(|segments| segments.iter().map(Vec::as_slice).collect())
        .unwrap_or_default();
    let mut reply = Packet::new();
    reply.header.set_type(MessageType::Acknowledgement);
    reply.header.message_id = request.header.message_id;
    reply.set_token(request.get_token().to_vec());
    let code = match (method, path.as_slice()) {
        (RequestType::Post, [b"rd"]) => {
            *next_id += 1;
            reply.add_option(CoapOption::LocationPath, b"rd".to_vec());
            reply.add_option(
                CoapOption::LocationPath,
                format!("{next_id:x}").into_bytes(),
            );
            ResponseType::Created
        }
        (RequestType::Post, _) => ResponseType::Changed,
        (RequestType::Delete, _) => ResponseType::Deleted,
        _ => ResponseType::MethodNotAllowed,
    };
    reply.header.code = MessageClass::Response(code);
    reply.to_bytes().ok()
}

/// An Update-shaped CON request.
fn update_request(mid: u16) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(vec![1, 2, 3, 4]);
    p.add_option(CoapOption::UriPath, b"rd".to_vec());
    p.add_option(CoapOption::UriPath, b"1a2b3c".to_vec());
    p.to_bytes().expect("encodes")
}

fn engine_exchanges(server: SocketAddr, clients: u64, hold: Duration) -> (u64, Duration, f64, f64) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let set = TemplateSet::load_dir(std::path::Path::new(dir)).expect("templates");
    let rate = clients.min(50_000);
    let text = format!(
        "[client]\nlifetime = \"10s\"\nupdate_fraction = 0.05\nupdate_jitter = 0.01\nseed = 1\n\
         [[population]]\nname = \"m\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
         [load]\nclients = {clients}\nrate = {rate}\nhold = \"{}ms\"\nstop_timeout = \"30s\"\n",
        hold.as_millis()
    );
    let fleet = Fleet::from_toml(&text, "throughput").expect("fleet");
    let templates = fleet.check(&set).expect("templates exist");
    let plan = fleet.plan();
    let ramp = plan.ramp_duration();
    let mut config = EngineConfig::new(server);
    // Out of the way of other runs on the default ports.
    config.ports = Some(PortRange::new(26_000, 26_999).expect("ports"));
    let engine = Engine::start(plan, templates, &config).expect("engine");
    // Measure over the hold, after a second for the Update rhythm to settle.
    let settle = ramp + Duration::from_secs(1);
    std::thread::sleep(settle);
    let first = engine.snapshot();
    let measured = hold.saturating_sub(Duration::from_secs(1));
    std::thread::sleep(measured);
    let last = engine.snapshot();
    engine.stop();
    let total = engine.join().expect("engine ends");
    println!("\n{total}\n");
    let update = |s: &lwm2m_swarm::metrics::Snapshot| s.request(RequestKind::Update).ok;
    let exchanges = update(&last) - update(&first);
    let window = last.elapsed.saturating_sub(first.elapsed);
    let mut interval = last.request(RequestKind::Update).latency.clone();
    let _ = interval.subtract(&first.request(RequestKind::Update).latency);
    let ms = |q: f64| interval.value_at_quantile(q) as f64 / 1000.0;
    (exchanges, window, ms(0.5), ms(0.99))
}
