//! CoAP over TCP or TLS for one client (RFC 8323; `LwM2M` 1.1 binding `T`). The client asks its
//! transport for a connection ([`LinkCommand`]) and is told when it ends; on the connection it
//! runs TLS when configured, then the CSM exchange, then the same CoAP exchanges as over UDP
//! (its endpoint is [`Endpoint::reliable`]). Setup (connect + TLS + both CSMs) is timed like a
//! DTLS handshake and ends like a failed Register attempt when it fails; an open connection that
//! is lost ends what was in flight and, for a registered client, registers again on a new one
//! (a new connection is a new transport context in `LwM2M` 1.1.1).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Client, ClientState, Dropped, Event, InFlight, RequestOutcome};
use crate::clock::Instant;
use crate::coap::Endpoint;
use crate::coap::tcp::{self, Connection};
use crate::security::tls::{TlsClientConfig, TlsFailure, TlsSession};

/// A population's reliable-transport settings (set by the engine for `coap+tcp://` and
/// `coaps+tcp://` servers).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamConfig {
    /// TLS (`coaps+tcp://`); `None`: plain TCP.
    pub tls: Option<Arc<TlsClientConfig>>,
    /// Connect, TLS handshake and the server's CSM must be done within this.
    pub setup_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            tls: None,
            setup_timeout: Duration::from_secs(30),
        }
    }
}

/// What a stream client asks of its transport, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkCommand {
    /// Open a connection to this address.
    Open(SocketAddr),
    /// Write these bytes on the connection (after what was written before).
    Send(Vec<u8>),
    /// Close the connection once what was sent before it is written.
    Close,
}

/// How the transport saw a connection end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkClosed {
    /// Nobody listens there (RST to the SYN).
    Refused,
    /// The peer reset the connection.
    Reset,
    /// The peer closed its side (end of stream).
    PeerClosed,
    /// The kernel gave up (SYN or data unacknowledged).
    TimedOut,
    /// Anything else (no route, the transport's own limits...).
    Error,
}

/// Why a connection could not be set up, or was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionFailure {
    Link(LinkClosed),
    Tls(TlsFailure),
    /// Release, Abort, or a protocol error we aborted for.
    Coap(tcp::Closed),
    /// Setup did not finish within [`StreamConfig::setup_timeout`].
    SetupTimeout,
}

impl ConnectionFailure {
    /// A short stable name for reports.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionFailure::Link(LinkClosed::Refused) => "refused",
            ConnectionFailure::Link(LinkClosed::Reset) => "reset",
            ConnectionFailure::Link(LinkClosed::PeerClosed) => "closed_by_peer",
            ConnectionFailure::Link(LinkClosed::TimedOut) => "tcp_timeout",
            ConnectionFailure::Link(LinkClosed::Error) => "link_error",
            ConnectionFailure::Tls(failure) => failure.name(),
            ConnectionFailure::Coap(closed) => closed.name(),
            ConnectionFailure::SetupTimeout => "setup_timeout",
        }
    }
}

/// How a connection setup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionOutcome {
    Connected,
    Failed(ConnectionFailure),
    /// The client stopped or went offline first.
    Aborted,
}

/// One connection setup: from asking for the connection to the server's CSM (TLS included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub started: Instant,
    pub completed: Instant,
    pub outcome: ConnectionOutcome,
}

/// A stream client's transport state (boxed in the client: UDP clients pay one null pointer).
#[derive(Debug)]
pub(super) struct Stream {
    tls: Option<Arc<TlsClientConfig>>,
    link: Option<Link>,
    commands: VecDeque<LinkCommand>,
}

/// The current connection.
#[derive(Debug)]
struct Link {
    started: Instant,
    /// Until the setup is done (the server's CSM came).
    setup_deadline: Option<Instant>,
    tls: Option<Box<TlsSession>>,
    coap: Connection,
}

impl Link {
    /// Plaintext for the peer: through TLS, or straight to the transport.
    fn write(&mut self, commands: &mut VecDeque<LinkCommand>, bytes: Vec<u8>) {
        match self.tls.as_mut() {
            Some(tls) => tls.send(&bytes),
            None => commands.push_back(LinkCommand::Send(bytes)),
        }
    }

    /// Moves what TLS has for the peer into `commands`, ahead of whatever comes next.
    fn drain_tls(&mut self, commands: &mut VecDeque<LinkCommand>) {
        if let Some(tls) = self.tls.as_mut() {
            while let Some(bytes) = tls.poll_transmit() {
                commands.push_back(LinkCommand::Send(bytes));
            }
        }
    }
}

