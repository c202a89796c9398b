//! A deterministic harness: one client, a scripted LWM2M server, a lossy network and a
//! simulated clock. Nothing here sleeps or touches a socket.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{Client, Event};
use lwm2m_swarm::clock::Instant;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Where the simulated client sits (the client itself never learns its own address).
pub const CLIENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 56830);

/// `127.0.0.1:port`.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// One datagram seen on the wire.
#[derive(Clone, Debug)]
pub struct Wire {
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub packet: Packet,
    /// True when the network dropped it.
    pub dropped: bool,
}

/// What the server got back for a request it sent.
#[derive(Clone, Debug)]
pub struct Reply {
    pub at: Instant,
    /// The server socket it reached.
    pub to: SocketAddr,
    pub packet: Packet,
}

/// A notification the server received.
#[derive(Clone, Debug)]
pub struct Notification {
    pub token: Vec<u8>,
    pub at: Instant,
    /// The server socket it reached.
    pub to: SocketAddr,
    pub packet: Packet,
}

/// A request of the client the server received.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub method: RequestType,
    pub path: String,
    pub at: Instant,
    /// The server socket it reached.
    pub to: SocketAddr,
    pub packet: Packet,
}

/// A scripted LWM2M server: answers registrations, ACKs CON notifications, sends requests.
/// It listens on `address` and on every other socket it sent a request from (as servers that
/// open a socket per request do); datagrams to any other address reach nobody.
pub struct Server {
    pub address: SocketAddr,
    /// Sockets besides `address` that requests were sent from.
    pub sockets: Vec<SocketAddr>,
    pub registration_id: String,
    /// Answer code for Register / Update (2.01 / 2.04 unless changed).
    pub register_code: ResponseType,
    pub update_code: ResponseType,
    /// Answer code for a Bootstrap-Request (`POST /bs`), 2.04 unless changed.
    pub bootstrap_code: ResponseType,
    pub silent: bool,
    next_mid: u16,
    next_token: u32,
    /// Requests the server sent, by token, with the client's answers.
    pub replies: Vec<(Vec<u8>, Reply)>,
    pub notifications: Vec<Notification>,
    pub requests: Vec<ClientRequest>,
    /// Files a GET of their path is answered with, block-wise (Block2) when large.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            address: addr(5683),
            sockets: Vec::new(),
            registration_id: "a1b2c3".into(),
            register_code: ResponseType::Created,
            update_code: ResponseType::Changed,
            bootstrap_code: ResponseType::Changed,
            silent: false,
            next_mid: 0x7000,
            next_token: 1,
            replies: Vec::new(),
            notifications: Vec::new(),
            requests: Vec::new(),
            files: Vec::new(),
        }
    }
}

impl Server {
    /// Whether a datagram to `to` reaches this server.
    pub fn listens_on(&self, to: SocketAddr) -> bool {
        to == self.address || self.sockets.contains(&to)
    }

    /// Handles a datagram from the client that reached socket `to`; returns the answer (sent
    /// from `to`), if any.
    fn receive(&mut self, now: Instant, to: SocketAddr, packet: Packet) -> Option<Packet> {
        match packet.header.code {
            MessageClass::Request(method) => {
                let path = uri_path(&packet);
                self.requests.push(ClientRequest {
                    method,
                    path: path.clone(),
                    at: now,
                    to,
                    packet: packet.clone(),
                });
                if self.silent {
                    return None;
                }
                let code = match (method, path.as_str()) {
                    (RequestType::Post, "/rd") => self.register_code,
                    (RequestType::Post, "/bs") => self.bootstrap_code,
                    (RequestType::Post, _) => self.update_code,
                    (RequestType::Delete, _) => ResponseType::Deleted,
                    _ => ResponseType::MethodNotAllowed,
                };
                let mut reply = Packet::new();
                reply.header.set_type(MessageType::Acknowledgement);
                reply.header.message_id = packet.header.message_id;
                reply.header.code = MessageClass::Response(code);
                reply.set_token(packet.get_token().to_vec());
                if method == RequestType::Get
                    && let Some((_, body)) = self.files.iter().find(|(p, _)| *p == path)
                {
                    reply.header.code = MessageClass::Response(ResponseType::Content);
                    let requested = lwm2m_swarm::coap::block::block2(&packet).ok().flatten();
                    lwm2m_swarm::coap::block::apply_block2(&mut reply, body, requested, 1024)
                        .expect("a block the file has");
                    return Some(reply);
                }
                if code == ResponseType::Created {
                    reply.add_option(CoapOption::LocationPath, b"rd".to_vec());
                    reply.add_option(
                        CoapOption::LocationPath,
                        self.registration_id.clone().into_bytes(),
                    );
                }
                Some(reply)
            }
            MessageClass::Response(_) => {
                let token = packet.get_token().to_vec();
                // The client answers our requests piggybacked; anything else is a notification.
                if packet.header.get_type() == MessageType::Acknowledgement {
                    self.replies.push((
                        token,
                        Reply {
                            at: now,
                            to,
                            packet,
                        },
                    ));
                    return None;
                }
                // A notification (CON or NON).
                self.notifications.push(Notification {
                    token,
                    at: now,
                    to,
                    packet: packet.clone(),
                });
                if packet.header.get_type() == MessageType::Confirmable && !self.silent {
                    return Some(empty(
                        MessageType::Acknowledgement,
                        packet.header.message_id,
                    ));
                }
                None
            }
            _ => None,
        }
    }

