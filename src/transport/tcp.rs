//! One TCP connection per client (CoAP over TCP and TLS, RFC 8323): non-blocking connects,
//! level-triggered epoll, and per-connection write buffers for what the socket does not take at
//! once. A TCP socket cannot be shared, so the open-files limit bounds the clients per process.
//!
//! Connections are keyed by the client's endpoint address from the layout (an identity here:
//! the socket binds only its IP, the kernel picks the port). Bytes read are reported like
//! datagrams ([`Datagram`], client = that endpoint, peer = the server); connections that end
//! without being asked to are reported by [`Transport::poll_link_ended`].

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::sys::stream::{connect_nonblocking, epoll_create, epoll_ctl, epoll_wait};
use super::{Datagram, LinkEnded, OutgoingDatagram, RecvBuffers, Transport, TransportError, sys};

/// A connection whose peer stops reading is closed once this much waits to be written.
const MAX_UNSENT: usize = 256 * 1024;
/// epoll events fetched per wait.
const EVENTS: usize = 256;
/// The first reads of a connection are acknowledged at once (`TCP_QUICKACK`): a server that
/// writes its TLS flight in several small writes without `TCP_NODELAY` (libcoap does) would
/// otherwise hold the rest until our delayed ACK, 40 ms later (measured: TLS setup p50 44 ms
/// against libcoap without, 3.6 ms with). Later reads carry answers, which our own writes ACK.
const QUICK_ACKED_READS: u8 = 8;

const READABLE: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
const WRITABLE: u32 = libc::EPOLLOUT as u32;

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Tells a stale epoll event (for an earlier connection of the slot) from a current one.
    generation: u32,
    connecting: bool,
    /// Unsent bytes, from `sent` on.
    unsent: Vec<u8>,
    sent: usize,
    /// Close once `unsent` is written (the client asked for the close).
    closing: bool,
    interest: u32,
    /// Reads so far, up to [`QUICK_ACKED_READS`].
    reads: u8,
}

impl Conn {
    fn has_unsent(&self) -> bool {
        self.sent < self.unsent.len()
    }

    /// Writes what it can; `Err` when the connection failed.
    fn write_unsent(&mut self) -> io::Result<()> {
        while self.has_unsent() {
            match self.stream.write(&self.unsent[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.unsent = Vec::new();
        self.sent = 0;
        Ok(())
    }
}

/// The TCP connections of one shard's clients.
pub struct TcpTransport {
    epoll: OwnedFd,
    endpoints: Vec<SocketAddr>,
    by_endpoint: HashMap<SocketAddr, u32>,
    conns: Vec<Option<Conn>>,
    /// Bind each connection to its endpoint's IP (else the kernel picks the source address).
    bind: bool,
    next_generation: u32,
    events: Vec<libc::epoll_event>,
    /// Events of the last wait not handled yet: (slot, generation, flags).
    pending: VecDeque<(u32, u32, u32)>,
    ended: VecDeque<LinkEnded>,
    open: usize,
}

impl TcpTransport {
    /// A transport for these client endpoints, no connection open yet. `bind`: source each
    /// client's connections from its endpoint's IP.
    pub fn open(endpoints: &[SocketAddr], bind: bool) -> Result<Self, TransportError> {
        let epoll = epoll_create().map_err(TransportError::Poll)?;
        let by_endpoint = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (*e, i as u32))
            .collect();
        Ok(TcpTransport {
            epoll,
            endpoints: endpoints.to_vec(),
            by_endpoint,
            conns: (0..endpoints.len()).map(|_| None).collect(),
            bind,
            next_generation: 0,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
            pending: VecDeque::new(),
            ended: VecDeque::new(),
            open: 0,
        })
    }

    /// Connections open now (connecting included).
    pub fn open_connections(&self) -> usize {
        self.open
    }

    fn slot(&self, client: SocketAddr) -> Option<usize> {
        self.by_endpoint.get(&client).map(|&s| s as usize)
    }

    /// Drops the connection of `slot`; reports it when the client did not ask for it.
    fn end(&mut self, slot: usize, error: Option<io::ErrorKind>, report: bool) {
        let Some(conn) = self.conns[slot].take() else {
            return;
        };
        self.open -= 1;
        let _ = epoll_ctl(
            self.epoll.as_fd(),
            libc::EPOLL_CTL_DEL,
            conn.stream.as_fd(),
            0,
            0,
        );
        if report {
            self.ended.push_back(LinkEnded {
                client: self.endpoints[slot],
                error,
            });
        }
    }

    /// Watches for writability while bytes wait (or a connect runs), not otherwise.
    fn update_interest(&mut self, slot: usize) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        let wanted = if conn.connecting || conn.has_unsent() {
            READABLE | WRITABLE
        } else {
            READABLE
        };
        if wanted != conn.interest {
            conn.interest = wanted;
            let data = (u64::from(conn.generation) << 32) | slot as u64;
            let _ = epoll_ctl(
                self.epoll.as_fd(),
                libc::EPOLL_CTL_MOD,
                conn.stream.as_fd(),
                wanted,
                data,
            );
        }
    }

    /// Writes what waits on `slot`; a close asked for happens once it is all out.
    fn flush_slot(&mut self, slot: usize) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if conn.connecting {
            return;
        }
        match conn.write_unsent() {
            Err(e) => {
                let report = !conn.closing;
                self.end(slot, Some(e.kind()), report);
            }
            Ok(()) if conn.closing && !conn.has_unsent() => self.end(slot, None, false),
            Ok(()) => self.update_interest(slot),
        }
    }

