//! Transports: move datagrams between many simulated clients and the server, with no knowledge of
//! LWM2M. Three kinds share one interface ([`Transport`]):
//!
//! - [`SharedTransport`]: a few UDP sockets, one per source port, each serving every client whose
//!   port it is on any local address, IPv4 or IPv6 (packet info picks the source address on send
//!   and reports the destination on receive). With many local addresses (127.0.0.0/8, a routed
//!   IPv6 prefix) a handful of sockets serve any number of clients.
//! - [`PerClientTransport`]: one socket per client, for targets where shared sockets do not fit.
//! - [`TcpTransport`]: one TCP connection per client (CoAP over TCP and TLS), which the clients
//!   open and close through the `*_link` methods.
//!
//! All are nonblocking and batch-oriented; after construction they do not allocate.
//! [`addresses`] decides which (address, port) each client uses; [`impairment`] emulates a lossy,
//! slow or rebinding link (sans-IO, applied by the engine).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub mod addresses;
pub mod impairment;
pub mod per_client;
mod poll;
pub mod shared;
mod sys;
pub mod tcp;

pub use addresses::{AddressPlan, AddressSet, PlanError, PortRange};
pub use per_client::{FdLimit, PerClientTransport, check_fd_budget, reserve_files};
pub use poll::Poller;
pub use shared::{BufferSizes, SharedConfig, SharedSocket, SharedTransport, raise_buffers};
pub use tcp::TcpTransport;

/// Metadata of one received datagram; its bytes are in the [`RecvBuffers`] slot of the same index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// The local (client) endpoint the datagram was addressed to.
    pub client: SocketAddr,
    /// Who sent it (the server).
    pub peer: SocketAddr,
    pub len: usize,
    /// The datagram was longer than the slot and was cut.
    pub truncated: bool,
}

/// A datagram to send from a client endpoint.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingDatagram<'a> {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: &'a [u8],
}

/// A stream transport's report that a client's connection ended without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkEnded {
    pub client: SocketAddr,
    /// `None`: the peer closed its side (end of stream).
    pub error: Option<io::ErrorKind>,
}

/// A reusable pool of fixed-size receive slots, filled by `recv_batch` and emptied by `clear`.
pub struct RecvBuffers {
    data: Vec<u8>,
    slot: usize,
    meta: Vec<Datagram>,
}

impl RecvBuffers {
    /// `batch` slots of `max_datagram` bytes.
    pub fn new(batch: usize, max_datagram: usize) -> Self {
        let batch = batch.max(1);
        // One spare byte so a per-client receive can tell a full datagram from a cut one.
        let slot = max_datagram.max(1) + 1;
        Self {
            data: vec![0; batch * slot],
            slot,
            meta: Vec::with_capacity(batch),
        }
    }

    pub fn len(&self) -> usize {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.data.len() / self.slot
    }

    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    pub fn clear(&mut self) {
        self.meta.clear();
    }

    /// The `i`-th received datagram and its bytes.
    pub fn get(&self, i: usize) -> Option<(Datagram, &[u8])> {
        let d = *self.meta.get(i)?;
        let start = i * self.slot;
        Some((d, &self.data[start..start + d.len.min(self.slot)]))
    }

    pub fn iter(&self) -> impl Iterator<Item = (Datagram, &[u8])> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Appends a datagram that arrived some other way than a socket (a simulated network), cut
    /// as a socket would cut it; false when every slot is taken.
    pub fn push_received(&mut self, client: SocketAddr, peer: SocketAddr, bytes: &[u8]) -> bool {
        if self.is_full() {
            return false;
        }
        let (free, slot) = self.free_slots();
        let len = bytes.len().min(slot);
        free[..len].copy_from_slice(&bytes[..len]);
        self.push(Datagram {
            client,
            peer,
            len,
            truncated: bytes.len() >= slot,
        });
        true
    }

    /// The free slots as one byte range, and the slot size.
    fn free_slots(&mut self) -> (&mut [u8], usize) {
        let start = self.meta.len() * self.slot;
        (&mut self.data[start..], self.slot)
    }

    /// Records the datagram written into the next free slot.
    fn push(&mut self, d: Datagram) {
        debug_assert!(!self.is_full());
        self.meta.push(d);
    }
}

