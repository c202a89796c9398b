//! The embedded LWM2M server: a registration store with optional Read/Observe/Write/Execute load
//! (and the LWM2M 1.1 composite operations, `composite.rs`) per registered client, built to hold 100,000 registrations on one thread.
//!
//! Sans-IO like [`crate::client::Client`]: [`Server::handle_datagram`] and
//! [`Server::handle_timeout`] take bytes and time, [`Server::poll_transmit`] and
//! [`Server::poll_timeout`] hand back datagrams and the next deadline. [`run::Runner`] drives it
//! over a UDP socket.
//!
//! Per datagram the work is a parse, a few hash lookups and at most a heap push: no scans.
//! Registrations live in a hash map by id; endpoint names and peer addresses index into it;
//! every deadline (lifetimes, periodic requests, retransmissions) sits in one binary heap.

mod bootstrap;
mod campaign;
mod composite;
mod exchange;
mod firmware;
mod recent;
mod registry;
pub mod run;
mod secure;
mod send;
mod stats;
mod store;
mod timers;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{MessageClass, Packet, RequestType, ResponseType};
use rand::rngs::{SmallRng, StdRng};
use rand::{Rng, SeedableRng};

use crate::clock::Instant;
use crate::coap::wire::{self, CodeKind, RawHeader};
use crate::coap::{Params, message};
use crate::model::Path;
use recent::{CachedReply, Recent, Seen};
use registry::parse_location_id;
use timers::{TimerKind, Timers};

pub use bootstrap::{
    BootstrapServer, BootstrapServerConfig, BootstrapServerStats, DEFAULT_MAX_BOOTSTRAP_SESSIONS,
    Provisioning,
};
pub use campaign::{CampaignConfig, CampaignMode, CampaignStats, Durations, FailureReason};
pub use firmware::Firmware;
pub use registry::{Binding, ObjectLink, ObjectLinks, Registration, Version};
pub use run::Runner;
pub use secure::{DEFAULT_MAX_DTLS_SESSIONS, DtlsServerConfig, SecureServer, ServerAuth};
pub use stats::{DtlsStats, IoStats, LimitStats, OperationStats, QueueStats, ServerStats};

/// A sans-IO server the socket loop ([`Runner`]) and the DTLS layer ([`SecureServer`]) drive:
/// the LWM2M server or the bootstrap server.
pub trait Served: Send + 'static {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)>;
    fn poll_timeout(&self) -> Option<Instant>;
    /// Everything counted so far.
    fn snapshot(&self) -> ServerStats;
    /// The socket is bound to `addr` (over DTLS when `secure`): for URIs the server hands out.
    fn bound(&mut self, _addr: SocketAddr, _secure: bool) {}
}

impl Served for Server {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Server::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Server::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        Server::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Server::poll_timeout(self)
    }
    fn snapshot(&self) -> ServerStats {
        self.stats
    }
    fn bound(&mut self, addr: SocketAddr, secure: bool) {
        let scheme = if secure { "coaps" } else { "coap" };
        self.campaigns.base_uri = Some(format!("{scheme}://{addr}"));
    }
}

/// Observe a path on every registered client, optionally with pmin/pmax written first.
#[derive(Clone, Debug, PartialEq)]
pub struct ObserveLoad {
    pub path: Path,
    /// Sent as Write-Attributes on the same path before the Observe.
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
}

/// LWM2M 1.1 Read-Composite of these paths on every registered 1.1+ client, periodically.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadCompositeLoad {
    pub paths: Vec<Path>,
    pub every: Duration,
}

/// LWM2M 1.1 Write-Composite of these values on every registered 1.1+ client, periodically.
/// Each value goes as a number when it reads as one, `true`/`false` as a boolean, else as a
/// string.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteCompositeLoad {
    pub values: Vec<(Path, String)>,
    pub every: Duration,
}

