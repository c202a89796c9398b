//! A simulated network for the engine's [`Simulation`](lwm2m_swarm::engine::Simulation): the
//! embedded server and every client's datagrams on one simulated clock, a fixed one-way delay,
//! and loss in each direction drawn from a seed. The clock moves only when the engine waits on
//! the network. Nothing here sleeps or touches a socket.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use lwm2m_swarm::clock::{Instant, SimulatedClock};
use lwm2m_swarm::server::Server;
use lwm2m_swarm::transport::{OutgoingDatagram, RecvBuffers, Transport, TransportError};

/// Loss in each direction, decided per datagram from the seed, the client's address, the
/// direction and how many datagrams went that way before: the same run drops the same
/// datagrams whatever order the server's hash maps hand its work out in.
#[derive(Clone, Copy, Debug)]
pub struct Loss {
    pub seed: u64,
    /// Probability that a datagram is lost, in each direction.
    pub rate: f64,
}

/// Datagrams that went one way, and how many of them the network lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub sent: u64,
    pub lost: u64,
}

pub struct SimNetwork {
    clock: SimulatedClock,
    pub server: Server,
    server_addr: SocketAddr,
    latency: Duration,
    loss: Loss,
    /// Per client address: datagrams it sent, datagrams sent to it (the loss draws' index).
    counts: HashMap<SocketAddr, [u64; 2]>,
    /// In arrival order: every datagram takes `latency`, and they are sent in time order.
    to_server: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    to_clients: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    pub uplink: Flow,
    pub downlink: Flow,
    /// Datagrams the engine addressed elsewhere than the server.
    pub misaddressed: u64,
}

const UP: usize = 0;
const DOWN: usize = 1;

impl SimNetwork {
    pub fn new(
        clock: SimulatedClock,
        server: Server,
        server_addr: SocketAddr,
        latency: Duration,
        loss: Loss,
    ) -> Self {
        SimNetwork {
            clock,
            server,
            server_addr,
            latency,
            loss,
            counts: HashMap::new(),
            to_server: VecDeque::new(),
            to_clients: VecDeque::new(),
            uplink: Flow::default(),
            downlink: Flow::default(),
            misaddressed: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Datagrams on their way, both directions.
    pub fn in_transit(&self) -> usize {
        self.to_server.len() + self.to_clients.len()
    }

    fn lost(&mut self, client: SocketAddr, direction: usize) -> bool {
        let count = self.counts.entry(client).or_default();
        let n = count[direction];
        count[direction] += 1;
        let stream = mix(self.loss.seed ^ direction as u64, address_key(client));
        let draw = (mix(stream, n) >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.loss.rate
    }

    /// What the server wants sent, on its way to the clients (or lost).
    fn drain_server(&mut self, now: Instant) {
        while let Some((to, bytes)) = self.server.poll_transmit() {
            self.downlink.sent += 1;
            if self.lost(to, DOWN) {
                self.downlink.lost += 1;
            } else {
                self.to_clients.push_back((now + self.latency, to, bytes));
            }
        }
    }
}

impl Transport for SimNetwork {
    fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError> {
        let now = self.clock.now();
        for d in batch {
            if d.to != self.server_addr {
                self.misaddressed += 1;
                continue;
            }
            self.uplink.sent += 1;
            if self.lost(d.from, UP) {
                self.uplink.lost += 1;
            } else {
                self.to_server
                    .push_back((now + self.latency, d.from, d.payload.to_vec()));
            }
        }
        Ok(batch.len())
    }

    fn recv_batch(&mut self, bufs: &mut RecvBuffers) -> Result<usize, TransportError> {
        let now = self.clock.now();
        let mut added = 0;
        while let Some((at, to, _)) = self.to_clients.front()
            && *at <= now
            && !bufs.is_full()
        {
            let to = *to;
            let (_, _, bytes) = self.to_clients.pop_front().expect("front");
            bufs.push_received(to, self.server_addr, &bytes);
            added += 1;
        }
        Ok(added)
    }

    /// Moves the clock up to `timeout` ahead, running the server at every arrival and deadline
    /// on the way; stops early when a datagram reaches a client.
    fn wait(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        let until = self.clock.now() + timeout;
        loop {
            let to_client = self.to_clients.front().map(|(at, _, _)| *at);
            let to_server = self.to_server.front().map(|(at, _, _)| *at);
            let server_timer = self.server.poll_timeout();
            let Some(next) = [to_client, to_server, server_timer]
                .into_iter()
                .flatten()
                .min()
                .filter(|next| *next <= until)
            else {
                self.clock.advance_to(until);
                return Ok(false);
            };
            self.clock.advance_to(next);
            let now = self.clock.now();
            if to_client == Some(next) {
                return Ok(true);
            }
            if to_server == Some(next) {
                let (_, from, bytes) = self.to_server.pop_front().expect("front");
                self.server.handle_datagram(now, from, &bytes);
            } else {
                self.server.handle_timeout(now);
            }
            self.drain_server(now);
        }
    }

    fn kernel_drops(&self) -> u64 {
        0
    }
}

fn address_key(addr: SocketAddr) -> u64 {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits as u64) ^ ((bits >> 64) as u64)
        }
    };
    (ip << 16) | u64::from(addr.port())
}

/// `SplitMix64` of two values.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
