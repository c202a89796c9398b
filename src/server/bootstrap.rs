//! The embedded bootstrap server. It answers a client's Bootstrap-Request (`POST /bs?ep=...`)
//! 2.04, then takes the client through Discover `/0` (to find its bootstrap account), Delete
//! `/0` and `/1`, a Write of a Security instance for the LWM2M server (`NoSec`, or a PSK of the
//! client's own), a Write of the Server instance, and the Bootstrap-Finish.
//!
//! Sans-IO like [`Server`](super::Server): bytes and time in, bytes and deadlines out. A
//! client being bootstrapped has a session with its own CoAP endpoint (message IDs,
//! retransmission, duplicate detection), dropped once the sequence ends.

mod messages;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use coap_lite::{MessageClass, Packet, ResponseType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{OperationStats, Served, ServerStats};
use crate::clock::Instant;
use crate::coap::{Endpoint, Expired, Incoming, Params, Token, message};
use crate::content::ContentFormat;
pub use messages::Provisioning;
use messages::{bootstrap_query, free_security_instance, is_bootstrap_request, step_request};

#[derive(Clone, Debug)]
pub struct BootstrapServerConfig {
    pub coap: Params,
    pub provisioning: Provisioning,
    /// The format of the Writes when the client asks for none (`pct`).
    pub format: ContentFormat,
    /// Clients being bootstrapped at once, at most.
    pub max_sessions: usize,
}

/// [`BootstrapServerConfig::max_sessions`] unless told otherwise: a sequence takes a few
/// round trips, so this many at once is a storm of several thousand bootstraps a second.
pub const DEFAULT_MAX_BOOTSTRAP_SESSIONS: usize = 10_000;

impl BootstrapServerConfig {
    pub fn new(provisioning: Provisioning) -> Self {
        BootstrapServerConfig {
            coap: Params::default(),
            provisioning,
            format: ContentFormat::Tlv,
            max_sessions: DEFAULT_MAX_BOOTSTRAP_SESSIONS,
        }
    }
}

/// What the bootstrap server counted. Every Bootstrap-Request it accepted ends once:
/// `accepted = finished + failed + in_progress`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootstrapServerStats {
    /// Bootstrap-Requests answered 2.04 (a client's retry counts again).
    pub accepted: u64,
    /// Bootstrap-Requests refused: no `ep`, an unsupported `pct` (4.00, 4.15).
    pub rejected: u64,
    /// Bootstrap-Requests from a new peer refused 5.03: `max_sessions` were under way.
    pub full: u64,
    /// Sequences that ended with the Finish answered 2.04.
    pub finished: u64,
    /// Sequences that ended otherwise: an error answer, no answer, an RST, the client
    /// starting over.
    pub failed: u64,
    pub in_progress: u64,
    pub discover: OperationStats,
    pub delete: OperationStats,
    pub write: OperationStats,
    pub finish: OperationStats,
}

/// The bootstrap sequence, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Discover,
    DeleteSecurity,
    DeleteServer,
    WriteSecurity,
    WriteServer,
    Finish,
}

impl Step {
    fn next(self) -> Option<Step> {
        match self {
            Step::Discover => Some(Step::DeleteSecurity),
            Step::DeleteSecurity => Some(Step::DeleteServer),
            Step::DeleteServer => Some(Step::WriteSecurity),
            Step::WriteSecurity => Some(Step::WriteServer),
            Step::WriteServer => Some(Step::Finish),
            Step::Finish => None,
        }
    }
}

/// One client being bootstrapped.
struct BootstrapSession {
    endpoint: Box<str>,
    format: ContentFormat,
    step: Step,
    /// The token of the request in flight.
    token: Token,
    /// Where the LWM2M server's Security instance goes: not on the bootstrap account.
    security_instance: u16,
    coap: Endpoint,
    /// The deadline this session has in the heap; other entries for it are stale.
    scheduled: Option<Instant>,
}

/// The embedded bootstrap server.
pub struct BootstrapServer {
    config: BootstrapServerConfig,
    rng: SmallRng,
    sessions: HashMap<SocketAddr, BootstrapSession>,
    timers: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    stats: ServerStats,
}

impl fmt::Debug for BootstrapServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapServer")
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats.bootstrap)
            .finish_non_exhaustive()
    }
}

