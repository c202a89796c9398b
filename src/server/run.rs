//! Drives a [`Server`] over one UDP socket on its own thread, with the real monotonic clock.
//!
//! The thread reads a batch of datagrams (one recvmmsg on IPv4), feeds them in, runs due timers, sends everything the
//! server queued, then waits in poll(2) until the next deadline or datagram. Statistics are
//! copied to a shared snapshot at most every [`STATS_INTERVAL`], never per datagram.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{DtlsServerConfig, IoStats, SecureServer, Served, Server, ServerConfig, ServerStats};
use crate::clock::Instant;
use crate::transport::{
    OutgoingDatagram, Poller, RecvBuffers, SharedConfig, SharedSocket, TransportError,
};

/// How often the shared statistics snapshot is refreshed.
pub const STATS_INTERVAL: Duration = Duration::from_millis(100);
/// Datagrams read per turn before timers and sends get their turn.
const BATCH: usize = 64;
/// Longest wait in poll(2), so a stop request is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Socket buffer asked for (the kernel may grant less).
const SOCKET_BUFFER: usize = 8 << 20;
/// Datagrams waiting for room in the send buffer, at most.
const MAX_QUEUED: usize = 65_536;
/// Larger than any CoAP datagram over UDP we accept (RFC 7252 4.6 suggests 1152).
const MAX_DATAGRAM: usize = 2048;

/// The embedded server running on a thread.
#[derive(Debug)]
pub struct Runner {
    local_addr: SocketAddr,
    stats: Arc<Mutex<ServerStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<ServerStats>>>,
}

impl Runner {
    /// Binds `bind` (port 0 picks a free one) and starts serving plain CoAP.
    pub fn start(bind: SocketAddr, config: ServerConfig, seed: u64) -> io::Result<Runner> {
        Runner::start_with(bind, config, seed, None)
    }

    /// Binds `bind` and starts serving, over DTLS with pre-shared keys when `dtls` is given.
    pub fn start_with(
        bind: SocketAddr,
        config: ServerConfig,
        seed: u64,
        dtls: Option<&DtlsServerConfig>,
    ) -> io::Result<Runner> {
        Runner::serve(bind, Server::new(config, seed), dtls)
    }

    /// Binds `bind` and serves `server` (the LWM2M server or the bootstrap server), over DTLS
    /// with pre-shared keys when `dtls` is given.
    pub fn serve(
        bind: SocketAddr,
        server: impl Served,
        dtls: Option<&DtlsServerConfig>,
    ) -> io::Result<Runner> {
        match dtls {
            None => Runner::spawn(bind, server),
            Some(dtls) => Runner::spawn(bind, SecureServer::new(server, dtls)),
        }
    }

