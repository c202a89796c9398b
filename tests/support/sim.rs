//! A deterministic harness: one client, a scripted LWM2M server, a lossy network and a
//! simulated clock. Nothing here sleeps or touches a socket.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{Client, Event};
use lwm2m_swarm::clock::Instant;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One datagram seen on the wire.
#[derive(Clone, Debug)]
pub struct Wire {
    pub at: Instant,
    pub packet: Packet,
    /// True when the network dropped it.
    pub dropped: bool,
}

/// What the server got back for a request it sent.
#[derive(Clone, Debug)]
pub struct Reply {
    pub at: Instant,
    pub packet: Packet,
}

/// A scripted LWM2M server: answers registrations, ACKs CON notifications, sends requests.
pub struct Server {
    pub registration_id: String,
    /// Answer code for Register / Update (2.01 / 2.04 unless changed).
    pub register_code: ResponseType,
    pub update_code: ResponseType,
    pub silent: bool,
    next_mid: u16,
    next_token: u32,
    /// Requests the server sent, by token, with the client's answers.
    pub replies: Vec<(Vec<u8>, Reply)>,
    /// Notifications received (token, time, packet).
    pub notifications: Vec<(Vec<u8>, Instant, Packet)>,
    /// Client requests received (method, path, time, packet).
    pub requests: Vec<(RequestType, String, Instant, Packet)>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            registration_id: "a1b2c3".into(),
            register_code: ResponseType::Created,
            update_code: ResponseType::Changed,
            silent: false,
            next_mid: 0x7000,
            next_token: 1,
            replies: Vec::new(),
            notifications: Vec::new(),
            requests: Vec::new(),
        }
    }
}

impl Server {
    /// Handles a datagram from the client; returns the answer, if any.
    fn receive(&mut self, now: Instant, packet: Packet) -> Option<Packet> {
        match packet.header.code {
            MessageClass::Request(method) => {
                let path = uri_path(&packet);
                self.requests
                    .push((method, path.clone(), now, packet.clone()));
                if self.silent {
                    return None;
                }
                let code = match (method, path.as_str()) {
                    (RequestType::Post, "/rd") => self.register_code,
                    (RequestType::Post, _) => self.update_code,
                    (RequestType::Delete, _) => ResponseType::Deleted,
                    _ => ResponseType::MethodNotAllowed,
                };
                let mut reply = Packet::new();
                reply.header.set_type(MessageType::Acknowledgement);
                reply.header.message_id = packet.header.message_id;
                reply.header.code = MessageClass::Response(code);
                reply.set_token(packet.get_token().to_vec());
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
                    self.replies.push((token, Reply { at: now, packet }));
                    return None;
                }
                // A notification (CON or NON).
                self.notifications.push((token, now, packet.clone()));
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
            .filter(|(t, _, _)| t == token)
            .map(|(_, at, p)| (*at, p.clone()))
            .collect()
    }

    pub fn requests_named(&self, method: RequestType, path_prefix: &str) -> Vec<(Instant, Packet)> {
        self.requests
            .iter()
            .filter(|(m, p, _, _)| *m == method && p.starts_with(path_prefix))
            .map(|(_, _, at, packet)| (*at, packet.clone()))
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
    /// One-way delay of the network.
    pub latency: Duration,
    pub drop_rate: f64,
    rng: SmallRng,
    in_transit: VecDeque<(Instant, bool, Vec<u8>)>,
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
            latency: Duration::from_millis(5),
            drop_rate: 0.0,
            rng: SmallRng::seed_from_u64(7),
            in_transit: VecDeque::new(),
        }
    }

    /// Sends a request from the server to the client now; returns its token.
    pub fn send_to_client(&mut self, packet: &Packet) -> Vec<u8> {
        let token = packet.get_token().to_vec();
        self.transmit(false, packet.to_bytes().expect("request encodes"));
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

    /// Sends raw bytes from the server to the client.
    pub fn send_raw_to_client(&mut self, bytes: Vec<u8>) {
        self.transmit(false, bytes);
    }

    fn transmit(&mut self, uplink: bool, bytes: Vec<u8>) {
        let dropped = self.drop_rate > 0.0 && self.rng.random::<f64>() < self.drop_rate;
        if let Ok(packet) = Packet::from_bytes(&bytes) {
            let wire = Wire {
                at: self.now,
                packet,
                dropped,
            };
            if uplink {
                self.uplink.push(wire);
            } else {
                self.downlink.push(wire);
            }
        }
        if !dropped {
            self.in_transit
                .push_back((self.now + self.latency, uplink, bytes));
        }
    }

    fn drain_client(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            self.transmit(true, bytes);
        }
        while let Some(event) = self.client.poll_event() {
            self.events.push((self.now, event));
        }
    }

    /// Runs the world until `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.drain_client();
            let next_delivery = self.in_transit.iter().map(|(at, _, _)| *at).min();
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
                    .position(|(at, _, _)| *at == next)
                    .expect("due datagram");
                let (_, uplink, bytes) = self.in_transit.remove(index).expect("due datagram");
                if uplink {
                    if let Ok(packet) = Packet::from_bytes(&bytes)
                        && let Some(reply) = self.server.receive(self.now, packet)
                    {
                        self.transmit(false, reply.to_bytes().expect("reply encodes"));
                    }
                } else {
                    self.client.handle_datagram(self.now, &bytes);
                }
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
