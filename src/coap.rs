//! The CoAP message layer of one client, sans-IO: message IDs, tokens, CON retransmission
//! (RFC 7252 4.2), duplicate detection, separate responses, RST handling, block-wise helpers
//! (RFC 7959) and observe sequence numbers (RFC 7641). Messages are coap-lite `Packet`s.
//!
//! Every datagram carries its peer address: a reply goes to the source of what it answers
//! (RFC 7252 5.3), which for some servers is a fresh socket per request, not the address the
//! client registered with. The other way round, an ACK, RST or response ends an exchange only
//! when it comes from the endpoint the exchange went to (RFC 7252 4.4, 5.3.2); and the caller
//! may screen the sources it takes requests from ([`Endpoint::handle_datagram_screened`]).
//!
//! Over a reliable transport (RFC 8323, [`Endpoint::reliable`]) the same interface carries
//! whole TCP-framed messages instead of datagrams: no types, message IDs, ACKs, retransmissions
//! or duplicates; responses match by token, and a request unanswered within
//! `separate_response_timeout` times out. Connection-level signaling is [`tcp`]'s.

mod dedup;
pub(crate) mod wire;

pub mod block;
pub mod message;
pub mod observe;
pub mod tcp;
pub mod uri;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{MessageType, Packet};
use rand::Rng;

use crate::clock::Instant;
use dedup::{DedupCache, Seen};
use wire::{CodeKind, RawHeader};

pub use coap_lite;

/// RFC 7252 transmission parameters; every one configurable.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub ack_timeout: Duration,
    pub ack_random_factor: f64,
    pub max_retransmit: u8,
    /// How long a received CON is remembered for deduplication (`EXCHANGE_LIFETIME`, 247 s).
    pub exchange_lifetime: Duration,
    /// How long a received NON is remembered (`NON_LIFETIME`, 145 s).
    pub non_lifetime: Duration,
    /// How long to wait for a separate response after its empty ACK (`MAX_TRANSMIT_WAIT`, 93 s);
    /// over a reliable transport, how long a request waits for its response.
    pub separate_response_timeout: Duration,
    /// Largest block we send or accept (16..=1024).
    pub block_size: u16,
}

impl Params {
    /// `MAX_TRANSMIT_WAIT` (RFC 7252 4.8.2, 93 s by default): how long a peer waits for the
    /// answer to its CON before it gives up.
    pub fn max_transmit_wait(&self) -> Duration {
        let attempts = (1u32 << (u32::from(self.max_retransmit) + 1)) - 1;
        self.ack_timeout
            .mul_f64(f64::from(attempts) * self.ack_random_factor)
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            exchange_lifetime: Duration::from_secs(247),
            non_lifetime: Duration::from_secs(145),
            separate_response_timeout: Duration::from_secs(93),
            block_size: 1024,
        }
    }
}

/// A CoAP token (0 to 8 bytes), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Token {
    len: u8,
    /// Zero past `len`, so the derived equality is token equality.
    bytes: [u8; 8],
}

impl Token {
    /// `None` when longer than 8 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Token> {
        let mut token = Token {
            len: u8::try_from(bytes.len()).ok().filter(|&n| n <= 8)?,
            bytes: [0; 8],
        };
        token.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(token)
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
    /// A random 4-byte token.
    pub fn random(rng: &mut impl Rng) -> Token {
        let mut token = Token {
            len: 4,
            bytes: [0; 8],
        };
        rng.fill(&mut token.bytes[..4]);
        token
    }
}

/// What an incoming datagram turned out to be, after the message layer handled its part
/// (ACKs to CON responses, RSTs to what cannot be matched, cached replies to duplicates).
#[derive(Debug)]
pub enum Incoming {
    /// A response to our request with this token (piggybacked, or separate: a CON one is acknowledged).
    Response { token: Token, packet: Packet },
    /// The peer acknowledged our CON that carried no request (a CON notification).
    Acknowledged { token: Token },
    /// The peer sent RST for our CON with this token (for a notification: cancel the observation).
    Reset { token: Token },
    /// A new request (CON or NON); answer it with [`Endpoint::respond`].
    Request(Packet),
    /// A retransmitted request: the cached reply was queued again and nothing else happens.
    Duplicate,
    /// The peer acknowledged a request of ours with an empty ACK: the response comes later.
    SeparatePending { token: Token },
    /// Nothing to act on (a ping answered by RST, an ACK or RST that matches nothing).
    Ignored,
    /// A request (or ping) from a source the caller does not take requests from: unanswered,
    /// not remembered for deduplication.
    ForeignRequest,
    /// An ACK, RST or response from an endpoint none of our exchanges went to (RFC 7252 4.4,
    /// 5.3.2): it ends nothing and is not answered.
    ForeignReply,
    /// Could not be parsed; a CON with a readable header was answered with RST.
    Malformed,
}