/// Write a text/plain value to a path on every registered client, periodically.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteLoad {
    pub path: Path,
    pub value: String,
    pub every: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub coap: Params,
    /// Queue mode: how long after a Register or Update the client is taken to be awake
    /// (the LWM2M default is `MAX_TRANSMIT_WAIT`, 93 s).
    pub awake_window: Duration,
    /// Recent requests remembered for duplicate detection, across all peers.
    pub dedup_capacity: usize,
    /// Read this path on every registered client every period (first at a random offset).
    pub read: Option<(Path, Duration)>,
    pub observe: Option<ObserveLoad>,
    pub write: Option<WriteLoad>,
    /// Execute this path on every registered client every period.
    pub execute: Option<(Path, Duration)>,
    /// Discover this path on every registered client every period.
    pub discover: Option<(Path, Duration)>,
    /// Ask clients that registered with `lwm2m=1.2` for LWM2M CBOR (Accept 11544) in the Reads
    /// and Observes above.
    pub lwm2m_cbor: bool,
    pub read_composite: Option<ReadCompositeLoad>,
    /// Observe-Composite of these paths on every registered 1.1+ client, once registered.
    pub observe_composite: Option<Vec<Path>>,
    pub write_composite: Option<WriteCompositeLoad>,
    /// Registrations held at most: a Register of a new endpoint beyond it is answered 5.03.
    pub max_registrations: usize,
    /// Longest lifetime (`lt`, seconds) accepted: a Register or Update asking more is answered
    /// 4.00 (LWM2M has no way to grant a shorter one).
    pub max_lifetime: u32,
    /// A registration whose requests timed out this many times in a row gets no more until its
    /// next Update or Register.
    pub unresponsive_after: u8,
    /// Images served at `/fw/<name>` with Block2 (besides the campaigns' own).
    pub firmware: Vec<Firmware>,
    pub campaigns: Vec<CampaignConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            coap: Params::default(),
            awake_window: Duration::from_secs(93),
            dedup_capacity: 32_768,
            read: None,
            observe: None,
            write: None,
            execute: None,
            discover: None,
            lwm2m_cbor: false,
            read_composite: None,
            observe_composite: None,
            write_composite: None,
            max_registrations: DEFAULT_MAX_REGISTRATIONS,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            unresponsive_after: 3,
            firmware: Vec::new(),
            campaigns: Vec::new(),
        }
    }
}

/// [`ServerConfig::max_registrations`] unless told otherwise: ten times the 100,000 the server
/// is built to hold, about 300 MB.
pub const DEFAULT_MAX_REGISTRATIONS: usize = 1_000_000;
/// [`ServerConfig::max_lifetime`] unless told otherwise: the LWM2M default lifetime, 24 h.
pub const DEFAULT_MAX_LIFETIME: u32 = registry::DEFAULT_LIFETIME;

/// The requests the server sends to clients, in the order a client gets them when several wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    WriteAttributes,
    Observe,
    Read,
    Write,
    Execute,
    Discover,
    ObserveComposite,
    ReadComposite,
    WriteComposite,
    /// The next request of the device's firmware campaign.
    Campaign,
}

impl Op {
    const ALL: [Op; 10] = [
        Op::WriteAttributes,
        Op::Observe,
        Op::ObserveComposite,
        Op::Read,
        Op::ReadComposite,
        Op::Write,
        Op::WriteComposite,
        Op::Execute,
        Op::Discover,
        Op::Campaign,
    ];

    fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The highest-priority op among `bits`.
    fn first_in(bits: u16) -> Option<Op> {
        Op::ALL.into_iter().find(|op| bits & op.bit() != 0)
    }
}

/// What a request from a client is answered with.
struct Answer {
    code: ResponseType,
    /// A new registration's location id, for the Location-Path.
    created: Option<[u8; 16]>,
    /// A registration that may send its waiting requests once this answer is out.
    flush: Option<u32>,
    /// The Block1 option echoed to a block of a block-wise request.
    block1: Option<crate::coap::block::BlockValue>,
}

impl Answer {
    fn code(code: ResponseType) -> Self {
        Answer {
            code,
            created: None,
            flush: None,
            block1: None,
        }
    }
}