    /// Builds a CON request to the client.
    pub fn request(&mut self, method: RequestType, path: &str) -> Packet {
        let mut packet = Packet::new();
        packet.header.set_type(MessageType::Confirmable);
        packet.header.code = MessageClass::Request(method);
        packet.header.message_id = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        packet.set_token(self.next_token.to_be_bytes().to_vec());
        self.next_token += 1;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
        }
        packet
    }

    /// The client's answer to the request with `token`.
    pub fn reply_to(&self, token: &[u8]) -> Option<&Reply> {
        self.replies
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, r)| r)
    }

    pub fn notifications_for(&self, token: &[u8]) -> Vec<(Instant, Packet)> {
        self.notifications
            .iter()
            .filter(|n| n.token == token)
            .map(|n| (n.at, n.packet.clone()))
            .collect()
    }

    pub fn requests_named(&self, method: RequestType, path_prefix: &str) -> Vec<(Instant, Packet)> {
        self.requests
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .map(|r| (r.at, r.packet.clone()))
            .collect()
    }
}

/// An empty ACK or RST (coap-lite's `Packet::new()` is a GET, not an empty message).
pub fn empty(kind: MessageType, message_id: u16) -> Packet {
    let mut packet = Packet::new();
    packet.header.set_type(kind);
    packet.header.code = MessageClass::Empty;
    packet.header.message_id = message_id;
    packet
}

pub fn uri_path(packet: &Packet) -> String {
    let segments: Vec<String> = packet
        .get_option(CoapOption::UriPath)
        .into_iter()
        .flatten()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    format!("/{}", segments.join("/"))
}

pub fn uri_query(packet: &Packet) -> Vec<String> {
    packet
        .get_option(CoapOption::UriQuery)
        .into_iter()
        .flatten()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub fn uint_option(packet: &Packet, option: CoapOption) -> Option<u32> {
    let bytes = packet.get_first_option(option)?;
    Some(bytes.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b)))
}

/// The simulated world.
pub struct Sim {
    pub now: Instant,
    pub client: Client,
    pub server: Server,
    pub events: Vec<(Instant, Event)>,
    /// Every datagram the client sent.
    pub uplink: Vec<Wire>,
    /// Every datagram the server sent.
    pub downlink: Vec<Wire>,
    /// Datagrams the client sent that are not CoAP (DTLS records), with where they went.
    pub undecoded: Vec<(Instant, SocketAddr, Vec<u8>)>,
    /// One-way delay of the network.
    pub latency: Duration,
    pub drop_rate: f64,
    rng: SmallRng,
    in_transit: VecDeque<InTransit>,
}

struct InTransit {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl Sim {
    pub fn new(client: Client) -> Self {
        Sim {
            now: Instant::from_micros(1_000_000),
            client,
            server: Server::default(),
            events: Vec::new(),
            uplink: Vec::new(),
            downlink: Vec::new(),
            undecoded: Vec::new(),
            latency: Duration::from_millis(5),
            drop_rate: 0.0,
            rng: SmallRng::seed_from_u64(7),
            in_transit: VecDeque::new(),
        }
    }

