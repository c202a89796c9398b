//! What one simulated client costs: memory when idle (registered, one observation) and CPU per
//! datagram, the latter as a ratio to a raw loopback UDP round trip measured in the same run.
//!
//! `cargo bench --bench client` (add `-- --clients N` to change the population; `-- --bootstrap`
//! measures clients that got their server from the embedded bootstrap server first).

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant as WallClock};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{Client, ClientBootstrapConfig, ClientConfig, ClientState};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::model::{Device, DeviceTemplate};
use lwm2m_swarm::server::{BootstrapServer, Provisioning};

const TEMPLATE: &str = "environment-sensor";

fn main() {
    let clients = std::env::args()
        .skip_while(|a| a != "--clients")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000usize);
    let template = load_template();
    let config = Arc::new(ClientConfig {
        lifetime: Duration::from_secs(3600),
        ..ClientConfig::default()
    });
    if std::env::args().any(|a| a == "--bootstrap") {
        println!("client bench: template {TEMPLATE}, {clients} bootstrapped clients");
        memory(&template, &bootstrap_config(), clients);
        return;
    }

    println!("client bench: template {TEMPLATE}, {clients} clients");
    memory(&template, &config, clients);
    cpu(&template, &config);
}

/// Clients whose server is a bootstrap server at 127.0.0.1:5783.
fn bootstrap_config() -> Arc<ClientConfig> {
    Arc::new(ClientConfig {
        server: "127.0.0.1:5783".parse().unwrap(),
        bootstrap: Some(ClientBootstrapConfig::default()),
        lifetime: Duration::from_secs(3600),
        ..ClientConfig::default()
    })
}

/// Takes `client` through a bootstrap with the (sans-IO) embedded bootstrap server, which
/// sends it to 127.0.0.1:5683; returns the Register it then sends.
fn bootstrap(client: &mut Client, now: Instant) -> Vec<u8> {
    let mut server = BootstrapServer::new(
        lwm2m_swarm::server::BootstrapServerConfig::new(Provisioning::new("coap://127.0.0.1:5683")),
        1,
    );
    let me = "127.0.0.1:40000".parse().unwrap();
    let bootstrap_server = client.config().server;
    client.start(now);
    for _ in 0..100 {
        let mut quiet = true;
        while let Some((to, datagram)) = client.poll_transmit() {
            if to != bootstrap_server {
                return datagram;
            }
            server.handle_datagram(now, me, &datagram);
            quiet = false;
        }
        while let Some((_, datagram)) = server.poll_transmit() {
            client.handle_datagram(now, bootstrap_server, &datagram);
            quiet = false;
        }
        if quiet {
            // The switch to the LWM2M server waits for the Finish's answer to be out.
            client.handle_timeout(now);
        }
    }
    panic!("no Register after the bootstrap: {:?}", client.state());
}

fn load_template() -> Arc<DeviceTemplate> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
    let set = lwm2m_swarm::model::TemplateSet::load_dir(std::path::Path::new(dir))
        .expect("templates load");
    set.device(TEMPLATE).expect("template exists")
}

/// A client registered and observed on `/3303/0/5700`, driven by hand.
fn idle_client(template: &Arc<DeviceTemplate>, config: &Arc<ClientConfig>, index: usize) -> Client {
    let name = format!("bench-{index:07}");
    let device = Device::new(template.clone(), index as u64, 1_700_000_000);
    let mut client = Client::new(config.clone(), &name, device, index as u64);
    let now = Instant::from_micros(1_000_000);
    let register = if config.bootstrap.is_some() {
        bootstrap(&mut client, now)
    } else {
        client.start(now);
        let (to, register) = client.poll_transmit().expect("Register sent");
        assert_eq!(to, config.server);
        register
    };
    let server = client.server();
    let register = Packet::from_bytes(&register).unwrap();
    let mut created = Packet::new();
    created.header.set_type(MessageType::Acknowledgement);
    created.header.message_id = register.header.message_id;
    created.header.code = MessageClass::Response(ResponseType::Created);
    created.set_token(register.get_token().to_vec());
    created.add_option(CoapOption::LocationPath, b"rd".to_vec());
    created.add_option(CoapOption::LocationPath, format!("{index:x}").into_bytes());
    client.handle_datagram(now, server, &created.to_bytes().unwrap());
    assert_eq!(client.state(), ClientState::Registered);
    let observe = request(RequestType::Get, "/3303/0/5700", 1, true);
    client.handle_datagram(now, server, &observe);
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {}
    client
}