/// An exchange of ours that ended without an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Expired {
    /// No ACK after the last retransmission.
    Timeout { token: Token },
    /// An empty ACK came but no separate response within `separate_response_timeout`.
    SeparateTimeout { token: Token },
}

/// Message-layer state of one endpoint. Small: an idle endpoint holds a few integers and an
/// empty cache.
#[derive(Debug)]
pub struct Endpoint {
    next_message_id: u16,
    /// Our CON awaiting its ACK (NSTART 1); boxed so an idle endpoint pays one pointer.
    outstanding: Option<Box<Outstanding>>,
    /// Requests of ours that got an empty ACK and await their separate response from the
    /// endpoint they went to.
    separate: Vec<Separate>,
    /// The last NON we sent (message ID, token), so an RST to a NON notification can cancel
    /// its observation. Its destination is not kept (a notifying client would pay for it all
    /// its life): a NON goes to an observer, and the caller checks an RST against it.
    last_non: Option<(u16, Token)>,
    /// Keyed by message ID alone, where RFC 7252 4.5 keys it by message ID and source endpoint:
    /// fine while one client sees one server, whatever socket it sends from. Two sources reusing
    /// a message ID within its lifetime would be taken for a duplicate.
    received: DedupCache,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    /// 32 bits (saturating) leave room for `reliable` without growing the endpoint.
    retransmissions: u32,
    /// RFC 8323 framing over a reliable transport.
    reliable: bool,
}

#[derive(Debug)]
struct Separate {
    token: Token,
    /// Where the request went: only a response from there ends it.
    to: SocketAddr,
    deadline: Instant,
}

#[derive(Debug)]
struct Outstanding {
    message_id: u16,
    token: Token,
    /// Where it went, and where its retransmissions go.
    to: SocketAddr,
    /// A request (expects a response) rather than a notification (expects an ACK).
    is_request: bool,
    bytes: Box<[u8]>,
    next_at: Instant,
    timeout: Duration,
    retransmitted: u8,
}

impl Endpoint {
    /// `first_message_id` should be random per client (some servers drop equal IDs across clients).
    pub fn new(first_message_id: u16) -> Self {
        Endpoint {
            next_message_id: first_message_id,
            outstanding: None,
            separate: Vec::new(),
            last_non: None,
            received: DedupCache::default(),
            transmit: VecDeque::new(),
            retransmissions: 0,
            reliable: false,
        }
    }

    /// An endpoint over a reliable transport (TCP, TLS): RFC 8323 framing, token matching only.
    pub fn reliable() -> Self {
        Endpoint {
            reliable: true,
            ..Endpoint::new(0)
        }
    }

    /// Whether this endpoint frames for a reliable transport (nothing is acknowledged there).
    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// Stops retransmitting the exchange with `token` (and waiting for its separate response):
    /// its slot is free for the next CON. Returns whether there was one.
    pub fn give_up(&mut self, token: Token) -> bool {
        let outstanding = self.take_outstanding_if(|o| o.token == token).is_some();
        let before = self.separate.len();
        self.separate.retain(|s| s.token != token);
        self.release_separate();
        outstanding || self.separate.len() != before
    }

    /// NSTART 1: true when no CON of ours awaits its ACK.
    pub fn can_send_confirmable(&self) -> bool {
        self.outstanding.is_none()
    }