    /// Sends a request from the server's address to the client now; returns its token.
    pub fn send_to_client(&mut self, packet: &Packet) -> Vec<u8> {
        let from = self.server.address;
        self.send_to_client_from(from, packet)
    }

    /// Sends a request to the client now from another server socket; returns its token.
    pub fn send_to_client_from(&mut self, from: SocketAddr, packet: &Packet) -> Vec<u8> {
        let token = packet.get_token().to_vec();
        self.send_raw_to_client_from(from, packet.to_bytes().expect("request encodes"));
        token
    }

    /// Sends a plain request from the server to the client now; returns its token.
    pub fn send_request(&mut self, method: RequestType, path: &str) -> Vec<u8> {
        let packet = self.server.request(method, path);
        self.send_to_client(&packet)
    }

    /// Sends Write-Attributes (`pmin=5`, ...) on `path`; returns its token.
    pub fn write_attributes(&mut self, path: &str, query: &[&str]) -> Vec<u8> {
        let mut packet = self.server.request(RequestType::Put, path);
        for item in query {
            packet.add_option(CoapOption::UriQuery, item.as_bytes().to_vec());
        }
        self.send_to_client(&packet)
    }

    /// Sends an Observe on `path`; returns its token.
    pub fn observe(&mut self, path: &str) -> Vec<u8> {
        let mut packet = self.server.request(RequestType::Get, path);
        packet.add_option(CoapOption::Observe, Vec::new());
        self.send_to_client(&packet)
    }

    /// Sends raw bytes from the server's address to the client.
    pub fn send_raw_to_client(&mut self, bytes: Vec<u8>) {
        let from = self.server.address;
        self.send_raw_to_client_from(from, bytes);
    }

    /// Sends raw bytes to the client from `from`, a server socket from then on.
    pub fn send_raw_to_client_from(&mut self, from: SocketAddr, bytes: Vec<u8>) {
        if !self.server.listens_on(from) {
            self.server.sockets.push(from);
        }
        self.transmit(from, CLIENT, bytes);
    }

    fn transmit(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let dropped = self.drop_rate > 0.0 && self.rng.random::<f64>() < self.drop_rate;
        if let Ok(packet) = Packet::from_bytes(&bytes) {
            let wire = Wire {
                at: self.now,
                from,
                to,
                packet,
                dropped,
            };
            if to == CLIENT {
                self.downlink.push(wire);
            } else {
                self.uplink.push(wire);
            }
        } else if from == CLIENT {
            self.undecoded.push((self.now, to, bytes.clone()));
        }
        if !dropped {
            self.in_transit.push_back(InTransit {
                at: self.now + self.latency,
                from,
                to,
                bytes,
            });
        }
    }

    fn drain_client(&mut self) {
        while let Some((to, bytes)) = self.client.poll_transmit() {
            self.transmit(CLIENT, to, bytes);
        }
        while let Some(event) = self.client.poll_event() {
            self.events.push((self.now, event));
        }
    }

    /// Runs the world until `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.drain_client();
            let next_delivery = self.in_transit.iter().map(|d| d.at).min();
            let next_timer = self.client.poll_timeout();
            let Some(next) = [next_delivery, next_timer].into_iter().flatten().min() else {
                self.now = self.now.max(until);
                return;
            };
            if next > until {
                self.now = self.now.max(until);
                return;
            }
            self.now = self.now.max(next);
            if next_delivery == Some(next) {
                let index = self
                    .in_transit
                    .iter()
                    .position(|d| d.at == next)
                    .expect("due datagram");
                let d = self.in_transit.remove(index).expect("due datagram");
                if d.to == CLIENT {
                    self.client.handle_datagram(self.now, d.from, &d.bytes);
                } else if self.server.listens_on(d.to)
                    && let Ok(packet) = Packet::from_bytes(&d.bytes)
                    && let Some(reply) = self.server.receive(self.now, d.to, packet)
                {
                    let bytes = reply.to_bytes().expect("reply encodes");
                    self.transmit(d.to, CLIENT, bytes);
                }
                // Anything else went to an address nobody listens on: lost.
            } else {
                self.client.handle_timeout(self.now);
            }
        }
    }

    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    /// Request records seen so far.
    pub fn request_records(&self) -> Vec<lwm2m_swarm::client::RequestRecord> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Request(r) => Some(*r),
                _ => None,
            })
            .collect()
    }
}
