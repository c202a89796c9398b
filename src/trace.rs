//! `--trace`: every datagram of the clients whose endpoint name matches a pattern, written as a
//! pcap file ([`pcap`]) or as a readable message log on stderr ([`message_log`]).
//!
//! The engine's shards decide once per client start whether it is traced
//! ([`ShardTrace::client_started`]), copy the traced clients' datagrams into a local buffer and
//! hand it over a bounded channel a few times a second ([`ShardTrace::flush`]); one writer thread
//! ([`TraceWriter`]) formats and writes. A shard never waits on the writer: when the channel is
//! full it keeps its buffer, up to [`MAX_PENDING`] datagrams, and counts what it must drop.

pub mod message_log;
pub mod pcap;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::clock::Instant;
use crate::model::{ResourceSpec, Schema};

/// Batches the channel holds before a shard keeps its datagrams to itself.
const CHANNEL_BATCHES: usize = 256;
/// Datagrams a shard holds while the writer is behind; beyond, they are dropped and counted.
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
    sender: SyncSender<Vec<Captured>>,
    shared: Arc<TapShared>,
}

#[derive(Debug, Default)]
struct TapShared {
    /// The wall-clock time of the engine's `Instant::ZERO`, set once the load starts.
    origin: OnceLock<SystemTime>,
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
    /// Traced clients by local index, with their endpoint name.
    traced: HashMap<u32, Arc<str>>,
    pending: Vec<Captured>,
}

impl ShardTrace {
    pub fn new(tap: TraceTap) -> Self {
        ShardTrace {
            tap,
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
            self.flush();
        }
    }

    /// Hands what was captured to the writer, unless its channel is full (then it is kept for
    /// the next time). Never blocks.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        match self.tap.sender.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch)) => self.pending = batch,
            Err(TrySendError::Disconnected(batch)) => {
                // The writer failed (it said why): nothing more can be written.
                self.tap
                    .shared
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for ShardTrace {
    /// The shard's end: what is left goes to the writer, waiting for room if it must.
    fn drop(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        if batch.is_empty() {
            return;
        }
        if let Err(lost) = self.tap.sender.send(batch) {
            let lost = lost.0.len() as u64;
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
    receiver: &Receiver<Vec<Captured>>,
    output: &mut dyn Output,
    shared: &TapShared,
) -> io::Result<u64> {
    let mut written = 0;
    for batch in receiver {
        let origin = shared
            .origin
            .get()
            .copied()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for captured in &batch {
            let wall = origin + Duration::from_micros(captured.at.as_micros());
            output.write(captured, wall)?;
            written += 1;
        }
        // Flushed per batch: a few times a second while traced clients talk.
        output.flush()?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