    /// Sends `packet` to `to` as CON with a fresh message ID, retransmitting until acknowledged
    /// or expired. The caller sets the token. Panics in debug builds if a CON is already
    /// outstanding (in release builds the older exchange is dropped without a report).
    pub fn send_confirmable(
        &mut self,
        now: Instant,
        to: SocketAddr,
        mut packet: Packet,
        params: &Params,
        rng: &mut impl Rng,
    ) {
        debug_assert!(self.outstanding.is_none(), "NSTART 1: a CON is outstanding");
        if self.reliable {
            self.send_reliable(now, to, &packet, params);
            return;
        }
        let message_id = self.fresh_message_id();
        packet.header.message_id = message_id;
        wire::set_type(&mut packet, wire::CON);
        let bytes = wire::encode(&packet);
        let timeout = initial_timeout(params, rng);
        self.transmit.push_back((to, bytes.clone()));
        self.outstanding = Some(Box::new(Outstanding {
            message_id,
            token: Token::from_slice(packet.get_token()).unwrap_or_default(),
            to,
            is_request: wire::is_request(&packet),
            bytes: bytes.into_boxed_slice(),
            next_at: now + timeout,
            timeout,
            retransmitted: 0,
        }));
    }

    /// Sends `packet` to `to` as NON with a fresh message ID.
    pub fn send_non_confirmable(&mut self, to: SocketAddr, mut packet: Packet) {
        if self.reliable {
            self.transmit
                .push_back((to, tcp::frame::encode_packet(&packet)));
            return;
        }
        let message_id = self.fresh_message_id();
        packet.header.message_id = message_id;
        wire::set_type(&mut packet, wire::NON);
        let token = Token::from_slice(packet.get_token()).unwrap_or_default();
        self.last_non = Some((message_id, token));
        self.transmit.push_back((to, wire::encode(&packet)));
    }