/// The embedded LWM2M server.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    rng: SmallRng,
    /// Registration tags and the first id: from the OS, never from the seed, so a restarted
    /// server hands out other locations than its previous instance.
    ids: StdRng,
    registrations: HashMap<u32, Registration>,
    by_endpoint: HashMap<Arc<str>, u32>,
    by_peer: HashMap<SocketAddr, u32>,
    /// Distinct object lists, shared by the registrations that announced them.
    link_sets: HashSet<Arc<ObjectLinks>>,
    recent: Recent,
    timers: Timers,
    next_id: u32,
    /// Tokens of our requests: a counter from a random start, so unique per server and never 0.
    next_token: u64,
    /// Message IDs of NON replies (CON replies echo the request's).
    next_message_id: u16,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    stats: ServerStats,
    campaigns: campaign::Campaigns,
    /// Block-wise Sends being assembled, by peer.
    send_blocks: send::SendBlocks,
}

impl Server {
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut ids = StdRng::from_os_rng();
        let recent = Recent::new(config.dedup_capacity);
        Server {
            next_id: ids.random(),
            ids,
            next_token: rng.random::<u64>() | 1,
            next_message_id: rng.random(),
            config,
            rng,
            registrations: HashMap::new(),
            by_endpoint: HashMap::new(),
            by_peer: HashMap::new(),
            link_sets: HashSet::new(),
            recent,
            timers: Timers::default(),
            transmit: VecDeque::new(),
            stats: ServerStats::default(),
            campaigns: campaign::Campaigns::default(),
            send_blocks: send::SendBlocks::default(),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    pub fn registration_count(&self) -> usize {
        self.registrations.len()
    }

    /// The registration of this endpoint name.
    pub fn registration(&self, endpoint: &str) -> Option<&Registration> {
        let id = self.by_endpoint.get(endpoint)?;
        self.registrations.get(id)
    }

    pub fn registrations(&self) -> impl Iterator<Item = &Registration> {
        self.registrations.values()
    }

    /// A datagram from `from` arrived.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        self.arm_campaigns(now);
        let Some(header) = RawHeader::peek(bytes).filter(|h| h.version == 1) else {
            // Not CoAP (or a version we cannot answer): dropped (RFC 7252 3).
            self.stats.malformed += 1;
            return;
        };
        let kind = wire::code_kind(header.code);
        let packet = Packet::from_bytes(bytes).ok().filter(|_| {
            kind != CodeKind::Reserved && (kind != CodeKind::Empty || bytes.len() == 4)
        });
        let Some(packet) = packet else {
            self.stats.malformed += 1;
            if header.kind == wire::CON {
                self.send(from, wire::empty(wire::RST, header.message_id));
            }
            return;
        };
        match (header.kind, kind) {
            (wire::ACK, CodeKind::Empty | CodeKind::Response) | (wire::RST, CodeKind::Empty) => {
                self.on_reply(now, from, header, &packet);
            }
            (wire::CON, CodeKind::Empty) => {
                self.stats.pings += 1;
                self.send(from, wire::empty(wire::RST, header.message_id));
            }
            (wire::CON | wire::NON, CodeKind::Request) => {
                self.on_request(now, from, header, &packet);
            }
            (wire::CON | wire::NON, CodeKind::Response) => {
                self.on_response(now, from, header, &packet);
            }
            // Requests in an ACK, a non-empty RST, an empty NON: format errors, dropped.
            _ => self.stats.malformed += 1,
        }
    }