    /// One epoll event: a connect finished, the socket drained, or bytes (or the end) arrived.
    /// Returns false when `bufs` filled up before the connection was read dry.
    fn handle_event(&mut self, slot: usize, flags: u32, bufs: &mut RecvBuffers) -> bool {
        let Some(conn) = self.conns[slot].as_mut() else {
            return true;
        };
        if conn.connecting {
            if flags & (WRITABLE | libc::EPOLLERR as u32 | libc::EPOLLHUP as u32) == 0 {
                return true;
            }
            match conn.stream.take_error() {
                Ok(None) => {
                    conn.connecting = false;
                    let _ = conn.stream.set_nodelay(true);
                }
                Ok(Some(e)) | Err(e) => {
                    self.end(slot, Some(e.kind()), true);
                    return true;
                }
            }
        }
        self.flush_slot(slot);
        if flags & (READABLE | libc::EPOLLERR as u32 | libc::EPOLLHUP as u32) != 0 {
            return self.read(slot, bufs);
        }
        true
    }

    /// Reads `slot` until it would block, ends, or `bufs` is full (then returns false).
    fn read(&mut self, slot: usize, bufs: &mut RecvBuffers) -> bool {
        loop {
            let Some(conn) = self.conns[slot].as_mut() else {
                return true;
            };
            if bufs.is_full() {
                return false;
            }
            let (free, size) = bufs.free_slots();
            let result = conn.stream.read(&mut free[..size - 1]);
            let (peer, closing) = (conn.peer, conn.closing);
            match result {
                Ok(0) => {
                    self.end(slot, None, !closing);
                    return true;
                }
                // The client let go of this connection: what still comes is dropped.
                Ok(_) if closing => {}
                Ok(len) => {
                    if conn.reads < QUICK_ACKED_READS {
                        conn.reads += 1;
                        // Quick ACK mode is temporary: set again after each read.
                        let (level, option) = (libc::IPPROTO_TCP, libc::TCP_QUICKACK);
                        let _ = sys::set_int_opt(conn.stream.as_fd(), level, option, 1);
                    }
                    bufs.push(Datagram {
                        client: self.endpoints[slot],
                        peer,
                        len,
                        truncated: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end(slot, Some(e.kind()), !closing);
                    return true;
                }
            }
        }
    }
}

impl Transport for TcpTransport {
    /// Datagrams do not exist here: stream clients send with [`Transport::send_link`].
    fn send_batch(&mut self, batch: &[OutgoingDatagram<'_>]) -> Result<usize, TransportError> {
        match batch.first() {
            Some(o) => Err(TransportError::UnknownSource {
                index: 0,
                from: o.from,
            }),
            None => Ok(0),
        }
    }

    fn recv_batch(&mut self, bufs: &mut RecvBuffers) -> Result<usize, TransportError> {
        if self.pending.is_empty() {
            self.wait(Duration::ZERO)?;
        }
        let before = bufs.len();
        while let Some((slot, generation, flags)) = self.pending.pop_front() {
            let slot = slot as usize;
            let current = self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.generation == generation);
            if current && !self.handle_event(slot, flags, bufs) {
                self.pending.push_front((slot as u32, generation, flags));
                break;
            }
        }
        Ok(bufs.len() - before)
    }

    fn wait(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        if !self.pending.is_empty() {
            return Ok(true);
        }
        let n = epoll_wait(self.epoll.as_fd(), &mut self.events, timeout)
            .map_err(TransportError::Poll)?;
        for event in &self.events[..n] {
            let (data, flags) = (event.u64, event.events);
            self.pending
                .push_back((data as u32, (data >> 32) as u32, flags));
        }
        Ok(n > 0)
    }

    fn kernel_drops(&self) -> u64 {
        0
    }

    fn open_link(&mut self, client: SocketAddr, to: SocketAddr) {
        let Some(slot) = self.slot(client) else {
            return;
        };
        if let Some(old) = self.conns[slot].as_mut() {
            // A last try to get the old connection's goodbye out.
            let _ = old.write_unsent();
            self.end(slot, None, false);
        }
        let from = self.bind.then(|| client.ip());
        let stream = match connect_nonblocking(from, to) {
            Ok(stream) => stream,
            Err(e) => {
                self.ended.push_back(LinkEnded {
                    client,
                    error: Some(e.kind()),
                });
                return;
            }
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let data = (u64::from(generation) << 32) | slot as u64;
        let interest = READABLE | WRITABLE;
        if let Err(e) = epoll_ctl(
            self.epoll.as_fd(),
            libc::EPOLL_CTL_ADD,
            stream.as_fd(),
            interest,
            data,
        ) {
            self.ended.push_back(LinkEnded {
                client,
                error: Some(e.kind()),
            });
            return;
        }
        self.open += 1;
        self.conns[slot] = Some(Conn {
            stream,
            peer: to,
            generation,
            connecting: true,
            unsent: Vec::new(),
            sent: 0,
            closing: false,
            interest,
            reads: 0,
        });
    }

    fn send_link(&mut self, client: SocketAddr, bytes: &[u8]) -> bool {
        let Some(slot) = self.slot(client) else {
            return false;
        };
        let Some(conn) = self.conns[slot].as_mut().filter(|c| !c.closing) else {
            return false;
        };
        if conn.unsent.len() - conn.sent + bytes.len() > MAX_UNSENT {
            // The server does not read: give up on it rather than buffer without end.
            self.end(slot, Some(io::ErrorKind::WouldBlock), true);
            return false;
        }
        conn.unsent.extend_from_slice(bytes);
        self.flush_slot(slot);
        true
    }

    fn close_link(&mut self, client: SocketAddr) {
        let Some(slot) = self.slot(client) else {
            return;
        };
        if let Some(conn) = self.conns[slot].as_mut() {
            conn.closing = true;
            if conn.connecting || !conn.has_unsent() {
                self.end(slot, None, false);
            } else {
                self.flush_slot(slot);
            }
        }
    }

    fn poll_link_ended(&mut self) -> Option<LinkEnded> {
        self.ended.pop_front()
    }
}

#[cfg(test)]
mod tests;