    fn spawn(bind: SocketAddr, server: impl Served) -> io::Result<Runner> {
        let (socket, local_addr) = ServerSocket::bind(bind)?;
        let stats = Arc::new(Mutex::new(ServerStats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("lwm2m-server".into())
            .spawn({
                let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
                move || serve(socket, server, &stats, &stop)
            })?;
        Ok(Runner {
            local_addr,
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// Serves on a free port of 127.0.0.1.
    pub fn start_loopback(config: ServerConfig, seed: u64) -> io::Result<Runner> {
        Runner::start(SocketAddr::from(([127, 0, 0, 1], 0)), config, seed)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest snapshot (at most [`STATS_INTERVAL`] old while the thread runs).
    pub fn stats(&self) -> ServerStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the thread and returns the final statistics, or the socket error that ended it.
    pub fn stop(mut self) -> io::Result<ServerStats> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> io::Result<ServerStats> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io::Error::other("server thread panicked"))?,
            None => Ok(self.stats()),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Errors were the caller's to collect with `stop`.
        let _ = self.shut_down();
    }
}

impl fmt::Display for Runner {
    /// One status line: `127.0.0.1:5683: registered 1000, registers 1000, updates 120, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.local_addr, self.stats())
    }
}

fn serve(
    mut socket: ServerSocket,
    mut server: impl Served,
    shared: &Mutex<ServerStats>,
    stop: &AtomicBool,
) -> io::Result<ServerStats> {
    let origin = std::time::Instant::now();
    let clock =
        || Instant::from_micros(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX));
    let mut poller = Poller::new();
    poller.add(socket.fd());
    let mut outgoing: VecDeque<(SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut io = IoStats::default();
    let mut published = clock();
    while !stop.load(Ordering::Relaxed) {
        let now = clock();
        let received = socket.receive(&mut io, |from, bytes| {
            server.handle_datagram(now, from, bytes);
        })?;
        if server.poll_timeout().is_some_and(|at| at <= now) {
            server.handle_timeout(now);
        }
        outgoing.extend(std::iter::from_fn(|| server.poll_transmit()));
        socket.send(&mut outgoing, &mut io)?;
        if outgoing.len() > MAX_QUEUED {
            // The socket has stayed full: the oldest go (CoAP retransmits what matters).
            let excess = outgoing.len() - MAX_QUEUED;
            outgoing.drain(..excess);
            io.send_dropped += excess as u64;
        }
        if now.saturating_since(published) >= STATS_INTERVAL {
            let mut stats = server.snapshot();
            stats.io = io;
            *shared.lock().unwrap_or_else(PoisonError::into_inner) = stats;
            published = now;
        }
        if received < BATCH {
            let mut wait = server
                .poll_timeout()
                .map_or(MAX_WAIT, |at| at.saturating_since(clock()).min(MAX_WAIT));
            if !outgoing.is_empty() {
                // Waiting for room in the send buffer.
                wait = wait.min(Duration::from_millis(1));
            }
            poller.wait(wait)?;
        }
    }
    let mut stats = server.snapshot();
    stats.io = io;
    *shared.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    Ok(stats)
}

/// The server's socket: batched system calls (recvmmsg/sendmmsg), IPv4 or IPv6.
struct ServerSocket {
    socket: Box<SharedSocket>,
    bufs: RecvBuffers,
    /// Bound to the wildcard address: the local address each peer wrote to, to answer from it
    /// (the kernel's pick may differ on a host with several addresses).
    answer_from: Option<HashMap<SocketAddr, SocketAddr>>,
}

impl ServerSocket {
    fn bind(addr: SocketAddr) -> io::Result<(ServerSocket, SocketAddr)> {
        let config = SharedConfig {
            batch: BATCH,
            // The default 212 KB buffer drops a registration storm's datagrams.
            buffer_bytes: SOCKET_BUFFER,
        };
        let socket = Box::new(SharedSocket::bind(addr, &config).map_err(as_io)?);
        let local = socket.local_addr();
        let server = ServerSocket {
            socket,
            bufs: RecvBuffers::new(BATCH, MAX_DATAGRAM),
            answer_from: addr.ip().is_unspecified().then(HashMap::new),
        };
        Ok((server, local))
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Hands up to `BATCH` waiting datagrams to `each`; returns how many arrived.
    fn receive(
        &mut self,
        io: &mut IoStats,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        self.bufs.clear();
        let n = match self.socket.recv_batch(&mut self.bufs) {
            Ok(n) => n,
            Err(TransportError::Recv { source, .. }) if is_transient(&source) => 0,
            Err(e) => return Err(as_io(e)),
        };
        for (d, bytes) in self.bufs.iter() {
            if d.truncated {
                io.truncated += 1;
                continue;
            }
            if let Some(map) = self.answer_from.as_mut() {
                map.insert(d.peer, d.client);
            }
            each(d.peer, bytes);
        }
        Ok(n)
    }

    /// Sends from the front of `out` what the socket takes; a datagram the kernel refuses is
    /// dropped and counted (CoAP retransmits), the rest waits when the buffer is full.
    fn send(
        &mut self,
        out: &mut VecDeque<(SocketAddr, Vec<u8>)>,
        io: &mut IoStats,
    ) -> io::Result<()> {
        let bound = self.socket.local_addr();
        while !out.is_empty() {
            let end = out.len().min(BATCH);
            let batch: Vec<OutgoingDatagram<'_>> = out
                .range(..end)
                .map(|(to, payload)| OutgoingDatagram {
                    from: self
                        .answer_from
                        .as_ref()
                        .and_then(|m| m.get(to).copied())
                        .unwrap_or(bound),
                    to: *to,
                    payload,
                })
                .collect();
            let (gone, full) = match self.socket.send_batch(&batch) {
                Ok(sent) => (sent, sent < end),
                Err(TransportError::Send { index, .. }) => {
                    io.send_dropped += 1;
                    (index + 1, false)
                }
                Err(e) => return Err(as_io(e)),
            };
            drop(batch);
            out.drain(..gone);
            if full {
                break;
            }
        }
        Ok(())
    }
}

/// Keeps the OS error kind (`AddrInUse` stays recognisable).
fn as_io(e: TransportError) -> io::Error {
    let kind = match &e {
        TransportError::Bind { source, .. }
        | TransportError::SocketOption { source, .. }
        | TransportError::Send { source, .. }
        | TransportError::Recv { source, .. } => source.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