    /// Handles one datagram from `from`, taking requests from any source. What the message
    /// layer answers itself (RST, ACK, a cached reply) goes back to `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        params: &Params,
    ) -> Incoming {
        self.handle_datagram_screened(now, from, bytes, params, true)
    }

    /// [`Endpoint::handle_datagram`] for a caller that takes requests from `from` only when
    /// `requests_welcome`: otherwise a request, ping or malformed message from there is
    /// dropped unanswered and leaves no trace ([`Incoming::ForeignRequest`]). Replies are
    /// matched on their source either way.
    pub fn handle_datagram_screened(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        params: &Params,
        requests_welcome: bool,
    ) -> Incoming {
        if self.reliable {
            return self.handle_frame(bytes);
        }
        self.received.prune(now);
        let Some(header) = RawHeader::peek(bytes) else {
            return Incoming::Malformed;
        };
        if header.version != 1 {
            // RFC 7252 3: unknown versions are silently ignored.
            return Incoming::Malformed;
        }
        let kind = wire::code_kind(header.code);
        let parsed = Packet::from_bytes(bytes).ok().filter(|_| {
            // An empty message carries nothing after its header (RFC 7252 4.1).
            kind != CodeKind::Empty || bytes.len() == 4
        });
        let Some(packet) = parsed.filter(|_| kind != CodeKind::Reserved) else {
            if header.kind == wire::CON && requests_welcome {
                self.transmit
                    .push_back((from, wire::empty(wire::RST, header.message_id)));
            }
            return Incoming::Malformed;
        };
        match (header.kind, kind) {
            (wire::ACK, CodeKind::Empty | CodeKind::Response) | (wire::RST, CodeKind::Empty) => {
                self.handle_reply(now, from, header, packet, params, requests_welcome)
            }
            // Requests in an ACK, anything in a non-empty RST: format errors, dropped.
            (wire::ACK | wire::RST, _) => Incoming::Malformed,
            (_, CodeKind::Response) => {
                self.handle_response(now, from, header, packet, params, requests_welcome)
            }
            _ if !requests_welcome => Incoming::ForeignRequest,
            (wire::CON, CodeKind::Empty) => {
                // A ping.
                self.transmit
                    .push_back((from, wire::empty(wire::RST, header.message_id)));
                Incoming::Ignored
            }
            (_, CodeKind::Request) => self.handle_request(now, from, header, packet, params),
            _ => Incoming::Ignored,
        }
    }

    /// Answers `request` (as returned in [`Incoming::Request`]) at `to`, the address it came
    /// from: piggybacked in an ACK for a CON, as NON for a NON. The reply to a CON is cached for
    /// duplicates of the request. An empty `response` (code 0.00) to a CON sends an empty ACK:
    /// the caller then sends the real response later as a CON of its own (a separate response).
    pub fn respond(
        &mut self,
        now: Instant,
        to: SocketAddr,
        request: &Packet,
        mut response: Packet,
        params: &Params,
    ) {
        if self.reliable {
            // No empty ACK to send and no duplicate to answer again: just the response.
            if !wire::is_empty(&response) {
                response.set_token(request.get_token().to_vec());
                self.transmit
                    .push_back((to, tcp::frame::encode_packet(&response)));
            }
            return;
        }
        self.received.prune(now);
        let mid = request.header.message_id;
        match request.header.get_type() {
            MessageType::Confirmable => {
                response.header.message_id = mid;
                wire::set_type(&mut response, wire::ACK);
                let bytes = if wire::is_empty(&response) {
                    wire::empty(wire::ACK, mid)
                } else {
                    response.set_token(request.get_token().to_vec());
                    wire::encode(&response)
                };
                let expires = now + params.exchange_lifetime;
                let cached = Some(bytes.clone().into_boxed_slice());
                let token = Token::from_slice(request.get_token()).unwrap_or_default();
                self.received.insert(mid, token, expires, cached);
                self.transmit.push_back((to, bytes));
            }
            MessageType::NonConfirmable => {
                response.set_token(request.get_token().to_vec());
                // Duplicate NONs are dropped, never answered again: nothing to cache.
                self.send_non_confirmable(to, response);
            }
            MessageType::Acknowledgement | MessageType::Reset => {}
        }
    }

    /// Retransmits what is due and reports an exchange that gave up; also expires the dedup
    /// cache. Reports one exchange per call: call again while `poll_timeout() <= now`.
    pub fn handle_timeout(&mut self, now: Instant, params: &Params) -> Option<Expired> {
        self.received.prune(now);
        if let Some(out) = self.outstanding.as_mut().filter(|o| o.next_at <= now) {
            if out.retransmitted < params.max_retransmit && !self.reliable {
                out.retransmitted += 1;
                out.timeout = out.timeout.saturating_mul(2);
                out.next_at = now + out.timeout;
                self.transmit.push_back((out.to, out.bytes.to_vec()));
                self.retransmissions = self.retransmissions.saturating_add(1);
            } else {
                let token = out.token;
                self.outstanding = None;
                return Some(Expired::Timeout { token });
            }
        }
        let due = self.separate.iter().position(|s| s.deadline <= now)?;
        let token = self.separate.swap_remove(due).token;
        self.release_separate();
        Some(Expired::SeparateTimeout { token })
    }

    /// The next instant `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let separate = self.separate.iter().map(|s| s.deadline);
        self.outstanding
            .iter()
            .map(|o| o.next_at)
            .chain(separate)
            .min()
    }

    /// Where the next datagram goes, without taking it.
    pub fn next_transmit_to(&self) -> Option<SocketAddr> {
        self.transmit.front().map(|(to, _)| *to)
    }

    /// The next datagram to send, and where to.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let next = self.transmit.pop_front();
        if self.transmit.is_empty() {
            // Idle clients far outnumber busy ones: hold no queue buffer between exchanges.
            self.transmit = VecDeque::new();
        }
        next
    }

    /// Retransmissions sent since the endpoint was made.
    pub fn retransmissions(&self) -> u64 {
        u64::from(self.retransmissions)
    }

    /// Heap bytes held: the outstanding CON, the dedup cache and unsent datagrams.
    pub fn heap_bytes(&self) -> usize {
        self.outstanding
            .as_ref()
            .map_or(0, |o| size_of::<Outstanding>() + o.bytes.len())
            + self.separate.capacity() * size_of::<Separate>()
            + self.received.heap_bytes()
            + self.transmit.capacity() * size_of::<(SocketAddr, Vec<u8>)>()
            + self
                .transmit
                .iter()
                .map(|(_, d)| d.capacity())
                .sum::<usize>()
    }

    /// Forgets every exchange, cached reply and unsent datagram (reboot, re-register after a lost
    /// session). Message IDs keep counting, and so do retransmissions.
    pub fn reset(&mut self) {
        self.outstanding = None;
        self.separate = Vec::new();
        self.last_non = None;
        self.received.clear();
        self.transmit = VecDeque::new();
    }

    /// A request (or notification) over a reliable transport: sent once; a request waits for
    /// its response until `separate_response_timeout`, a notification waits for nothing.
    fn send_reliable(&mut self, now: Instant, to: SocketAddr, packet: &Packet, params: &Params) {
        self.transmit
            .push_back((to, tcp::frame::encode_packet(packet)));
        if !wire::is_request(packet) {
            return;
        }
        let timeout = params.separate_response_timeout;
        self.outstanding = Some(Box::new(Outstanding {
            message_id: 0,
            token: Token::from_slice(packet.get_token()).unwrap_or_default(),
            to,
            is_request: true,
            bytes: Box::default(),
            next_at: now + timeout,
            timeout,
            retransmitted: 0,
        }));
    }

    /// One whole TCP-framed message: requests go up, responses match the outstanding request
    /// by token; signals are the connection's business, never seen here.
    fn handle_frame(&mut self, bytes: &[u8]) -> Incoming {
        let Ok(packet) = tcp::frame::parse(bytes).and_then(|m| tcp::frame::to_packet(&m)) else {
            return Incoming::Malformed;
        };
        match wire::code_kind(u8::from(packet.header.code)) {
            CodeKind::Request => Incoming::Request(packet),
            CodeKind::Response => {
                let token = Token::from_slice(packet.get_token()).unwrap_or_default();
                let matched = self.take_outstanding_if(|o| o.is_request && o.token == token);
                if matched.is_some() {
                    Incoming::Response { token, packet }
                } else {
                    Incoming::Ignored
                }
            }
            // Empty messages are always ignored over TCP (RFC 8323 §3.4).
            CodeKind::Empty => Incoming::Ignored,
            CodeKind::Reserved => Incoming::Malformed,
        }
    }

    fn release_separate(&mut self) {
        if self.separate.is_empty() {
            self.separate = Vec::new();
        }
    }

    fn fresh_message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = id.wrapping_add(1);
        id
    }

    /// An ACK or RST from `from`: matched by message ID to our outstanding CON, which must have
    /// gone to `from` (RFC 7252 4.4), or an RST to our last NON, from a welcome source (the
    /// caller checks it is the NON's observer). One whose message ID is of an exchange with
    /// another endpoint, or from an unwelcome source none went to, is foreign.
    fn handle_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: RawHeader,
        packet: Packet,
        params: &Params,
        welcome: bool,
    ) -> Incoming {
        let mid = header.message_id;
        let out = self.outstanding.as_deref().map(|o| (o.message_id, o.to));
        let elsewhere = out.is_some_and(|(m, to)| m == mid && to != from);
        let went_to_sender = out.is_some_and(|(_, to)| to == from);
        if elsewhere || (!welcome && !went_to_sender) {
            return Incoming::ForeignReply;
        }
        if header.kind == wire::RST {
            if let Some(out) = self.take_outstanding_if(|o| o.message_id == mid && o.to == from) {
                return Incoming::Reset { token: out.token };
            }
            return match self.last_non.take_if(|(m, _)| *m == mid && welcome) {
                Some((_, token)) => Incoming::Reset { token },
                None => Incoming::Ignored,
            };
        }
        let empty = wire::is_empty(&packet);
        let token = Token::from_slice(packet.get_token()).unwrap_or_default();
        let matches = |o: &Outstanding| {
            // A piggybacked response must echo the request's token too (RFC 7252 5.3.2).
            o.to == from && o.message_id == mid && (empty || !o.is_request || o.token == token)
        };
        let Some(out) = self.take_outstanding_if(matches) else {
            return Incoming::Ignored;
        };
        match (out.is_request, empty) {
            (false, _) => Incoming::Acknowledged { token: out.token },
            (true, true) => {
                self.separate.push(Separate {
                    token: out.token,
                    to: out.to,
                    deadline: now + params.separate_response_timeout,
                });
                Incoming::SeparatePending { token: out.token }
            }
            (true, false) => Incoming::Response { token, packet },
        }
    }

    fn take_outstanding_if(
        &mut self,
        pred: impl FnOnce(&Outstanding) -> bool,
    ) -> Option<Box<Outstanding>> {
        self.outstanding.take_if(|o| pred(o))
    }

    /// Whether the message was seen already; a duplicate CON gets its cached reply again.
    fn replayed(&mut self, from: SocketAddr, header: RawHeader, token: Token) -> bool {
        let Seen::Duplicate(reply) = self.received.check(header.message_id, token) else {
            return false;
        };
        if let Some(reply) = reply.filter(|_| header.kind == wire::CON) {
            self.transmit.push_back((from, reply.to_vec()));
        }
        true
    }

    /// A CON or NON request: new ones go up once, duplicates get the cached reply.
    fn handle_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: RawHeader,
        packet: Packet,
        params: &Params,
    ) -> Incoming {
        let token = Token::from_slice(packet.get_token()).unwrap_or_default();
        if self.replayed(from, header, token) {
            return Incoming::Duplicate;
        }
        let lifetime = if header.kind == wire::CON {
            params.exchange_lifetime
        } else {
            params.non_lifetime
        };
        self.received
            .insert(header.message_id, token, now + lifetime, None);
        Incoming::Request(packet)
    }

    /// A separate response (CON or NON) or a response to a NON request of ours. It ends a
    /// request only when it comes from where that request went (RFC 7252 5.3.2); a source
    /// whose requests are not welcome gets no answer from the message layer either.
    fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: RawHeader,
        packet: Packet,
        params: &Params,
        welcome: bool,
    ) -> Incoming {
        let con = header.kind == wire::CON;
        let token = Token::from_slice(packet.get_token()).unwrap_or_default();
        let out = (self.outstanding.as_deref())
            .filter(|o| o.is_request)
            .map(|o| (o.token, o.to));
        let exchanges = self.separate.iter().map(|s| (s.token, s.to)).chain(out);
        let with_token = exchanges.clone().filter(|(t, _)| *t == token);
        let elsewhere =
            with_token.clone().next().is_some() && with_token.clone().all(|(_, to)| to != from);
        let went_to_sender = exchanges.clone().any(|(_, to)| to == from);
        if elsewhere || (!welcome && !went_to_sender) {
            return Incoming::ForeignReply;
        }
        if self.replayed(from, header, token) {
            return Incoming::Duplicate;
        }
        let separate = self
            .separate
            .iter()
            .position(|s| s.token == token && s.to == from);
        let awaited = if let Some(i) = separate {
            self.separate.swap_remove(i);
            self.release_separate();
            true
        } else {
            // The separate response may overtake a lost empty ACK (RFC 7252 5.2.2).
            self.take_outstanding_if(|o| o.is_request && o.token == token && o.to == from)
                .is_some()
        };
        if con && !awaited {
            self.transmit
                .push_back((from, wire::empty(wire::RST, header.message_id)));
            return Incoming::Ignored;
        }
        if con {
            let ack = wire::empty(wire::ACK, header.message_id);
            let expires = now + params.exchange_lifetime;
            self.received.insert(
                header.message_id,
                token,
                expires,
                Some(ack.clone().into_boxed_slice()),
            );
            self.transmit.push_back((from, ack));
        } else {
            // NON requests of ours are not tracked: the caller matches NON responses by token.
            self.received
                .insert(header.message_id, token, now + params.non_lifetime, None);
        }
        Incoming::Response { token, packet }
    }
}

/// `ACK_TIMEOUT` times a random factor in [1, `ACK_RANDOM_FACTOR`] (RFC 7252 4.8).
pub fn initial_timeout(params: &Params, rng: &mut impl Rng) -> Duration {
    let factor = params.ack_random_factor;
    let factor = if factor.is_finite() && factor > 1.0 {
        rng.random_range(1.0..=factor)
    } else {
        1.0
    };
    // Whole microseconds, the resolution of `Instant`, so the doublings stay exact. The float
    // to int cast saturates: a huge timeout cannot panic.
    let micros = (params.ack_timeout.as_micros() as f64 * factor).round();
    Duration::from_micros(micros as u64)
}

#[cfg(test)]
mod tests;