impl BootstrapServer {
    pub fn new(config: BootstrapServerConfig, seed: u64) -> Self {
        BootstrapServer {
            config,
            rng: SmallRng::seed_from_u64(seed),
            sessions: HashMap::new(),
            timers: BinaryHeap::new(),
            transmit: VecDeque::new(),
            stats: ServerStats::default(),
        }
    }

    pub fn config(&self) -> &BootstrapServerConfig {
        &self.config
    }

    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// A datagram from `from`: a Bootstrap-Request, or a client's answer to the sequence.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        if !self.sessions.contains_key(&from) {
            if !is_bootstrap_request(bytes) {
                self.refuse(from, bytes, ResponseType::NotFound);
                return;
            }
            if self.sessions.len() >= self.config.max_sessions {
                self.stats.bootstrap.full += 1;
                self.refuse(from, bytes, ResponseType::ServiceUnavailable);
                return;
            }
            let first_message_id = self.rng.random();
            self.sessions.insert(
                from,
                BootstrapSession {
                    endpoint: Box::from(""),
                    format: self.config.format,
                    step: Step::Discover,
                    token: Token::default(),
                    security_instance: 0,
                    coap: Endpoint::new(first_message_id),
                    scheduled: None,
                },
            );
        }
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        match session
            .coap
            .handle_datagram(now, from, bytes, &self.config.coap)
        {
            Incoming::Request(request) => self.on_request(now, from, &request),
            Incoming::Response { token, packet } => self.on_answer(now, from, token, &packet),
            Incoming::Reset { .. } => {
                if let Some(step) = self.sessions.get(&from).map(|s| s.step) {
                    self.step_stats(step).reset += 1;
                }
                self.fail(from);
            }
            Incoming::Duplicate => self.stats.duplicates += 1,
            Incoming::Malformed => self.stats.malformed += 1,
            Incoming::Acknowledged { .. } | Incoming::SeparatePending { .. } => {}
            Incoming::Ignored | Incoming::ForeignRequest | Incoming::ForeignReply => {
                self.stats.unmatched += 1;
            }
        }
        self.settle(from);
    }

    /// Retransmissions, and sessions whose client stopped answering.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, from))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(session) = self.sessions.get_mut(&from) else {
                continue;
            };
            if session.scheduled != Some(at) {
                continue;
            }
            session.scheduled = None;
            let before = session.coap.retransmissions();
            let expired = session.coap.handle_timeout(now, &self.config.coap);
            self.stats.retransmissions += session.coap.retransmissions() - before;
            if let Some(Expired::Timeout { .. } | Expired::SeparateTimeout { .. }) = expired {
                let step = session.step;
                self.step_stats(step).timeout += 1;
                self.fail(from);
            }
            self.settle(from);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let next = self.transmit.pop_front();
        if next.is_some() {
            self.stats.datagrams_sent += 1;
        }
        next
    }

    /// When [`BootstrapServer::handle_timeout`] next has work (stale entries can wake it early).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// A datagram from a peer without a session that gets none: a CON request is answered
    /// `code` (4.04 when it is no Bootstrap-Request, 5.03 when the server is full), anything
    /// else dropped.
    fn refuse(&mut self, from: SocketAddr, bytes: &[u8], code: ResponseType) {
        match Packet::from_bytes(bytes) {
            Ok(packet) if matches!(packet.header.code, MessageClass::Request(_)) => {
                if code == ResponseType::NotFound {
                    self.stats.not_found += 1;
                }
                if packet.header.get_type() == coap_lite::MessageType::Confirmable {
                    let mut answer = message::response(code);
                    answer.header.message_id = packet.header.message_id;
                    answer.set_token(packet.get_token().to_vec());
                    crate::coap::wire::set_type(&mut answer, crate::coap::wire::ACK);
                    self.transmit
                        .push_back((from, crate::coap::wire::encode(&answer)));
                }
            }
            Ok(_) => self.stats.unmatched += 1,
            Err(_) => self.stats.malformed += 1,
        }
    }

    /// A Bootstrap-Request (a client starting over drops the sequence under way), or anything
    /// else (4.04 or 4.05).
    fn on_request(&mut self, now: Instant, from: SocketAddr, request: &Packet) {
        let parsed = bootstrap_query(request);
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let code = match parsed {
            Err(code) => code,
            Ok((endpoint, format)) => {
                if !session.endpoint.is_empty() {
                    session.coap.give_up(session.token);
                    self.stats.bootstrap.failed += 1;
                    self.stats.bootstrap.in_progress -= 1;
                }
                session.endpoint = endpoint.into();
                session.format = format.unwrap_or(self.config.format);
                ResponseType::Changed
            }
        };
        let response = message::response(code);
        session
            .coap
            .respond(now, from, request, response, &self.config.coap);
        if code == ResponseType::Changed {
            self.stats.bootstrap.accepted += 1;
            self.stats.bootstrap.in_progress += 1;
            self.send_step(now, from, Step::Discover);
            return;
        }
        if matches!(
            code,
            ResponseType::BadRequest | ResponseType::UnsupportedContentFormat
        ) {
            self.stats.bootstrap.rejected += 1;
        } else {
            self.stats.bad_requests += 1;
        }
        // Nothing under way for this peer: its answer goes out, its session goes.
        if session.endpoint.is_empty() {
            self.drop_session(from);
        }
    }

    /// The client's answer to the step in flight.
    fn on_answer(&mut self, now: Instant, from: SocketAddr, token: Token, packet: &Packet) {
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        if token != session.token {
            self.stats.unmatched += 1;
            return;
        }
        let step = session.step;
        let code = u8::from(packet.header.code);
        self.step_stats(step).answered(code);
        let expected = match step {
            Step::Discover => code == 0x45,
            Step::DeleteSecurity | Step::DeleteServer => code == 0x42 || code == 0x84,
            Step::WriteSecurity | Step::WriteServer | Step::Finish => code == 0x44,
        };
        if !expected {
            self.fail(from);
            return;
        }
        if step == Step::Discover {
            let instance = free_security_instance(&packet.payload);
            if let Some(session) = self.sessions.get_mut(&from) {
                session.security_instance = instance;
            }
        }
        let Some(next) = step.next() else {
            self.stats.bootstrap.finished += 1;
            self.stats.bootstrap.in_progress -= 1;
            self.drop_session(from);
            return;
        };
        self.send_step(now, from, next);
    }

    fn send_step(&mut self, now: Instant, from: SocketAddr, step: Step) {
        let Some(session) = self.sessions.get(&from) else {
            return;
        };
        let Ok(request) = step_request(&self.config.provisioning, session, step) else {
            // The chosen format cannot carry the configuration: nothing to send.
            self.fail(from);
            return;
        };
        let token = Token::random(&mut self.rng);
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        let mut request = request;
        request.set_token(token.as_slice().to_vec());
        session.step = step;
        session.token = token;
        session
            .coap
            .send_confirmable(now, from, request, &self.config.coap, &mut self.rng);
        self.step_stats(step).sent += 1;
    }

    /// Ends the sequence of `from` as failed.
    fn fail(&mut self, from: SocketAddr) {
        let Some(session) = self.sessions.get(&from) else {
            return;
        };
        if !session.endpoint.is_empty() {
            self.stats.bootstrap.failed += 1;
            self.stats.bootstrap.in_progress -= 1;
        }
        self.drop_session(from);
    }

    /// Removes a session, sending what its endpoint still has queued (an answer, an ACK).
    fn drop_session(&mut self, from: SocketAddr) {
        if let Some(mut session) = self.sessions.remove(&from) {
            while let Some(datagram) = session.coap.poll_transmit() {
                self.transmit.push_back(datagram);
            }
        }
    }

    /// After a session took input: its datagrams out, its next deadline queued.
    fn settle(&mut self, from: SocketAddr) {
        let Some(session) = self.sessions.get_mut(&from) else {
            return;
        };
        while let Some(datagram) = session.coap.poll_transmit() {
            self.transmit.push_back(datagram);
        }
        if let Some(due) = session.coap.poll_timeout()
            && session.scheduled.is_none_or(|at| due < at)
        {
            session.scheduled = Some(due);
            self.timers.push(Reverse((due, from)));
        }
    }

    fn step_stats(&mut self, step: Step) -> &mut OperationStats {
        let b = &mut self.stats.bootstrap;
        match step {
            Step::Discover => &mut b.discover,
            Step::DeleteSecurity | Step::DeleteServer => &mut b.delete,
            Step::WriteSecurity | Step::WriteServer => &mut b.write,
            Step::Finish => &mut b.finish,
        }
    }
}

impl Served for BootstrapServer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        BootstrapServer::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        BootstrapServer::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        BootstrapServer::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        BootstrapServer::poll_timeout(self)
    }
    fn snapshot(&self) -> ServerStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
