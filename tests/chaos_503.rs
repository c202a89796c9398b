//! Chaos: a server that answers 5.03 (Service Unavailable) to every request, under a simulated
//! clock. A fleet ramping up against it backs off by the `LwM2M` 1.1 registration procedure
//! (§6.2.1.1: Communication Retry Timer doubling over Communication Retry Count attempts, then
//! the Sequence Delay Timer, Sequence Retry Count sequences), its Register attempts never come
//! faster than the ramp, and every request is accounted for, each 5.03 as an error.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{Client, ClientConfig, ClientState, RequestKind, RetryPolicy};
use lwm2m_swarm::clock::Instant;
use lwm2m_swarm::metrics::{Recorder, Snapshot};

const SECOND: Duration = Duration::from_secs(1);
/// One way, each direction.
const LATENCY: Duration = Duration::from_millis(5);
/// 5.03 as a CoAP code byte (class 5, detail 3).
const SERVICE_UNAVAILABLE: u8 = (5 << 5) | 3;

/// A datagram on its way.
enum Hop {
    ToServer { from: usize, bytes: Vec<u8> },
    ToClient { to: usize, bytes: Vec<u8> },
}

/// A fleet ramping up at `rate` clients a second against a server that answers every request
/// 5.03 at once, on a simulated clock and network.
struct Chaos {
    now: Instant,
    clients: Vec<Client>,
    /// When each client starts, by the ramp.
    starts: Vec<Instant>,
    started: usize,
    /// (arrival, index into `hops`), earliest first.
    in_transit: BinaryHeap<Reverse<(Instant, usize)>>,
    hops: Vec<Option<Hop>>,
    recorder: Recorder,
    /// The Register requests the server received, per client (when each arrived).
    registers: Vec<Vec<Instant>>,
    /// Requests the server received, all answered 5.03.
    requests: u64,
}

impl Chaos {
    fn new(config: ClientConfig, clients: usize, rate: u64) -> Chaos {
        let config = Arc::new(config);
        let origin = Instant::from_micros(1_000_000);
        Chaos {
            now: origin,
            clients: (0..clients)
                .map(|i| {
                    let name = format!("chaos-{i:04}");
                    let device = shipped::device(i as u64);
                    Client::new(Arc::clone(&config), &name, device, 7 + i as u64)
                })
                .collect(),
            starts: (0..clients as u64)
                .map(|i| origin + Duration::from_micros(i * 1_000_000 / rate))
                .collect(),
            started: 0,
            in_transit: BinaryHeap::new(),
            hops: Vec::new(),
            recorder: Recorder::new(),
            registers: vec![Vec::new(); clients],
            requests: 0,
        }
    }

    fn server() -> SocketAddr {
        ClientConfig::default().server
    }

    /// Runs until `until` (simulated); returns the steps taken, so the caller can bound them.
    fn run_until(&mut self, until: Instant) -> u64 {
        let mut steps = 0;
        loop {
            self.drain();
            let arrival = self.in_transit.peek().map(|Reverse((at, _))| *at);
            let start = self.starts.get(self.started).copied();
            let timer = self.clients.iter().filter_map(Client::poll_timeout).min();
            let next = [arrival, start, timer].into_iter().flatten().min();
            let Some(next) = next.filter(|n| *n <= until) else {
                self.now = self.now.max(until);
                return steps;
            };
            steps += 1;
            self.now = self.now.max(next);
            let now = self.now;
            if arrival == Some(next) {
                let Reverse((_, hop)) = self.in_transit.pop().unwrap();
                match self.hops[hop].take().unwrap() {
                    Hop::ToServer { from, bytes } => self.serve(from, &bytes),
                    Hop::ToClient { to, bytes } => {
                        self.clients[to].handle_datagram(now, Chaos::server(), &bytes);
                    }
                }
            } else if start == Some(next) {
                self.clients[self.started].start(now);
                self.started += 1;
            } else {
                for client in &mut self.clients {
                    if client.poll_timeout().is_some_and(|at| at <= now) {
                        client.handle_timeout(now);
                    }
                }
            }
        }
    }

    /// Collects what the clients send and report.
    fn drain(&mut self) {
        for i in 0..self.clients.len() {
            while let Some((to, bytes)) = self.clients[i].poll_transmit() {
                assert_eq!(to, Chaos::server(), "client {i} sent elsewhere");
                self.transmit(Hop::ToServer { from: i, bytes });
            }
            while let Some(event) = self.clients[i].poll_event() {
                self.recorder.event(&event);
            }
        }
    }

    fn transmit(&mut self, hop: Hop) {
        self.in_transit
            .push(Reverse((self.now + LATENCY, self.hops.len())));
        self.hops.push(Some(hop));
    }

    /// The server: every request gets 5.03, piggybacked on the ACK of a CON.
    fn serve(&mut self, from: usize, bytes: &[u8]) {
        let request = Packet::from_bytes(bytes).expect("the clients send CoAP");
        let MessageClass::Request(method) = request.header.code else {
            return;
        };
        self.requests += 1;
        let path: Vec<String> = request
            .get_option(coap_lite::CoapOption::UriPath)
            .map(|p| {
                p.iter()
                    .map(|s| String::from_utf8_lossy(s).into())
                    .collect()
            })
            .unwrap_or_default();
        if method == RequestType::Post && path == ["rd"] {
            self.registers[from].push(self.now);
        }
        let mut answer = Packet::new();
        answer.header.message_id = request.header.message_id;
        answer.header.set_type(match request.header.get_type() {
            MessageType::Confirmable => MessageType::Acknowledgement,
            _ => MessageType::NonConfirmable,
        });
        answer.header.code = MessageClass::Response(ResponseType::ServiceUnavailable);
        answer.set_token(request.get_token().to_vec());
        let bytes = answer.to_bytes().unwrap();
        self.transmit(Hop::ToClient { to: from, bytes });
    }

