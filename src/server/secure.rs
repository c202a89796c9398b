//! DTLS 1.2 (pre-shared keys, or certificates) in front of the sans-IO [`Server`]: one server-side
//! [`Session`] per peer address, opened once its `ClientHello` has come back with a valid cookie,
//! ended by `close_notify`, an alert, a failed handshake or an idle timeout. Records in are
//! decrypted into [`Server::handle_datagram`]; what [`Server::poll_transmit`] has for a peer is
//! encrypted on its session. Sans-IO too: bytes and time in, bytes and a deadline out.
//!
//! The cookie exchange (RFC 6347 §4.2.1) is dimpl's: each handshake makes its own secret, so the
//! handshake that sent the `HelloVerifyRequest` must be there when the cookie comes back. Until
//! it does, the handshake is *unverified*: kept apart from the sessions, at most
//! [`MAX_UNVERIFIED`] of them (the oldest goes first), for [`UNVERIFIED_LIFETIME`] at most, and
//! never touching an established session of the same address. A flood of `ClientHello`s from
//! spoofed addresses thus opens no session and holds a bounded amount of memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dimpl::DtlsCertificate;

use super::{DtlsStats, Served, Server, ServerStats};
use crate::clock::Instant;
use crate::security::dtls::certificate_config;
use crate::security::dtls::{
    DtlsParams, Failure, PeerCheck, ServerKeys, Session, is_client_hello, is_hello_verify_request,
    server_config,
};
use crate::security::x509::PeerVerifier;

/// How the server authenticates, and authenticates clients.
#[derive(Clone, Debug)]
pub enum ServerAuth {
    /// PSK: each client's key by its identity.
    Psk(ServerKeys),
    /// Certificates: ours, and how a client's is checked. Validity is wall-clock time:
    /// `unix_origin` is the Unix time (seconds) at the clock's zero.
    Certificate {
        certificate: DtlsCertificate,
        clients: Arc<PeerVerifier>,
        unix_origin: i64,
    },
}

/// How the DTLS layer authenticates and paces handshakes.
#[derive(Clone, Debug)]
pub struct DtlsServerConfig {
    pub auth: ServerAuth,
    /// Flight retransmissions; a handshake not done within `handshake_timeout` is dropped.
    pub params: DtlsParams,
    /// A connected session that saw no datagram either way for this long is dropped: it must
    /// outlast the clients' update interval, or their next Update finds no session.
    pub idle_timeout: Duration,
    /// Sessions (handshakes under way included) at most: a `ClientHello` beyond is dropped.
    pub max_sessions: usize,
}

/// [`DtlsServerConfig::max_sessions`] unless told otherwise: each session holds a few KB of
/// dimpl state and buffers.
pub const DEFAULT_MAX_DTLS_SESSIONS: usize = 100_000;

impl DtlsServerConfig {
    /// PSK.
    pub fn new(keys: ServerKeys) -> Self {
        DtlsServerConfig::with_auth(ServerAuth::Psk(keys))
    }

    pub fn with_auth(auth: ServerAuth) -> Self {
        DtlsServerConfig {
            auth,
            params: DtlsParams::default(),
            idle_timeout: Duration::from_secs(3600),
            max_sessions: DEFAULT_MAX_DTLS_SESSIONS,
        }
    }
}

/// Handshakes waiting for their cookie, at most; beyond, the oldest is dropped.
pub const MAX_UNVERIFIED: usize = 1024;
/// How long a handshake may wait for its cookie: a client answers a `HelloVerifyRequest` within
/// a round trip, or retransmits its `ClientHello` within its first flight timeouts.
pub const UNVERIFIED_LIFETIME: Duration = Duration::from_secs(10);

/// A handshake that sent its `HelloVerifyRequest` and waits for the cookie.
struct Unverified {
    session: Box<Session>,
    since: Instant,
}

/// What each new session needs besides the shared dimpl configuration.
enum SessionAuth {
    Psk,
    Certificate {
        certificate: DtlsCertificate,
        check: PeerCheck,
    },
}

struct Peer {
    /// Boxed: ~3.4 KB inline would sit in every bucket of the map, used or not.
    session: Box<Session>,
    last_active: Instant,
    /// The deadline this peer has in the heap; other entries for it are stale.
    scheduled: Option<Instant>,
}

/// The embedded server (or bootstrap server) over DTLS.
pub struct SecureServer<S = Server> {
    inner: S,
    dimpl: Arc<dimpl::Config>,
    auth: SessionAuth,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    max_sessions: usize,
    peers: HashMap<SocketAddr, Peer>,
    unverified: HashMap<SocketAddr, Unverified>,
    /// When each unverified handshake began, oldest first (entries whose handshake is gone, or
    /// began at another time, are stale).
    unverified_order: VecDeque<(Instant, SocketAddr)>,
    /// Per-peer deadlines, invalidated lazily (see [`Peer::scheduled`]).
    timers: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    stats: DtlsStats,
}