fn request(method: RequestType, path: &str, message_id: u16, observe: bool) -> Vec<u8> {
    let mut packet = Packet::new();
    packet.header.set_type(MessageType::Confirmable);
    packet.header.code = MessageClass::Request(method);
    packet.header.message_id = message_id;
    packet.set_token(vec![0xAB, 0xCD]);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    if observe {
        packet.add_option(CoapOption::Observe, Vec::new());
    }
    packet.to_bytes().unwrap()
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory(template: &Arc<DeviceTemplate>, config: &Arc<ClientConfig>, clients: usize) {
    let before = rss_bytes();
    let population: Vec<Client> = (0..clients)
        .map(|i| idle_client(template, config, i))
        .collect();
    let after = rss_bytes();
    let heap: usize = population.iter().map(Client::heap_bytes).sum();
    let struct_size = size_of::<Client>();
    println!("memory, idle registered client with one observation:");
    println!("  size_of::<Client>()            {struct_size:>8} B");
    println!("  heap per client (self-report)  {:>8} B", heap / clients);
    println!(
        "  struct + heap                  {:>8} B",
        struct_size + heap / clients
    );
    println!(
        "  RSS growth / client            {:>8} B  ({} clients)",
        (after - before) / clients,
        clients
    );
    black_box(population);
}

fn cpu(template: &Arc<DeviceTemplate>, config: &Arc<ClientConfig>) {
    const ROUNDS: usize = 200_000;
    let mut client = idle_client(template, config, 1);
    let reads: Vec<Vec<u8>> = (0..ROUNDS)
        .map(|i| request(RequestType::Get, "/3303/0/5700", 2 + i as u16, false))
        .collect();
    let server = config.server;
    let mut now = Instant::from_micros(2_000_000);
    let started = WallClock::now();
    for read in &reads {
        now += Duration::from_micros(10);
        client.handle_datagram(now, server, read);
        black_box(client.poll_transmit());
        while client.poll_event().is_some() {}
    }
    let read_ns = started.elapsed().as_nanos() as f64 / ROUNDS as f64;

    // Every second the walk on 5700 moves, so each wake-up sends a notification; CON
    // messages (Updates, CON notifications) are acknowledged as a server would.
    let mut now = Instant::from_micros(10_000_000);
    let mut notifications = 0usize;
    let mut elapsed = Duration::ZERO;
    for _ in 0..ROUNDS {
        now += Duration::from_secs(1);
        let started = WallClock::now();
        client.handle_timeout(now);
        let mut answers = Vec::new();
        while let Some((_, datagram)) = client.poll_transmit() {
            notifications += usize::from(is_notification(&datagram));
            answers.extend(acknowledge(&datagram));
        }
        elapsed += started.elapsed();
        for answer in answers {
            client.handle_datagram(now, server, &answer);
        }
        while client.poll_event().is_some() {}
    }
    assert_eq!(
        client.state(),
        ClientState::Registered,
        "the client stayed registered"
    );
    let notify_ns = elapsed.as_nanos() as f64 / notifications.max(1) as f64;

    let udp_ns = udp_round_trip_ns(ROUNDS / 4);
    println!("cpu per datagram ({ROUNDS} rounds):");
    println!(
        "  Read /3303/0/5700 in, answer out   {read_ns:>8.0} ns  ({:.2} of a loopback UDP round trip)",
        read_ns / udp_ns
    );
    println!(
        "  timeout -> notification sent       {notify_ns:>8.0} ns  ({notifications} notifications, {:.2} of a UDP round trip)",
        notify_ns / udp_ns
    );
    println!(
        "  raw loopback UDP round trip        {udp_ns:>8.0} ns  (send + echo + receive, same process)"
    );
}

fn is_notification(datagram: &[u8]) -> bool {
    Packet::from_bytes(datagram).is_ok_and(|p| p.get_option(CoapOption::Observe).is_some())
}

/// What a server answers to a CON from the client: 2.04 to a request, an empty ACK otherwise.
fn acknowledge(datagram: &[u8]) -> Option<Vec<u8>> {
    let packet = Packet::from_bytes(datagram).ok()?;
    if packet.header.get_type() != MessageType::Confirmable {
        return None;
    }
    let mut ack = Packet::new();
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.message_id = packet.header.message_id;
    ack.header.code = MessageClass::Empty;
    if let MessageClass::Request(_) = packet.header.code {
        ack.header.code = MessageClass::Response(ResponseType::Changed);
        ack.set_token(packet.get_token().to_vec());
    }
    ack.to_bytes().ok()
}

/// A request/response over loopback between two sockets of this process: the floor a real
/// datagram costs, to set the client's CPU against.
fn udp_round_trip_ns(rounds: usize) -> f64 {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    let payload = request(RequestType::Get, "/3303/0/5700", 1, false);
    let mut buffer = [0u8; 1500];
    let started = WallClock::now();
    for _ in 0..rounds {
        a.send(&payload).unwrap();
        let n = b.recv(&mut buffer).unwrap();
        b.send(&buffer[..n]).unwrap();
        black_box(a.recv(&mut buffer).unwrap());
    }
    started.elapsed().as_nanos() as f64 / rounds as f64
}
