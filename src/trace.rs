//! `--trace`: every datagram of the clients whose endpoint name matches a pattern, written as a
//! pcap file ([`pcap`]) or as a readable message log on stderr ([`message_log`]).
//!
//! The engine's shards decide once per client start whether it is traced
//! ([`ShardTrace::client_started`]), copy the traced clients' datagrams into a local buffer and
//! hand it over a bounded channel a few times a second ([`ShardTrace::flush`]); one writer thread
//! ([`TraceWriter`]) puts the shards' batches back in time order ([`Merger`]) and writes. A shard
//! never waits on the writer: when the channel is full it keeps its buffer, up to [`MAX_PENDING`]
//! datagrams, and counts what it must drop.

pub mod message_log;
pub mod pcap;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::clock::Instant;
use crate::model::{ResourceSpec, Schema};

/// Batches the channel holds before a shard keeps its datagrams to itself.
const CHANNEL_BATCHES: usize = 256;
/// Datagrams a shard holds while the writer is behind, and datagrams the writer holds to put
/// them in time order; beyond, a shard drops and counts, the writer writes the oldest early.
pub const MAX_PENDING: usize = 65_536;
/// A shard hands its buffer over at this many datagrams, or when it publishes its counters.
const BATCH: usize = 256;

/// An endpoint-name glob: `*` any run of characters, `?` one, `[a-z]` one of a set.
#[derive(Clone, Debug)]
pub struct EndpointPattern(glob::Pattern);

impl EndpointPattern {
    pub fn new(text: &str) -> Result<Self, String> {
        glob::Pattern::new(text).map(EndpointPattern).map_err(|e| {
            format!(
                "{text:?} is not an endpoint pattern: {} at character {}",
                e.msg,
                e.pos + 1
            )
        })
    }

    pub fn matches(&self, endpoint: &str) -> bool {
        self.0.matches(endpoint)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::str::FromStr for EndpointPattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        EndpointPattern::new(text)
    }
}

/// Which way a datagram went, seen from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// One datagram (or, over TCP, one write or read of the stream) of a traced client.
#[derive(Clone, Debug)]
pub struct Captured {
    /// On the engine's clock (zero is the start of the load).
    pub at: Instant,
    pub endpoint: Arc<str>,
    pub direction: Direction,
    /// The client's own address and port.
    pub client: SocketAddr,
    pub peer: SocketAddr,
    /// Bytes of a TCP stream (CoAP over TCP, or TLS records), not a datagram.
    pub stream: bool,
    pub bytes: Vec<u8>,
}

/// What the engine's shards are handed: the pattern and the way to the writer.
#[derive(Clone, Debug)]
pub struct TraceTap {
    pattern: Arc<EndpointPattern>,
    sender: SyncSender<Batch>,
    shared: Arc<TapShared>,
}

/// What a shard hands the writer: its datagrams since the last batch, and the time up to which
/// it has captured everything (its clock when it handed over; later datagrams are not older).
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) shard: u32,
    pub(crate) upto: Instant,
    pub(crate) captured: Vec<Captured>,
    /// The shard's last batch: it captures nothing more.
    pub(crate) last: bool,
}

#[derive(Debug, Default)]
struct TapShared {
    /// The wall-clock time of the engine's `Instant::ZERO`, set once the load starts.
    origin: OnceLock<SystemTime>,
    /// Shards that have a [`ShardTrace`]: the writer holds datagrams until it heard from each.
    shards: AtomicU32,
    matched: AtomicU64,
    dropped: AtomicU64,
}

impl TraceTap {
    /// The wall-clock time the engine's clock starts from (the pcap's timestamps).
    pub fn set_origin(&self, origin: SystemTime) {
        let _ = self.shared.origin.set(origin);
    }
}

/// One shard's side of the trace: which of its clients are traced, and what they did since the
/// last hand-over.
#[derive(Debug)]
pub struct ShardTrace {
    tap: TraceTap,
    shard: u32,
    /// The `upto` of the last batch handed over.
    handed_upto: Option<Instant>,
    /// Traced clients by local index, with their endpoint name.
    traced: HashMap<u32, Arc<str>>,
    pending: Vec<Captured>,
}