impl<S> std::fmt::Debug for SecureServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureServer")
            .field("sessions", &self.peers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<S: Served> SecureServer<S> {
    pub fn new(inner: S, config: &DtlsServerConfig) -> Self {
        let (dimpl, auth) = match &config.auth {
            ServerAuth::Psk(keys) => (server_config(keys, &config.params), SessionAuth::Psk),
            ServerAuth::Certificate {
                certificate,
                clients,
                unix_origin,
            } => (
                certificate_config(&config.params, true),
                SessionAuth::Certificate {
                    certificate: certificate.clone(),
                    check: PeerCheck {
                        verifier: Arc::clone(clients),
                        unix_origin: *unix_origin,
                    },
                },
            ),
        };
        SecureServer {
            inner,
            dimpl,
            auth,
            handshake_timeout: config.params.handshake_timeout,
            idle_timeout: config.idle_timeout,
            max_sessions: config.max_sessions,
            peers: HashMap::new(),
            unverified: HashMap::new(),
            unverified_order: VecDeque::new(),
            timers: BinaryHeap::new(),
            transmit: VecDeque::new(),
            stats: DtlsStats::default(),
        }
    }

    /// The server behind the DTLS layer.
    pub fn server(&self) -> &S {
        &self.inner
    }

    /// The server's counts with the DTLS layer's.
    pub fn stats(&self) -> ServerStats {
        let mut stats = self.inner.snapshot();
        stats.dtls = self.stats;
        stats
    }

    /// Whether `peer` has a session with a completed handshake.
    pub fn is_connected(&self, peer: SocketAddr) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| p.session.is_connected())
    }

    /// Handshakes waiting for their cookie now.
    pub fn unverified(&self) -> usize {
        self.unverified.len()
    }

    /// A datagram (DTLS records) from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let hello = is_client_hello(bytes);
        let handshaking = self
            .peers
            .get(&from)
            .is_some_and(|p| !p.session.is_connected());
        if hello && !handshaking {
            // A new peer, or an established one starting over (it restarted, or gave up on
            // us): its cookie first, the session it has stays until then.
            self.verify(now, from, bytes);
            self.pump(now);
            return;
        }
        let Some(peer) = self.peers.get_mut(&from) else {
            // Records for a session we do not have (RFC 6347 §4.1.2.7: silently dropped).
            self.stats.no_session += 1;
            return;
        };
        peer.last_active = now;
        let result = peer.session.handle_datagram(now, bytes);
        let retry = hello && result.is_err() && !peer.session.is_connected();
        self.settle(now, from, result);
        if retry && !self.peers.contains_key(&from) {
            // A fresh ClientHello that the handshake under way choked on: the client restarted
            // mid-handshake. The old handshake counted as failed; this one starts clean.
            self.verify(now, from, bytes);
        }
        self.pump(now);
    }

    /// A `ClientHello` outside a handshake under way: its unverified handshake (a new one if
    /// none) answers it. A `HelloVerifyRequest` back leaves it unverified; anything else means
    /// the cookie came back valid, and the handshake becomes the peer's session, in place of
    /// the one it had.
    fn verify(&mut self, now: Instant, from: SocketAddr, hello: &[u8]) {
        self.expire_unverified(now);
        let mut pending = if let Some(pending) = self.unverified.remove(&from) {
            pending
        } else {
            let Some(session) = self.accept(now) else {
                return;
            };
            if self.unverified.len() >= MAX_UNVERIFIED {
                self.drop_oldest_unverified();
            }
            self.unverified_order.push_back((now, from));
            Unverified {
                session: Box::new(session),
                since: now,
            }
        };
        if pending.session.handle_datagram(now, hello).is_err() {
            self.stats.unverified_dropped += 1;
            return;
        }
        let records: Vec<Vec<u8>> =
            std::iter::from_fn(|| pending.session.poll_transmit()).collect();
        let challenged = records.first().is_none_or(|r| is_hello_verify_request(r));
        if challenged {
            self.stats.hello_verify_requests += u64::from(!records.is_empty());
            self.transmit.extend(records.into_iter().map(|r| (from, r)));
            self.unverified.insert(from, pending);
            return;
        }
        let replacing = self.peers.contains_key(&from);
        if !replacing && self.peers.len() >= self.max_sessions {
            self.stats.sessions_full += 1;
            return;
        }
        if replacing {
            self.remove(from);
            self.stats.lost += 1;
        }
        self.peers.insert(
            from,
            Peer {
                session: pending.session,
                last_active: now,
                scheduled: None,
            },
        );
        self.stats.sessions_opened += 1;
        self.stats.sessions += 1;
        self.transmit.extend(records.into_iter().map(|r| (from, r)));
        self.schedule(from);
    }

    /// Unverified handshakes older than [`UNVERIFIED_LIFETIME`] go.
    fn expire_unverified(&mut self, now: Instant) {
        while let Some(&(since, from)) = self.unverified_order.front() {
            if now.saturating_since(since) < UNVERIFIED_LIFETIME {
                break;
            }
            self.unverified_order.pop_front();
            if self.unverified.get(&from).is_some_and(|p| p.since == since) {
                self.unverified.remove(&from);
                self.stats.unverified_dropped += 1;
            }
        }
    }

    fn drop_oldest_unverified(&mut self) {
        while let Some((since, from)) = self.unverified_order.pop_front() {
            if self.unverified.get(&from).is_some_and(|p| p.since == since) {
                self.unverified.remove(&from);
                self.stats.unverified_dropped += 1;
                return;
            }
        }
    }

    /// Deadlines up to `now`: the server's, handshake retransmissions, idle sessions.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.inner.poll_timeout().is_some_and(|at| at <= now) {
            self.inner.handle_timeout(now);
        }
        while let Some(&Reverse((at, from))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&from) else {
                continue;
            };
            if peer.scheduled != Some(at) {
                continue;
            }
            peer.scheduled = None;
            if peer.session.is_connected() {
                if now.saturating_since(peer.last_active) >= self.idle_timeout {
                    // A goodbye the client may still hear; it handshakes again when it next sends.
                    peer.session.close();
                    self.remove(from);
                    self.stats.expired += 1;
                    continue;
                }
            } else if now.saturating_since(peer.session.started()) >= self.handshake_timeout {
                self.remove(from);
                self.stats.handshakes_failed += 1;
                continue;
            }
            let result = peer.session.handle_timeout(now);
            self.settle(now, from, result);
        }
        self.pump(now);
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// When [`SecureServer::handle_timeout`] next has work (stale entries can wake it early).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.peek().map(|Reverse((at, _))| *at);
        [self.inner.poll_timeout(), ours]
            .into_iter()
            .flatten()
            .min()
    }

    /// A server-side handshake, not yet anyone's.
    fn accept(&mut self, now: Instant) -> Option<Session> {
        let config = Arc::clone(&self.dimpl);
        let accepted = match &self.auth {
            SessionAuth::Psk => Session::accept(config, now),
            SessionAuth::Certificate { certificate, check } => {
                Session::accept_with_certificate(config, certificate.clone(), check.clone(), now)
            }
        };
        // dimpl refused to start: nothing was opened, but a client's handshake failed.
        accepted.map_err(|_| self.stats.handshakes_failed += 1).ok()
    }

    /// After the session of `from` took input: its records out, its plaintext into the server,
    /// its outcome counted, its next deadline queued.
    fn settle(&mut self, now: Instant, from: SocketAddr, result: Result<(), Failure>) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if peer.session.take_connected() {
            self.stats.handshakes_ok += 1;
        }
        while let Some(plaintext) = peer.session.poll_received() {
            self.inner.handle_datagram(now, from, &plaintext);
        }
        if result == Err(Failure::Closed) {
            // No close_notify back: the client has stopped listening by now.
            self.peers.remove(&from);
            self.stats.sessions -= 1;
            self.stats.closed += 1;
            return;
        }
        while let Some(record) = peer.session.poll_transmit() {
            self.transmit.push_back((from, record));
        }
        let connected = peer.session.is_connected();
        if result.is_ok() {
            self.schedule(from);
        } else {
            if connected {
                self.stats.lost += 1;
            } else {
                self.stats.handshakes_failed += 1;
            }
            self.remove(from);
        }
    }

    /// Encrypts what the server has to send; a peer without an open session gets nothing.
    fn pump(&mut self, now: Instant) {
        while let Some((to, plaintext)) = self.inner.poll_transmit() {
            let Some(peer) = self.peers.get_mut(&to).filter(|p| p.session.is_connected()) else {
                self.stats.unsent += 1;
                continue;
            };
            peer.last_active = now;
            let result = peer.session.send(&plaintext);
            self.settle(now, to, result);
        }
    }

    /// Drops the session of `from`, sending what it still had queued (an alert, a goodbye).
    fn remove(&mut self, from: SocketAddr) {
        if let Some(mut peer) = self.peers.remove(&from) {
            while let Some(record) = peer.session.poll_transmit() {
                self.transmit.push_back((from, record));
            }
            self.stats.sessions -= 1;
        }
    }

    /// Queues the peer's next deadline: dimpl's, or the end of its handshake or idle time.
    fn schedule(&mut self, from: SocketAddr) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let limit = if peer.session.is_connected() {
            peer.last_active + self.idle_timeout
        } else {
            peer.session.started() + self.handshake_timeout
        };
        let due = peer
            .session
            .poll_timeout()
            .map_or(limit, |at| at.min(limit));
        if peer.scheduled.is_none_or(|at| due < at) {
            peer.scheduled = Some(due);
            self.timers.push(Reverse((due, from)));
        }
    }
}

impl<S: Served> Served for SecureServer<S> {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        SecureServer::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        SecureServer::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        SecureServer::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        SecureServer::poll_timeout(self)
    }
    fn snapshot(&self) -> ServerStats {
        self.stats()
    }
    fn bound(&mut self, addr: SocketAddr, _secure: bool) {
        self.inner.bound(addr, true);
    }
}

#[cfg(test)]
mod tests;
