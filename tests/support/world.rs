//! The embedded server and many real clients on one simulated clock and a simulated network.
//! Nothing here sleeps or touches a socket.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lwm2m_swarm::client::{Client, ClientConfig, Event};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::metrics::{Recorder, Snapshot};
use lwm2m_swarm::server::{Server, ServerConfig};

use crate::shipped::device;

/// Which way a datagram goes, and for which client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    ToServer(usize),
    ToClient(usize),
}

/// Decides whether the network drops a datagram.
pub type DropRule = Box<dyn FnMut(Hop, &[u8]) -> bool>;

pub struct World {
    pub now: Instant,
    pub server: Server,
    pub clients: Vec<Client>,
    pub addrs: Vec<SocketAddr>,
    pub events: Vec<Vec<(Instant, Event)>>,
    pub latency: Duration,
    pub drop: DropRule,
    /// Datagrams the server sent to addresses that are no client.
    pub stray: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams the clients sent, in all.
    pub uplink_count: u64,
    by_addr: HashMap<SocketAddr, usize>,
    in_transit: BinaryHeap<Reverse<(Instant, u64)>>,
    payloads: HashMap<u64, (Hop, Vec<u8>)>,
    sequence: u64,
}

/// Where the clients send: their configs' default server address.
pub fn server_addr() -> SocketAddr {
    lwm2m_swarm::client::ClientConfig::default().server
}

pub fn client_addr(index: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + index as u16))
}

impl World {
    /// `count` environment sensors named `sim-NNNN`, not started.
    pub fn new(server: ServerConfig, client: ClientConfig, count: usize) -> Self {
        let config = Arc::new(client);
        let clients: Vec<Client> = (0..count)
            .map(|i| {
                let name = format!("sim-{i:04}");
                Client::new(Arc::clone(&config), &name, device(i as u64), 100 + i as u64)
            })
            .collect();
        let addrs: Vec<SocketAddr> = (0..count).map(client_addr).collect();
        World {
            now: Instant::from_micros(1_000_000),
            server: Server::new(server, 42),
            by_addr: addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
            events: vec![Vec::new(); count],
            clients,
            addrs,
            latency: Duration::from_millis(5),
            drop: Box::new(|_, _| false),
            stray: Vec::new(),
            uplink_count: 0,
            in_transit: BinaryHeap::new(),
            payloads: HashMap::new(),
            sequence: 0,
        }
    }

    /// Starts client `i` now.
    pub fn start(&mut self, i: usize) {
        self.clients[i].start(self.now);
    }

    /// Datagrams from outside the fleet, straight to the server.
    pub fn inject(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.server.handle_datagram(self.now, from, bytes);
    }

    fn transmit(&mut self, hop: Hop, bytes: Vec<u8>) {
        if (self.drop)(hop, &bytes) {
            return;
        }
        self.sequence += 1;
        self.in_transit
            .push(Reverse((self.now + self.latency, self.sequence)));
        self.payloads.insert(self.sequence, (hop, bytes));
    }

    fn drain(&mut self) {
        for i in 0..self.clients.len() {
            while let Some((to, bytes)) = self.clients[i].poll_transmit() {
                assert_eq!(
                    to,
                    server_addr(),
                    "client {i} sent elsewhere than the server"
                );
                self.uplink_count += 1;
                self.transmit(Hop::ToServer(i), bytes);
            }
            while let Some(event) = self.clients[i].poll_event() {
                self.events[i].push((self.now, event));
            }
        }
        while let Some((to, bytes)) = self.server.poll_transmit() {
            match self.by_addr.get(&to) {
                Some(&i) => self.transmit(Hop::ToClient(i), bytes),
                None => self.stray.push((to, bytes)),
            }
        }
    }

    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.drain();
            let delivery = self.in_transit.peek().map(|Reverse((at, _))| *at);
            let client_timer = self.clients.iter().filter_map(Client::poll_timeout).min();
            let next = [delivery, self.server.poll_timeout(), client_timer]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= until) else {
                self.now = self.now.max(until);
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            if delivery == Some(next) {
                let Reverse((_, sequence)) = self.in_transit.pop().expect("due datagram");
                let (hop, bytes) = self.payloads.remove(&sequence).expect("payload");
                match hop {
                    Hop::ToServer(i) => self.server.handle_datagram(now, self.addrs[i], &bytes),
                    Hop::ToClient(i) => self.clients[i].handle_datagram(now, server_addr(), &bytes),
                }
            } else if self.server.poll_timeout() == Some(next) {
                self.server.handle_timeout(now);
            } else {
                for client in &mut self.clients {
                    if client.poll_timeout().is_some_and(|at| at <= now) {
                        client.handle_timeout(now);
                    }
                }
            }
        }
    }

    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    /// Every event of client `i` matching `pick`.
    pub fn client_events<T>(
        &self,
        i: usize,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> Vec<(Instant, T)> {
        self.events[i]
            .iter()
            .filter_map(|(at, e)| pick(e).map(|t| (*at, t)))
            .collect()
    }

    /// Every client's events so far, recorded into one snapshot over `elapsed`.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let mut recorder = Recorder::new();
        for (_, event) in self.events.iter().flatten() {
            recorder.event(event);
        }
        recorder.snapshot(elapsed)
    }
}