impl Stream {
    pub(super) fn new(config: &StreamConfig) -> Self {
        Stream {
            tls: config.tls.clone(),
            link: None,
            commands: VecDeque::new(),
        }
    }

    fn is_open(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.setup_deadline.is_none())
    }

    /// The next command: queued ones, then TLS records, then CoAP messages once open.
    fn poll_command(&mut self, coap: &mut Endpoint) -> Option<LinkCommand> {
        loop {
            if let Some(command) = self.commands.pop_front() {
                if self.commands.is_empty() {
                    self.commands = VecDeque::new();
                }
                return Some(command);
            }
            let link = self.link.as_mut()?;
            if let Some(bytes) = link.tls.as_mut().and_then(|t| t.poll_transmit()) {
                return Some(LinkCommand::Send(bytes));
            }
            if link.setup_deadline.is_some() {
                return None;
            }
            let (_, message) = coap.poll_transmit()?;
            link.write(&mut self.commands, message);
        }
    }

    /// Closes the current connection, TLS saying goodbye first when `graceful`; returns it.
    fn close(&mut self, graceful: bool) -> Option<Link> {
        let mut link = self.link.take()?;
        if graceful && let Some(tls) = link.tls.as_mut() {
            tls.close();
        }
        link.drain_tls(&mut self.commands);
        self.commands.push_back(LinkCommand::Close);
        Some(link)
    }

    /// What this holds itself; rustls' own buffers and keys are not seen from here (about
    /// 8 KB per open connection, measured by `benches/tls.rs`).
    pub(super) fn heap_bytes(&self) -> usize {
        size_of::<Stream>()
            + self.commands.capacity() * size_of::<LinkCommand>()
            + self.link.as_ref().map_or(0, |l| {
                l.coap.heap_bytes() + l.tls.as_ref().map_or(0, |_| size_of::<TlsSession>())
            })
    }
}

impl Client {
    /// Whether the client speaks CoAP over TCP or TLS (it then talks through [`Client::poll_link`]).
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// The next thing a stream client asks of its transport; `None` for UDP clients.
    pub fn poll_link(&mut self) -> Option<LinkCommand> {
        self.stream.as_deref_mut()?.poll_command(&mut self.coap)
    }

    /// The transport's connection ended (refused, reset, closed by the server...).
    pub fn handle_link_closed(&mut self, now: Instant, why: LinkClosed) {
        if self.stream.as_ref().is_some_and(|s| s.link.is_some()) {
            self.connection_failed(now, ConnectionFailure::Link(why), false);
            self.flush(now);
        }
    }

    /// Whether requests may go out on the connection now; if there is none, it is asked for.
    pub(super) fn stream_ready(&mut self, now: Instant) -> bool {
        let Some(stream) = self.stream.as_deref_mut() else {
            return true;
        };
        if stream.link.is_some() {
            return stream.is_open();
        }
        let mut link = Link {
            started: now,
            setup_deadline: Some(
                now + self.config.stream.as_ref().map_or_else(
                    || StreamConfig::default().setup_timeout,
                    |s| s.setup_timeout,
                ),
            ),
            tls: None,
            coap: Connection::default(),
        };
        stream
            .commands
            .push_back(LinkCommand::Open(self.config.server));
        if let Some(config) = stream.tls.as_deref() {
            match TlsSession::connect(config) {
                Ok(session) => link.tls = Some(Box::new(session)),
                Err(failure) => {
                    stream.commands.push_back(LinkCommand::Close);
                    self.setup_ended(now, now, ConnectionOutcome::Failed(failure.into()));
                    self.on_handshake_failed(now);
                    return false;
                }
            }
        }
        // The CSM goes first; over TLS it waits in rustls for the handshake to finish.
        let csm = link.coap.csm();
        link.write(&mut stream.commands, csm);
        stream.link = Some(link);
        false
    }