    /// Deadlines up to `now`: expiries, periodic requests, retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.arm_campaigns(now);
        while let Some(timer) = self.timers.pop_due(now) {
            match timer.kind {
                TimerKind::Expiry => self.check_expiry(timer.at, timer.id),
                TimerKind::Load(op) => self.on_load_timer(now, timer.at, timer.id, op),
                TimerKind::Exchange(message_id) => {
                    self.on_exchange_timer(now, timer.at, timer.id, message_id);
                }
                TimerKind::CampaignStart => self.on_campaign_start(now, timer.id),
                TimerKind::CampaignStall => self.on_campaign_stall(now, timer.at, timer.id),
            }
        }
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let next = self.transmit.pop_front();
        if next.is_some() {
            self.stats.datagrams_sent += 1;
        }
        next
    }

    /// When [`Server::handle_timeout`] next has work (possibly none: entries are invalidated
    /// lazily, so an early wake-up can find nothing to do).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Bytes held on the heap by the registration store, its indexes, the timer heap and the
    /// duplicate cache: what the allocator handed out, spare capacity included.
    pub fn heap_bytes(&self) -> usize {
        let names: usize = self
            .registrations
            .values()
            // Arc<str>: two counters and the bytes.
            .map(|r| 2 * size_of::<usize>() + r.endpoint.len() + r.heap_bytes())
            .sum();
        let link_sets: usize = self
            .link_sets
            .iter()
            .map(|l| size_of::<ObjectLinks>() + l.links.len() * size_of::<ObjectLink>())
            .sum();
        table_bytes::<(u32, Registration)>(self.registrations.capacity())
            + table_bytes::<(Arc<str>, u32)>(self.by_endpoint.capacity())
            + table_bytes::<(SocketAddr, u32)>(self.by_peer.capacity())
            + table_bytes::<Arc<ObjectLinks>>(self.link_sets.capacity())
            + names
            + link_sets
            + self.timers.heap_bytes()
            + self.recent.heap_bytes()
            + self.campaigns.heap_bytes()
    }

    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.transmit.push_back((to, bytes));
    }

    fn fresh_token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token = token.wrapping_add(1).max(1);
        token
    }

    /// A request from a client: answered once, duplicates from the cache.
    fn on_request(&mut self, now: Instant, from: SocketAddr, header: RawHeader, request: &Packet) {
        if self.serve_firmware(now, from, header, request) {
            return;
        }
        if let Seen::Duplicate(reply) = self.recent.check(from, header.message_id, now) {
            self.stats.duplicates += 1;
            if let Some(reply) = reply.filter(|_| header.kind == wire::CON) {
                let reply = reply.to_vec();
                self.send(from, reply);
            }
            return;
        }
        let answer = self.dispatch(now, from, request);
        let mut response = message::response(answer.code);
        if let Some(id) = answer.created {
            response.add_option(coap_lite::CoapOption::LocationPath, b"rd".to_vec());
            response.add_option(coap_lite::CoapOption::LocationPath, id.to_vec());
        }
        if let Some(block1) = answer.block1 {
            crate::coap::block::set_block1(&mut response, block1);
        }
        response.set_token(request.get_token().to_vec());
        let confirmable = header.kind == wire::CON;
        if confirmable {
            response.header.message_id = header.message_id;
            wire::set_type(&mut response, wire::ACK);
        } else {
            response.header.message_id = self.next_message_id;
            self.next_message_id = self.next_message_id.wrapping_add(1);
            wire::set_type(&mut response, wire::NON);
        }
        let bytes = wire::encode(&response);
        let (lifetime, cached) = if confirmable {
            (self.config.coap.exchange_lifetime, CachedReply::new(&bytes))
        } else {
            // A duplicate NON is dropped, never answered again.
            (self.config.coap.non_lifetime, None)
        };
        self.recent
            .insert(from, header.message_id, now + lifetime, cached);
        self.send(from, bytes);
        // No request to a client before its Register/Update is answered.
        if let Some(id) = answer.flush {
            self.flush(now, id);
        }
    }

    fn dispatch(&mut self, now: Instant, from: SocketAddr, request: &Packet) -> Answer {
        let answer = self.route(now, from, request);
        match answer.code {
            ResponseType::NotFound => self.stats.not_found += 1,
            code if u8::from(MessageClass::Response(code)) >> 5 == 4 => {
                self.stats.bad_requests += 1;
            }
            _ => {}
        }
        answer
    }

    fn route(&mut self, now: Instant, from: SocketAddr, request: &Packet) -> Answer {
        let (Ok(path), Ok(query)) = (message::uri_path(request), message::query_pairs(request))
        else {
            return Answer::code(ResponseType::BadRequest);
        };
        let MessageClass::Request(method) = request.header.code else {
            return Answer::code(ResponseType::MethodNotAllowed);
        };
        match (method, path.as_slice()) {
            (RequestType::Post, ["rd"]) => self.register(now, from, &query, request),
            (RequestType::Post, ["rd", id]) => match self.known(id) {
                Some(id) => self.update(now, from, id, &query, request),
                None => Answer::code(ResponseType::NotFound),
            },
            (RequestType::Delete, ["rd", id]) => match self.known(id) {
                Some(id) => {
                    self.stats.deregisters += 1;
                    self.remove(id);
                    Answer::code(ResponseType::Deleted)
                }
                _ => Answer::code(ResponseType::NotFound),
            },
            (RequestType::Post, ["dp"]) => self.data_push(now, from, request),
            (_, ["rd", ..] | ["dp"]) => Answer::code(ResponseType::MethodNotAllowed),
            _ => Answer::code(ResponseType::NotFound),
        }
    }

    /// The id of the registration at location id `text`, if it is one of ours: a previous
    /// instance's location, or a guess, names none (4.04, and the client registers again).
    fn known(&self, text: &str) -> Option<u32> {
        let (tag, id) = parse_location_id(text)?;
        self.registrations
            .get(&id)
            .filter(|r| r.tag == tag)
            .map(|_| id)
    }

    fn op_stats(&mut self, op: Op) -> &mut OperationStats {
        match op {
            Op::WriteAttributes => &mut self.stats.write_attributes,
            Op::Observe => &mut self.stats.observe,
            Op::Read => &mut self.stats.read,
            Op::Write => &mut self.stats.write,
            Op::Execute => &mut self.stats.execute,
            Op::Discover => &mut self.stats.discover,
            Op::ObserveComposite => &mut self.stats.observe_composite,
            Op::ReadComposite => &mut self.stats.read_composite,
            Op::WriteComposite => &mut self.stats.write_composite,
            Op::Campaign => &mut self.stats.campaign.requests,
        }
    }
}

