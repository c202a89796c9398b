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
/// Peers in one generation of [`AnswerFrom`]: at most twice this many are remembered.
const ANSWER_FROM_PEERS: usize = 262_144;
/// How long one generation of [`AnswerFrom`] lasts at most.
const ANSWER_FROM_AGE: Duration = Duration::from_secs(600);

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

    fn spawn(bind: SocketAddr, mut server: impl Served) -> io::Result<Runner> {
        let (socket, local_addr) = ServerSocket::bind(bind)?;
        server.bound(local_addr, false);
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
    pub fn stop(self) -> io::Result<ServerStats> {
        match self.finish() {
            (stats, None) => Ok(stats),
            (_, Some(e)) => Err(e),
        }
    }

    /// Stops the thread: its last statistics, and the error that ended it early if one did.
    pub fn finish(mut self) -> (ServerStats, Option<io::Error>) {
        let error = self.shut_down().err();
        (self.stats(), error)
    }

    /// Whether the thread has ended (a socket error, or a panic) without being asked to.
    pub fn has_died(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && self.thread.as_ref().is_some_and(JoinHandle::is_finished)
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

/// Serves until asked to stop or a socket error; the last statistics are published either way.
fn serve(
    mut socket: ServerSocket,
    mut server: impl Served,
    shared: &Mutex<ServerStats>,
    stop: &AtomicBool,
) -> io::Result<ServerStats> {
    let mut io = IoStats::default();
    let ended = serve_until_stopped(&mut socket, &mut server, &mut io, shared, stop);
    let mut stats = server.snapshot();
    stats.io = io;
    *shared.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    ended.map(|()| stats)
}

fn serve_until_stopped(
    socket: &mut ServerSocket,
    server: &mut impl Served,
    io: &mut IoStats,
    shared: &Mutex<ServerStats>,
    stop: &AtomicBool,
) -> io::Result<()> {
    let origin = std::time::Instant::now();
    let clock =
        || Instant::from_micros(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX));
    let mut poller = Poller::new();
    poller.add(socket.fd());
    let mut outgoing: VecDeque<(SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut published = clock();
    while !stop.load(Ordering::Relaxed) {
        let now = clock();
        let received = socket.receive(now, io, |from, bytes| {
            server.handle_datagram(now, from, bytes);
        })?;
        if server.poll_timeout().is_some_and(|at| at <= now) {
            server.handle_timeout(now);
        }
        outgoing.extend(std::iter::from_fn(|| server.poll_transmit()));
        socket.send(&mut outgoing, io);
        if outgoing.len() > MAX_QUEUED {
            // The socket has stayed full: the oldest go (CoAP retransmits what matters).
            let excess = outgoing.len() - MAX_QUEUED;
            outgoing.drain(..excess);
            io.send_dropped += excess as u64;
        }
        if now.saturating_since(published) >= STATS_INTERVAL {
            let mut stats = server.snapshot();
            stats.io = *io;
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
    Ok(())
}

/// The server's socket: batched system calls (recvmmsg/sendmmsg), IPv4 or IPv6.
struct ServerSocket {
    socket: Box<SharedSocket>,
    bufs: RecvBuffers,
    /// Bound to the wildcard address: the local address each peer wrote to, to answer from it
    /// (the kernel's pick may differ on a host with several addresses).
    answer_from: Option<AnswerFrom>,
}

/// The local address each peer last wrote to, bounded however many peers write: two
/// generations, the current one becoming the previous (and the previous forgotten) once it
/// holds [`ANSWER_FROM_PEERS`] or is [`ANSWER_FROM_AGE`] old. A peer forgotten is answered from
/// the kernel's pick of source address until it writes again.
#[derive(Default)]
struct AnswerFrom {
    current: HashMap<SocketAddr, SocketAddr>,
    previous: HashMap<SocketAddr, SocketAddr>,
    started: Instant,
}

impl AnswerFrom {
    fn insert(&mut self, now: Instant, peer: SocketAddr, local: SocketAddr) {
        let full = self.current.len() >= ANSWER_FROM_PEERS && !self.current.contains_key(&peer);
        if full || now.saturating_since(self.started) >= ANSWER_FROM_AGE {
            self.previous = std::mem::take(&mut self.current);
            self.started = now;
        }
        self.current.insert(peer, local);
    }

    fn get(&self, peer: &SocketAddr) -> Option<SocketAddr> {
        self.current
            .get(peer)
            .or_else(|| self.previous.get(peer))
            .copied()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
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
            answer_from: addr.ip().is_unspecified().then(AnswerFrom::default),
        };
        Ok((server, local))
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Hands up to `BATCH` waiting datagrams to `each`; returns how many arrived.
    fn receive(
        &mut self,
        now: Instant,
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
                map.insert(now, d.peer, d.client);
            }
            each(d.peer, bytes);
        }
        Ok(n)
    }

    /// Sends from the front of `out` what the socket takes; a datagram the kernel refuses, or
    /// addressed where this socket cannot send, is dropped and counted (CoAP retransmits, and
    /// one peer's bad address must not stop the server), the rest waits when the buffer is full.
    fn send(&mut self, out: &mut VecDeque<(SocketAddr, Vec<u8>)>, io: &mut IoStats) {
        let bound = self.socket.local_addr();
        while !out.is_empty() {
            let end = out.len().min(BATCH);
            let mut batch: Vec<OutgoingDatagram<'_>> = Vec::with_capacity(end);
            for (to, payload) in out.range(..end) {
                let from = self
                    .answer_from
                    .as_ref()
                    .and_then(|m| m.get(to))
                    .unwrap_or(bound);
                match (in_family(bound, from), in_family(bound, *to)) {
                    (Some(from), Some(to)) => batch.push(OutgoingDatagram { from, to, payload }),
                    // Sent up to here; an unfit one at the front is dropped below.
                    _ => break,
                }
            }
            if batch.is_empty() {
                io.send_errors += 1;
                drop(batch);
                out.pop_front();
                continue;
            }
            let tried = batch.len();
            let (gone, full) = match self.socket.send_batch(&batch) {
                Ok(sent) => (sent, sent < tried),
                Err(TransportError::Send { index, .. }) => {
                    io.send_errors += 1;
                    (index + 1, false)
                }
                Err(_) => {
                    // Not the kernel's refusal, and nothing sent: the first goes.
                    io.send_errors += 1;
                    (1, false)
                }
            };
            drop(batch);
            out.drain(..gone);
            if full {
                break;
            }
        }
    }
}

/// `addr` as a socket bound to `bound` sends to or from it: an IPv4 address on an IPv6 socket
/// as IPv4-mapped, an IPv4-mapped one on an IPv4 socket as IPv4; `None` when it cannot be.
fn in_family(bound: SocketAddr, addr: SocketAddr) -> Option<SocketAddr> {
    match (bound, addr) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            Some(addr)
        }
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            Some(SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()))
        }
        (SocketAddr::V4(_), SocketAddr::V6(v6)) => v6
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(ip.into(), v6.port())),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::from((n.to_be_bytes(), 5683))
    }

    #[test]
    fn answer_from_stays_bounded_and_forgets_old_peers() {
        let mut map = AnswerFrom::default();
        let local = addr(1);
        let now = Instant::ZERO;
        for n in 0..(3 * ANSWER_FROM_PEERS as u32) {
            map.insert(now, addr(n), local);
        }
        assert!(map.len() <= 2 * ANSWER_FROM_PEERS, "{}", map.len());
        assert_eq!(map.get(&addr(0)), None);
        assert_eq!(
            map.get(&addr(3 * ANSWER_FROM_PEERS as u32 - 1)),
            Some(local)
        );
        // Two generations later by age alone, a peer not heard from is forgotten.
        let later = now + ANSWER_FROM_AGE;
        map.insert(later, addr(1 << 30), local);
        map.insert(later + ANSWER_FROM_AGE, addr(1 << 31), local);
        assert_eq!(map.get(&addr(3 * ANSWER_FROM_PEERS as u32 - 1)), None);
        assert_eq!(map.get(&addr(1 << 30)), Some(local));
    }

    /// Counts datagrams, and panics on one that says so.
    struct Fragile(ServerStats);

    impl Served for Fragile {
        fn handle_datagram(&mut self, _: Instant, _: SocketAddr, bytes: &[u8]) {
            self.0.datagrams_received += 1;
            assert_ne!(bytes, b"die", "told to");
        }
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn snapshot(&self) -> ServerStats {
            self.0
        }
    }

    /// A thread that ends on its own is seen, and its stop says why, with its last counts.
    #[test]
    fn a_dead_server_thread_is_reported() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let runner = Runner::serve(loopback, Fragile(ServerStats::default()), None).unwrap();
        let socket = std::net::UdpSocket::bind(loopback).unwrap();
        socket.send_to(b"hello", runner.local_addr()).unwrap();
        let started = std::time::Instant::now();
        while runner.stats().datagrams_received == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no datagram seen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!runner.has_died());
        socket.send_to(b"die", runner.local_addr()).unwrap();
        while !runner.has_died() {
            assert!(started.elapsed() < Duration::from_secs(10), "still running");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (stats, error) = runner.finish();
        assert_eq!(stats.datagrams_received, 1);
        assert!(error.is_some_and(|e| e.to_string().contains("panicked")));
    }

    #[test]
    fn addresses_are_put_in_the_socket_family() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 9));
        let v6 = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 9));
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9".parse().unwrap();
        assert_eq!(in_family(v6, v4), Some(mapped));
        assert_eq!(in_family(v4, mapped), Some(v4));
        assert_eq!(in_family(v4, v6), None);
        assert_eq!(in_family(v6, v6), Some(v6));
    }

    /// A datagram the socket cannot send is dropped and counted; the server keeps serving.
    #[test]
    fn an_unsendable_datagram_is_counted_not_fatal() {
        let (mut socket, _) = ServerSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let v6 = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 9));
        let mut out = VecDeque::from([(v6, vec![1]), (sink.local_addr().unwrap(), vec![2])]);
        let mut io = IoStats::default();
        socket.send(&mut out, &mut io);
        assert!(out.is_empty());
        assert_eq!(io.send_errors, 1);
        let mut buf = [0; 8];
        sink.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(sink.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 2);
    }
}