    /// Bytes from the connection: through TLS, cut into messages, signals answered, CoAP
    /// messages handled as datagrams are.
    pub(super) fn handle_stream_bytes(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(link) = self.stream.as_mut().and_then(|s| s.link.as_mut()) else {
            self.events.push_back(Event::Dropped(Dropped::Unmatched));
            return;
        };
        let mut plaintext = Vec::new();
        // Ok(true): the peer said goodbye (close_notify).
        let received = if let Some(tls) = link.tls.as_mut() {
            tls.receive(bytes, &mut plaintext)
                .map(|()| tls.peer_closed())
                .map_err(ConnectionFailure::Tls)
        } else {
            plaintext.extend_from_slice(bytes);
            Ok(false)
        };
        link.coap.receive(&plaintext);
        let mut events = Vec::new();
        while let Some(event) = link.coap.poll_event() {
            events.push(event);
        }
        for event in events {
            self.on_connection_event(now, from, event);
        }
        match received {
            Err(failure) => self.connection_failed(now, failure, true),
            Ok(true) => {
                let closed = ConnectionFailure::Link(LinkClosed::PeerClosed);
                self.connection_failed(now, closed, true);
            }
            Ok(false) => {}
        }
        self.flush(now);
    }

    fn on_connection_event(&mut self, now: Instant, from: SocketAddr, event: tcp::TcpEvent) {
        match event {
            tcp::TcpEvent::Ready { .. } => {
                let link = self.stream.as_mut().and_then(|s| s.link.as_mut());
                if let Some(link) = link.filter(|l| l.setup_deadline.is_some()) {
                    link.setup_deadline = None;
                    let started = link.started;
                    self.setup_ended(started, now, ConnectionOutcome::Connected);
                }
            }
            tcp::TcpEvent::Message(message) => {
                if self.accepts_messages() {
                    self.handle_coap(now, from, &message, true);
                }
            }
            tcp::TcpEvent::Reply(bytes) => {
                if let Some(stream) = self.stream.as_deref_mut()
                    && let Some(link) = stream.link.as_mut()
                {
                    link.write(&mut stream.commands, bytes);
                }
            }
            tcp::TcpEvent::Closed(why) => {
                self.connection_failed(now, ConnectionFailure::Coap(why), true);
            }
        }
    }

    /// The setup deadline.
    pub(super) fn handle_stream_timeout(&mut self, now: Instant) {
        if self.stream_timeout().is_some_and(|at| at <= now) {
            self.connection_failed(now, ConnectionFailure::SetupTimeout, true);
        }
    }

    pub(super) fn stream_timeout(&self) -> Option<Instant> {
        self.stream
            .as_ref()
            .and_then(|s| s.link.as_ref())
            .and_then(|l| l.setup_deadline)
    }

    /// Going offline or stopping: a setup under way is aborted; a stop says goodbye.
    pub(super) fn end_stream(&mut self, now: Instant, graceful: bool) {
        let Some(link) = self.stream.as_deref_mut().and_then(|s| s.close(graceful)) else {
            return;
        };
        if link.setup_deadline.is_some() {
            self.setup_ended(link.started, now, ConnectionOutcome::Aborted);
        }
    }

    /// The connection failed: counted as a failed setup or a lost connection, closed (unless
    /// the transport closed it already), and the client goes on as the `LwM2M` rules say.
    fn connection_failed(&mut self, now: Instant, failure: ConnectionFailure, close: bool) {
        let Some(stream) = self.stream.as_deref_mut() else {
            return;
        };
        let link = if close {
            stream.close(false)
        } else {
            stream.link.take()
        };
        let Some(link) = link else {
            return;
        };
        if link.setup_deadline.is_some() {
            self.setup_ended(link.started, now, ConnectionOutcome::Failed(failure));
            self.coap.reset();
            self.on_handshake_failed(now);
        } else {
            self.events.push_back(Event::ConnectionLost(failure));
            self.on_connection_lost(now);
        }
    }

    /// What was in flight cannot be answered any more: it ends (aborted) and fails as a timeout
    /// would. A client that is still registered registers again on a new connection.
    fn on_connection_lost(&mut self, now: Instant) {
        for request in std::mem::take(&mut self.in_flight) {
            let InFlight { token, kind, .. } = request;
            self.record_end(&request, now, RequestOutcome::Aborted);
            self.on_request_failed(now, kind, token);
        }
        // Unsent answers were for the old connection.
        self.coap.reset();
        if matches!(self.state, ClientState::Registered | ClientState::Sleeping) {
            self.register_again(now);
        }
    }

    fn setup_ended(&mut self, started: Instant, now: Instant, outcome: ConnectionOutcome) {
        self.events.push_back(Event::Connection(ConnectionRecord {
            started,
            completed: now,
            outcome,
        }));
    }
}

impl From<TlsFailure> for ConnectionFailure {
    fn from(failure: TlsFailure) -> Self {
        ConnectionFailure::Tls(failure)
    }
}

#[cfg(test)]
mod tests;