/// Errors of both transports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("cannot bind a UDP socket to {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot set {option} on the socket bound to {addr}: {source}")]
    SocketOption {
        option: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("datagram {index} of the batch ({from} -> {to}) was not sent: {source}")]
    Send {
        index: usize,
        from: SocketAddr,
        to: SocketAddr,
        source: io::Error,
    },
    #[error(
        "datagram {index} of the batch has source {from}, which no socket of this transport serves"
    )]
    UnknownSource { index: usize, from: SocketAddr },
    #[error("{addr} is not of the family of the shared socket on {local}")]
    WrongFamily { addr: SocketAddr, local: SocketAddr },
    #[error("receiving on {addr} failed: {source}")]
    Recv { addr: SocketAddr, source: io::Error },
    #[error("waiting for sockets failed: {0}")]
    Poll(io::Error),
    #[error(
        "{clients} per-client sockets need about {needed} open files but the open-files limit \
         (RLIMIT_NOFILE) is {soft} (hard limit {hard}): use the shared transport, which serves \
         many clients per socket, or run fewer clients"
    )]
    TooManyFiles {
        clients: u64,
        needed: u64,
        soft: u64,
        hard: u64,
    },
    #[error("cannot read or raise the open-files limit: {0}")]
    FdLimit(io::Error),
}

/// What the engine needs from a transport.
pub trait Transport {
    /// Sends `batch` in order without blocking. `Ok(n)` with `n < batch.len()` means the socket
    /// buffer is full: retry `batch[n..]` later. `Err(Send { index, .. })` means `batch[..index]`
    /// went out and `batch[index]` failed; the rest was not tried.
    fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError>;

    /// Appends received datagrams to `bufs` until it is full or nothing is queued; returns how
    /// many were added. Never blocks.
    fn recv_batch(&mut self, bufs: &mut RecvBuffers) -> Result<usize, TransportError>;

    /// Blocks up to `timeout` until a socket is readable; returns whether one is.
    fn wait(&mut self, timeout: Duration) -> Result<bool, TransportError>;

    /// Datagrams the kernel dropped because a receive buffer was full, as far as reported.
    fn kernel_drops(&self) -> u64;

    /// Moves `client` to a new source address, as a NAT rebinding does, and returns it: shared
    /// sockets take `spare` (an address of the plan no client has, on the client's port);
    /// per-client sockets bind a new socket on another port of the same address, and what
    /// arrives for the old one is lost with it. `None`: the client stays where it is.
    fn rebind(&mut self, _client: SocketAddr, _spare: Option<SocketAddr>) -> Option<SocketAddr> {
        None
    }

    /// Stream transports: opens a connection from `client` to `to` (closing one it had). A
    /// failure comes back from [`Transport::poll_link_ended`]. Datagram transports have none.
    fn open_link(&mut self, _client: SocketAddr, _to: SocketAddr) {}

    /// Stream transports: writes `bytes` on `client`'s connection, in order (buffered while it
    /// connects or the socket is full). False when there is no connection to write on.
    fn send_link(&mut self, _client: SocketAddr, _bytes: &[u8]) -> bool {
        false
    }

    /// Stream transports: closes `client`'s connection once what was written is out.
    fn close_link(&mut self, _client: SocketAddr) {}

    /// Stream transports: a connection that ended without being asked to (refused, reset, the
    /// peer closed it).
    fn poll_link_ended(&mut self) -> Option<LinkEnded> {
        None
    }
}

/// A transport chosen at run time (the engine's test seam).
impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError> {
        (**self).send_batch(batch)
    }
    fn recv_batch(&mut self, bufs: &mut RecvBuffers) -> Result<usize, TransportError> {
        (**self).recv_batch(bufs)
    }
    fn wait(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        (**self).wait(timeout)
    }
    fn kernel_drops(&self) -> u64 {
        (**self).kernel_drops()
    }
    fn open_link(&mut self, client: SocketAddr, to: SocketAddr) {
        (**self).open_link(client, to);
    }
    fn send_link(&mut self, client: SocketAddr, bytes: &[u8]) -> bool {
        (**self).send_link(client, bytes)
    }
    fn close_link(&mut self, client: SocketAddr) {
        (**self).close_link(client);
    }
    fn poll_link_ended(&mut self) -> Option<LinkEnded> {
        (**self).poll_link_ended()
    }
}

#[cfg(test)]
mod tests;