impl Server {
    /// A GET of a served image (`/fw/<name>`): answered from the shared image, never cached
    /// (a retransmitted GET is answered again, the same). `false` for any other request.
    fn serve_firmware(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: RawHeader,
        request: &Packet,
    ) -> bool {
        // The method first: most requests (Register, Update, Send) are POSTs, and the path
        // is parsed into a Vec.
        if request.header.code != MessageClass::Request(RequestType::Get) {
            return false;
        }
        let Ok(path) = message::uri_path(request) else {
            return false;
        };
        let [firmware::FIRMWARE_PATH, name] = path.as_slice() else {
            return false;
        };
        let image = self
            .config
            .firmware
            .iter()
            .chain(self.config.campaigns.iter().map(|c| &c.firmware))
            .find(|f| f.name() == *name);
        let (mut response, bytes) = firmware::answer(image, request);
        if bytes > 0 {
            self.stats.campaign.blocks_served += 1;
            self.stats.campaign.bytes_served += bytes as u64;
            if let Some(&id) = self.by_peer.get(&from) {
                self.campaign_download_progress(now, id);
            }
        } else {
            self.stats.bad_requests += 1;
        }
        response.set_token(request.get_token().to_vec());
        if header.kind == wire::CON {
            response.header.message_id = header.message_id;
            wire::set_type(&mut response, wire::ACK);
        } else {
            response.header.message_id = self.next_message_id;
            self.next_message_id = self.next_message_id.wrapping_add(1);
            wire::set_type(&mut response, wire::NON);
        }
        self.send(from, wire::encode(&response));
        true
    }
}

/// Heap bytes of a std hash table with room for `capacity` entries: a power-of-two number of
/// buckets at most 7/8 full, each an entry and a control byte.
pub(crate) fn table_bytes<T>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (size_of::<T>() + 1)
}

#[cfg(test)]
mod tests;