impl ShardTrace {
    pub fn new(tap: TraceTap) -> Self {
        let shard = tap.shared.shards.fetch_add(1, Ordering::SeqCst);
        ShardTrace {
            tap,
            shard,
            handed_upto: None,
            traced: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Client `local` starts as `endpoint`: the only place the pattern is matched.
    pub fn client_started(&mut self, local: u32, endpoint: &str) {
        if self.tap.pattern.matches(endpoint)
            && self.traced.insert(local, endpoint.into()).is_none()
        {
            self.tap.shared.matched.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn is_traced(&self, local: u32) -> bool {
        !self.traced.is_empty() && self.traced.contains_key(&local)
    }

    /// Keeps a copy of a traced client's datagram (callers check [`ShardTrace::is_traced`]).
    #[allow(clippy::too_many_arguments)]
    pub fn capture(
        &mut self,
        at: Instant,
        local: u32,
        direction: Direction,
        client: SocketAddr,
        peer: SocketAddr,
        stream: bool,
        bytes: &[u8],
    ) {
        let Some(endpoint) = self.traced.get(&local) else {
            return;
        };
        if self.pending.len() >= MAX_PENDING {
            self.tap.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.pending.push(Captured {
            at,
            endpoint: Arc::clone(endpoint),
            direction,
            client,
            peer,
            stream,
            bytes: bytes.to_vec(),
        });
        if self.pending.len() >= BATCH {
            self.flush(at);
        }
    }

    /// Hands what was captured to the writer with the shard's clock `now` (an empty batch too,
    /// so the writer knows this shard has nothing older), unless its channel is full (then it
    /// is kept for the next time). Never blocks.
    pub fn flush(&mut self, now: Instant) {
        if self.pending.is_empty() && self.handed_upto >= Some(now) {
            return;
        }
        let batch = Batch {
            shard: self.shard,
            upto: now,
            captured: std::mem::take(&mut self.pending),
            last: false,
        };
        match self.tap.sender.try_send(batch) {
            Ok(()) => self.handed_upto = Some(now),
            Err(TrySendError::Full(batch)) => self.pending = batch.captured,
            Err(TrySendError::Disconnected(batch)) => {
                // The writer failed (it said why): nothing more can be written.
                self.tap
                    .shared
                    .dropped
                    .fetch_add(batch.captured.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for ShardTrace {
    /// The shard's end: what is left goes to the writer, waiting for room if it must.
    fn drop(&mut self) {
        let captured = std::mem::take(&mut self.pending);
        let upto = captured.last().map_or(Instant::ZERO, |c| c.at);
        let batch = Batch {
            shard: self.shard,
            upto,
            captured,
            last: true,
        };
        if let Err(lost) = self.tap.sender.send(batch) {
            let lost = lost.0.captured.len() as u64;
            self.tap.shared.dropped.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

/// Where the trace goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceSink {
    /// A pcap file (`LINKTYPE_RAW`: IPv4 or IPv6 packets).
    Pcap(PathBuf),
    /// The readable message log, on stderr.
    Log,
}

impl std::str::FromStr for TraceSink {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" => Err("give a file for the pcap, or - for a message log on stderr".into()),
            "-" => Ok(TraceSink::Log),
            path => Ok(TraceSink::Pcap(PathBuf::from(path))),
        }
    }
}

/// What the writer did, for the end of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceTotals {
    pub clients: u64,
    pub written: u64,
    pub dropped: u64,
}

/// The thread that writes the trace.
pub struct TraceWriter {
    thread: JoinHandle<io::Result<u64>>,
    shared: Arc<TapShared>,
}

/// Object definitions to decode TLV and typed payloads by: the fleet's device templates, the
/// first that knows a resource.
pub struct Schemas(pub Vec<Arc<dyn Schema + Send + Sync>>);

impl Schema for Schemas {
    fn resource(&self, object: u16, resource: u16) -> Option<ResourceSpec> {
        self.0.iter().find_map(|s| s.resource(object, resource))
    }
}

impl TraceWriter {
    /// Opens the sink and starts the writer; the tap goes to the engine.
    pub fn start(
        pattern: EndpointPattern,
        sink: &TraceSink,
        schemas: Schemas,
    ) -> io::Result<(TraceWriter, TraceTap)> {
        let (sender, receiver) = sync_channel(CHANNEL_BATCHES);
        let shared = Arc::new(TapShared::default());
        // The file is made here, so a bad path fails the run before it starts; the writer is
        // built on its thread (it is not `Send`).
        let file = match sink {
            TraceSink::Pcap(path) => Some(File::create(path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
            })?),
            TraceSink::Log => None,
        };
        let totals = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("trace".into())
            .spawn(move || {
                let mut output: Box<dyn Output> = match file {
                    Some(file) => Box::new(pcap::PcapOutput::new(BufWriter::new(file))?),
                    None => Box::new(message_log::LogOutput::new(
                        BufWriter::new(io::stderr()),
                        schemas,
                    )),
                };
                write_all(&receiver, output.as_mut(), &totals)
            })?;
        let tap = TraceTap {
            pattern: Arc::new(pattern),
            sender,
            shared: Arc::clone(&shared),
        };
        Ok((TraceWriter { thread, shared }, tap))
    }

    /// Waits for the last datagrams (every tap must be dropped: the engine finished) and
    /// closes the sink.
    pub fn finish(self) -> io::Result<TraceTotals> {
        let written = self
            .thread
            .join()
            .map_err(|_| io::Error::other("the trace writer panicked"))??;
        Ok(TraceTotals {
            clients: self.shared.matched.load(Ordering::Relaxed),
            written,
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        })
    }
}

/// A trace format.
trait Output {
    fn write(&mut self, captured: &Captured, wall: SystemTime) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

fn write_all(
    receiver: &Receiver<Batch>,
    output: &mut dyn Output,
    shared: &TapShared,
) -> io::Result<u64> {
    let mut written = 0;
    let mut merger = Merger::new(MAX_PENDING);
    let mut write = |captured: Captured, output: &mut dyn Output| {
        let origin = shared
            .origin
            .get()
            .copied()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let wall = origin + Duration::from_micros(captured.at.as_micros());
        written += 1;
        output.write(&captured, wall)
    };
    for batch in receiver {
        merger.accept(batch, shared.shards.load(Ordering::SeqCst));
        while let Some(captured) = merger.next_ready() {
            write(captured, output)?;
        }
        // Flushed per batch: a few times a second while traced clients talk.
        output.flush()?;
    }
    // Every shard has ended (the channel closed): the rest, in order.
    while let Some(captured) = merger.next_held() {
        write(captured, output)?;
    }
    output.flush()?;
    Ok(written)
}

/// Puts the shards' batches back in time order: datagrams are held until every shard has
/// handed over everything up to their time (the oldest `upto` among the shards still
/// capturing), or until more than `limit` are held (then the oldest go out early).
#[derive(Debug)]
pub(crate) struct Merger {
    held: BinaryHeap<Reverse<Held>>,
    /// Each shard heard from: its latest `upto`, `None` once it ended.
    shards: HashMap<u32, Option<Instant>>,
    /// Shards known to exist (heard from or not).
    registered: u32,
    arrivals: u64,
    limit: usize,
}

/// Ordered by time, then by arrival (a shard's own datagrams keep their order).
#[derive(Debug)]
struct Held {
    at: Instant,
    arrival: u64,
    captured: Captured,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.arrival) == (other.at, other.arrival)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.arrival).cmp(&(other.at, other.arrival))
    }
}

impl Merger {
    pub(crate) fn new(limit: usize) -> Self {
        Merger {
            held: BinaryHeap::new(),
            shards: HashMap::new(),
            registered: 0,
            arrivals: 0,
            limit,
        }
    }

    /// Takes a shard's batch; `registered` is how many shards exist now.
    pub(crate) fn accept(&mut self, batch: Batch, registered: u32) {
        self.registered = self.registered.max(registered);
        let upto = (!batch.last).then_some(batch.upto);
        self.shards.insert(batch.shard, upto);
        for captured in batch.captured {
            self.arrivals += 1;
            self.held.push(Reverse(Held {
                at: captured.at,
                arrival: self.arrivals,
                captured,
            }));
        }
    }

    /// The time up to which no shard can hand over anything older; `None` while a shard has
    /// not been heard from.
    fn safe_until(&self) -> Option<Instant> {
        if (self.shards.len() as u64) < u64::from(self.registered) {
            return None;
        }
        let capturing = self.shards.values().flatten().min().copied();
        // All ended: everything held is safe.
        Some(capturing.unwrap_or(Instant::from_micros(u64::MAX)))
    }

    /// The oldest held datagram, if it can be written now.
    pub(crate) fn next_ready(&mut self) -> Option<Captured> {
        let over = self.held.len() > self.limit;
        let oldest = self.held.peek()?.0.at;
        if over || self.safe_until().is_some_and(|safe| oldest <= safe) {
            return self.next_held();
        }
        None
    }

    /// The oldest held datagram, whatever the shards may still hand over.
    pub(crate) fn next_held(&mut self) -> Option<Captured> {
        self.held.pop().map(|Reverse(held)| held.captured)
    }
}

#[cfg(test)]
mod tests;