    fn snapshot(&mut self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let elapsed = self.now.saturating_since(Instant::ZERO);
        self.recorder.publish(elapsed, &mut snapshot);
        snapshot
    }

    /// Register attempts the server received in the busiest second (a window sliding over
    /// every arrival).
    fn busiest_second(&self) -> usize {
        let mut all: Vec<Instant> = self.registers.iter().flatten().copied().collect();
        all.sort_unstable();
        (0..all.len())
            .map(|i| {
                all[i..]
                    .iter()
                    .take_while(|t| **t < all[i] + SECOND)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// What `policy` has a client wait after each failed attempt, until it gives up.
fn waits(policy: &RetryPolicy) -> Vec<Duration> {
    (1..).map_while(|n| policy.delay_after(n)).collect()
}

/// The gaps between a client's attempts follow the procedure: each one the wait after that
/// failure, plus the round trip of the 5.03 (nothing shorter, nothing much longer).
fn assert_paced_by(attempts: &[Instant], policy: &RetryPolicy, client: usize) {
    let expected = waits(policy);
    assert_eq!(
        attempts.len(),
        expected.len() + 1,
        "client {client}: attempts at {attempts:?}"
    );
    for (k, (pair, wait)) in attempts.windows(2).zip(&expected).enumerate() {
        let gap = pair[1].saturating_since(pair[0]);
        assert!(
            gap >= *wait + 2 * LATENCY && gap <= *wait + 2 * LATENCY + Duration::from_millis(1),
            "client {client}: attempt {} came {gap:?} after the one before, the procedure says \
             {wait:?} after its 5.03",
            k + 2
        );
    }
}

fn assert_all_failed_and_accounted(chaos: &mut Chaos, attempts_each: u64) {
    let clients = chaos.clients.len() as u64;
    for (i, client) in chaos.clients.iter().enumerate() {
        assert_eq!(client.state(), ClientState::Failed, "client {i}");
    }
    let s = chaos.snapshot();
    accounting::assert_accounted(&s);
    let register = s.request(RequestKind::Register);
    assert_eq!(register.sent, clients * attempts_each, "{s}");
    assert_eq!(register.error, register.sent, "every 5.03 an error:\n{s}");
    assert_eq!(register.retransmissions, 0, "{s}");
    assert_eq!(
        register.codes,
        [(Some(SERVICE_UNAVAILABLE), register.sent)],
        "{s}"
    );
    // Nothing but Registers was asked of the server, and every one reached it once.
    assert_eq!(chaos.requests, register.sent);
}

/// Default procedure: 5 attempts (60, 120, 240 and 480 s apart), one sequence, then the client
/// gives up. 40 clients at 10 a second.
#[test]
fn a_fleet_backs_off_by_the_registration_procedure_never_faster_than_the_ramp() {
    let (clients, rate) = (40, 10);
    let config = ClientConfig::default();
    let policy = config.retry.clone();
    assert_eq!(waits(&policy), [60, 120, 240, 480].map(Duration::from_secs));
    let mut chaos = Chaos::new(config, clients, rate);
    // The ramp (4 s) and the procedure (900 s) with room to spare.
    let steps = chaos.run_until(Instant::ZERO + Duration::from_secs(1_200));
    assert!(steps < 10_000, "{steps} steps");
    for (i, attempts) in chaos.registers.iter().enumerate() {
        assert_paced_by(attempts, &policy, i);
    }
    let busiest = chaos.busiest_second();
    assert!(
        busiest <= rate as usize,
        "{busiest} Register attempts in one second, the ramp offers {rate}"
    );
    assert_eq!(busiest, rate as usize, "the ramp itself reaches its rate");
    assert_all_failed_and_accounted(&mut chaos, 5);
}

/// A second sequence after the Sequence Delay Timer (shortened to an hour here), with a
/// shorter Retry Timer and Count: the whole procedure, then failure.
#[test]
fn a_failed_sequence_waits_the_sequence_delay_before_the_next() {
    let (clients, rate) = (12, 4);
    let policy = RetryPolicy {
        retry_count: 3,
        retry_timer: Duration::from_secs(10),
        sequence_delay: Duration::from_secs(3_600),
        sequence_retry_count: 2,
    };
    let config = ClientConfig {
        retry: policy.clone(),
        ..ClientConfig::default()
    };
    assert_eq!(
        waits(&policy),
        [10, 20, 3_600, 10, 20].map(Duration::from_secs)
    );
    let mut chaos = Chaos::new(config, clients, rate);
    let steps = chaos.run_until(Instant::ZERO + Duration::from_secs(4_000));
    assert!(steps < 10_000, "{steps} steps");
    for (i, attempts) in chaos.registers.iter().enumerate() {
        assert_paced_by(attempts, &policy, i);
    }
    let busiest = chaos.busiest_second();
    assert!(
        busiest <= rate as usize,
        "{busiest} Register attempts in one second, the ramp offers {rate}"
    );
    assert_all_failed_and_accounted(&mut chaos, 6);
}
