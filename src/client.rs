//! One simulated LWM2M client as a deterministic state machine (sans-IO).
//!
//! The driver feeds datagrams and deadlines in (`handle_datagram`, `handle_timeout`) and takes
//! datagrams, the next deadline and events out (`poll_transmit`, `poll_timeout`, `poll_event`).
//! The client reads no clock and owns no socket, so tests run an hour of lifetimes in
//! milliseconds and the engine can hold a hundred thousand of them in a slab.

mod bootstrap;
mod composite;
mod config;
mod events;
mod firmware;
mod observe;
mod operations;
mod registration;
mod secure;
mod send;
mod stream;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::Packet;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::clock::Instant;
use crate::coap::{Endpoint, Expired, Incoming, Token};
use crate::model::{Device, Path};

use bootstrap::Bootstrap;
pub use bootstrap::{BootstrapFailure, BootstrapOutcome, BootstrapRecord};
pub use config::{
    AcceptRequests, ClientBootstrapConfig, ClientConfig, DEFAULT_BLOCK1_IDLE_TIMEOUT,
    DEFAULT_BLOCK1_MAX_BODY, DEFAULT_MAX_OBSERVATIONS, LwM2mVersion, RetryPolicy,
};
pub use events::{
    CLIENT_STATES, ClientState, Dropped, Event, OPERATION_KINDS, OperationKind, OperationRecord,
    REQUEST_KINDS, RequestKind, RequestOutcome, RequestRecord, operation_index, operation_name,
    request_index, request_name, state_index, state_name,
};
pub use firmware::{
    Delivery, FIRMWARE_FAILURES, FirmwareConfig, FirmwareFailure, FirmwareFailures, FirmwareRecord,
    FirmwareStep,
};
use observe::{Attributes, Observation};
pub use registration::update_delay;
use secure::Secure;
pub use secure::{HandshakeOutcome, HandshakeRecord};
pub use send::SendConfig;
pub use stream::{
    ConnectionFailure, ConnectionOutcome, ConnectionRecord, LinkClosed, LinkCommand, StreamConfig,
};

/// Something the client wants to send, waiting for the NSTART slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outgoing {
    Bootstrap,
    Register,
    Update,
    Deregister,
    Notify(Token),
    Send,
    /// The next Block2 GET of a firmware package.
    Download,
    /// The next Block1 block of a Send too large for one message.
    SendBlock,
}

#[derive(Clone, Copy, Debug)]
struct Queued {
    what: Outgoing,
    intended: Instant,
}

/// A request of ours awaiting its answer.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    token: Token,
    kind: RequestKind,
    intended: Instant,
    sent: Instant,
    retransmissions_at_send: u64,
}

/// What a server operation asked the client to do once its answer is out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deferred {
    Reboot,
    FactoryReset,
    Disable,
    Update,
    /// A Bootstrap-Finish was answered 2.04: register with the configured server.
    Bootstrapped,
    /// Bootstrap-Request Trigger (`/1/x/9`).
    Bootstrap,
    /// Execute on Firmware Update (`/5/0/2`): offline for the update time.
    FirmwareUpdate,
}

/// One simulated LWM2M client.
#[derive(Debug)]
pub struct Client {
    config: Arc<ClientConfig>,
    endpoint_name: Box<str>,
    device: Device,
    coap: Endpoint,
    rng: SmallRng,
    state: ClientState,
    /// `rd/<id>` from the Register answer's Location-Path.
    location: Option<Box<str>>,
    lifetime: Duration,
    /// Lifetime, binding or objects changed since the last Register/Update.
    send_lifetime: bool,
    send_objects: bool,
    register_failures: u32,
    queue: VecDeque<Queued>,
    in_flight: Vec<InFlight>,
    observations: Vec<Observation>,
    /// The paths of the composite observations among `observations`.
    composite_paths: composite::CompositePaths,
    attributes: Vec<(Path, Attributes)>,
    update_at: Option<Instant>,
    register_at: Option<Instant>,
    /// When the next Send is due (while registered, with `config.send`).
    send_at: Option<Instant>,
    /// A deferred action runs at the next timeout, after the answer that announced it is out.
    deferred: Option<(Deferred, Instant)>,
    awake_until: Option<Instant>,
    last_con_notification: Instant,
    /// A block-wise Write being assembled.
    block1: Option<Box<crate::coap::block::Block1Receiver>>,
    /// A firmware download or update under way (object 5).
    firmware: Option<Box<firmware::Transfer>>,
    /// A Send going out in Block1 blocks.
    send_blocks: Option<Box<send::BlockwiseSend>>,
    events: VecDeque<Event>,
    /// DTLS credentials and session; `None` for plain CoAP.
    secure: Option<Box<Secure>>,
    /// Bootstrap state; `None` for a client that registers directly.
    bootstrap: Option<Box<Bootstrap>>,
    /// CoAP over TCP or TLS; `None` for UDP.
    stream: Option<Box<stream::Stream>>,
}

impl Client {
    /// A client that does nothing until [`Client::start`].
    pub fn new(config: Arc<ClientConfig>, endpoint_name: &str, device: Device, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let first_message_id = rand::Rng::random(&mut rng);
        let lifetime = config.lifetime;
        let stream = config
            .stream
            .as_ref()
            .map(|s| Box::new(stream::Stream::new(s)));
        let coap = if stream.is_some() {
            Endpoint::reliable()
        } else {
            Endpoint::new(first_message_id)
        };
        Client {
            config,
            endpoint_name: endpoint_name.into(),
            device,
            coap,
            rng,
            state: ClientState::Starting,
            location: None,
            lifetime,
            send_lifetime: false,
            send_objects: false,
            register_failures: 0,
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            observations: Vec::new(),
            composite_paths: composite::CompositePaths::default(),
            attributes: Vec::new(),
            update_at: None,
            register_at: None,
            send_at: None,
            deferred: None,
            awake_until: None,
            last_con_notification: Instant::ZERO,
            block1: None,
            firmware: None,
            send_blocks: None,
            events: VecDeque::new(),
            secure: None,
            bootstrap: None,
            stream,
        }
    }

    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    pub fn endpoint_name(&self) -> &str {
        &self.endpoint_name
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The registration id the server gave (`rd/<id>`), while registered.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// Paths the server observes, in the order it asked.
    pub fn observed_paths(&self) -> impl Iterator<Item = Path> + '_ {
        self.observations.iter().map(|o| o.path)
    }

    /// Starts the registration procedure.
    pub fn start(&mut self, now: Instant) {
        self.start_due(now, now);
    }

    /// Starts the registration procedure (or the bootstrap, when configured) for a start that
    /// was due at `due` (at or before `now`): the first request's latency counts from `due`.
    pub fn start_due(&mut self, now: Instant, due: Instant) {
        if self.state == ClientState::Starting {
            if self.config.bootstrap.is_some() {
                self.begin_bootstrap(due.min(now));
            } else {
                self.enqueue_register(due.min(now));
            }
            self.flush(now);
        }
    }

    /// De-registers if registered; stops either way. The client is `Stopped` once the
    /// De-register ends (answered or timed out).
    pub fn stop(&mut self, now: Instant) {
        self.deferred = None;
        // A stop says goodbye to a bootstrap server whose session still lingers, at once.
        self.end_lingering();
        match self.state {
            ClientState::Registered | ClientState::Sleeping => {
                self.firmware_offline(now, true);
                self.abort_queued(now);
                self.abort_notifications(now);
                self.update_at = None;
                self.send_at = None;
                self.enqueue(Outgoing::Deregister, now);
                self.set_state(ClientState::Deregistering);
                self.flush(now);
            }
            ClientState::Deregistering | ClientState::Stopped => {}
            _ => self.go_offline(now, ClientState::Stopped),
        }
    }

    /// Gives up at once: whatever is queued or in flight ends `Unsent` or `Aborted`, nothing more
    /// is sent, and the client is `Stopped`. For a stop that ran out of time.
    pub fn abandon(&mut self, now: Instant) {
        self.deferred = None;
        // Even when stopped: a request may still be out (an Update awaiting its separate
        // response when the De-register's answer came).
        self.go_offline(now, ClientState::Stopped);
    }

    /// A datagram from `from` arrived: the server's address, or a socket it sends requests
    /// from (requests are acted on only from sources the config's `accept_requests` admits).
    /// Answers to it go back to `from`. For a stream client: bytes read from its connection,
    /// cut anywhere.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.stream.is_some() {
            // The stream is cut into messages first; each is then looked at like a datagram.
            self.handle_stream_bytes(now, from, bytes);
            return;
        }
        if !self.accepts_messages() {
            return;
        }
        // The bootstrap server's session, still open after the switch (to a server with or
        // without DTLS).
        if from != self.server() && self.handle_lingering_datagram(now, from, bytes) {
            self.flush(now);
            return;
        }
        if self.secure.is_some() {
            // Records come from the server the session is with (after a bootstrap, a late
            // one from the bootstrap server would only confuse the new session).
            if from != self.server() {
                self.events.push_back(Event::Dropped(Dropped::Unmatched));
                return;
            }
            self.handle_secure_datagram(now, from, bytes);
            return;
        }
        let welcome = self.config.accept_requests.admits(from, self.server());
        self.handle_coap(now, from, bytes, welcome);
        self.flush(now);
    }

    /// Whether the client takes a CoAP message now; if not, its drop is counted.
    fn accepts_messages(&mut self) -> bool {
        let dropped = match self.state {
            ClientState::Starting
            | ClientState::Rebooting
            | ClientState::Stopped
            | ClientState::Failed => Dropped::Offline,
            ClientState::Sleeping => Dropped::Asleep,
            _ => return true,
        };
        self.events.push_back(Event::Dropped(dropped));
        false
    }

    /// A CoAP datagram (decrypted, for a DTLS client); requests are taken from `from` only
    /// when `requests_welcome` (always over DTLS, TCP and TLS: the session or connection is
    /// the server's).
    fn handle_coap(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        requests_welcome: bool,
    ) {
        let incoming = self.coap.handle_datagram_screened(
            now,
            from,
            bytes,
            &self.config.coap,
            requests_welcome,
        );
        // Stray traffic leaves no trace: not even a longer awake window.
        if !matches!(incoming, Incoming::ForeignRequest | Incoming::ForeignReply) {
            self.touch(now);
        }
        match incoming {
            Incoming::Response { token, packet } => self.on_response(now, token, &packet),
            Incoming::Acknowledged { token } => {
                self.complete(now, token, RequestOutcome::Response(0));
            }
            Incoming::Reset { token } => self.on_reset(now, from, token),
            Incoming::Request(request) => self.on_request(now, from, &request),
            Incoming::Duplicate => self.events.push_back(Event::Dropped(Dropped::Duplicate)),
            Incoming::SeparatePending { .. } => {}
            Incoming::Ignored => self.events.push_back(Event::Dropped(Dropped::Unmatched)),
            Incoming::Malformed => self.events.push_back(Event::Dropped(Dropped::Malformed)),
            Incoming::ForeignRequest => {
                self.events
                    .push_back(Event::Dropped(Dropped::ForeignRequest));
            }
            Incoming::ForeignReply => self.events.push_back(Event::Dropped(Dropped::ForeignReply)),
        }
    }

    /// A deadline from [`Client::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_secure_timeout(now);
        self.handle_stream_timeout(now);
        while let Some(expired) = self.coap.handle_timeout(now, &self.config.coap) {
            let token = match expired {
                Expired::Timeout { token } | Expired::SeparateTimeout { token } => token,
            };
            self.complete(now, token, RequestOutcome::Timeout);
        }
        if let Some((action, at)) = self.deferred
            && at <= now
        {
            self.deferred = None;
            self.run_deferred(now, action);
        }
        if let Some(at) = self.register_at.take_if(|at| *at <= now) {
            self.enqueue_register(at);
        }
        self.bootstrap_timeout(now);
        if let Some(at) = self.update_at.take_if(|at| *at <= now) {
            self.wake_for(at);
            self.enqueue_update(at);
        }
        if let Some(at) = self.send_at.take_if(|at| *at <= now) {
            self.send_due(at);
        }
        self.check_observations(now);
        self.expire_block1(now);
        self.firmware_timeout(now);
        self.maybe_sleep(now);
        self.flush(now);
    }

    /// The next datagram to send, and where to: the server (see [`Client::server`]) for
    /// Bootstrap-Request, Register, Update and De-register, the source of the request for
    /// answers and notifications. Stream clients send nothing here: see [`Client::poll_link`].
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        if self.stream.is_some() {
            return None;
        }
        if let Some(parting) = self.poll_parting() {
            return Some(parting);
        }
        if let Some(lingering) = self.poll_lingering() {
            return Some(lingering);
        }
        let server = self.server();
        if let Some(secure) = self.secure.as_deref_mut() {
            return secure.poll_transmit(&mut self.coap, server);
        }
        self.coap.poll_transmit()
    }

    /// When the client next needs [`Client::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let observation = if matches!(self.state, ClientState::Registered | ClientState::Sleeping) {
            self.observations
                .iter()
                .filter(|o| !o.queued)
                .map(|o| o.next_check)
                .min()
        } else {
            None
        };
        [
            self.coap.poll_timeout(),
            self.deferred.map(|(_, at)| at),
            self.register_at,
            self.update_at,
            self.send_at,
            observation,
            self.sleep_deadline(),
            self.secure_timeout(),
            self.bootstrap_deadline(),
            self.stream_timeout(),
            self.block1_deadline(),
            self.firmware_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What happened since the last call.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 {
            // Idle clients vastly outnumber busy ones: give the buffer back.
            self.events = VecDeque::new();
        }
        event
    }

    /// Heap bytes this client holds (its own buffers plus its device's diffs).
    pub fn heap_bytes(&self) -> usize {
        self.endpoint_name.len()
            + self.location.as_ref().map_or(0, |l| l.len())
            + self.queue.capacity() * size_of::<Queued>()
            + self.in_flight.capacity() * size_of::<InFlight>()
            + self.observations.capacity() * size_of::<Observation>()
            + self.composite_paths.heap_bytes()
            + self.attributes.capacity() * size_of::<(Path, Attributes)>()
            + self.events.capacity() * size_of::<Event>()
            + self
                .block1
                .as_ref()
                .map_or(0, |b| size_of_val(&**b) + b.heap_bytes())
            + self.firmware.as_ref().map_or(0, |f| f.heap_bytes())
            + self.send_blocks.as_ref().map_or(0, |s| s.heap_bytes())
            + self.coap.heap_bytes()
            + self.device.heap_bytes()
            + self.secure.as_ref().map_or(0, |s| s.heap_bytes())
            + self.bootstrap.as_ref().map_or(0, |b| b.heap_bytes())
            + self.stream.as_ref().map_or(0, |s| s.heap_bytes())
    }

    fn set_state(&mut self, state: ClientState) {
        if self.state != state {
            self.state = state;
            self.events.push_back(Event::State(state));
        }
    }

    fn enqueue(&mut self, what: Outgoing, intended: Instant) {
        self.queue.push_back(Queued { what, intended });
    }

    /// Sends queued messages while NSTART allows; a NON waits behind an earlier CON to keep order.
    fn flush(&mut self, now: Instant) {
        // DTLS, TCP: nothing goes out before the handshake or connection (started here when
        // needed).
        if !self.queue.is_empty() && !self.ready_to_send(now) {
            return;
        }
        if !self.queue.is_empty() && !self.stream_ready(now) {
            return;
        }
        while let Some(next) = self.queue.front().copied() {
            if !self.coap.can_send_confirmable() || self.state == ClientState::Sleeping {
                return;
            }
            self.queue.pop_front();
            match next.what {
                Outgoing::Bootstrap => self.send_bootstrap_request(now, next.intended),
                Outgoing::Register => self.send_register(now, next.intended),
                Outgoing::Update => self.send_update(now, next.intended),
                Outgoing::Deregister => self.send_deregister(now, next.intended),
                Outgoing::Notify(token) => self.send_notification(now, token, next.intended),
                Outgoing::Send => self.send_data(now, next.intended),
                Outgoing::Download => self.send_download(now, next.intended),
                Outgoing::SendBlock => self.send_next_block(now),
            }
            self.touch(now);
        }
        self.queue = VecDeque::new();
    }

    /// Sends `packet` as a CON request to the server and remembers it for its answer.
    fn send_request(
        &mut self,
        now: Instant,
        kind: RequestKind,
        intended: Instant,
        mut packet: Packet,
    ) {
        let token = Token::random(&mut self.rng);
        packet.set_token(token.as_slice().to_vec());
        let server = self.server();
        self.send_tracked(now, server, kind, intended, token, packet);
    }

    /// Sends a CON (request or notification) to `to` and remembers it until it ends.
    fn send_tracked(
        &mut self,
        now: Instant,
        to: SocketAddr,
        kind: RequestKind,
        intended: Instant,
        token: Token,
        packet: Packet,
    ) {
        // Usually alone in flight: one slot, not the four a first push would allocate.
        self.in_flight.reserve_exact(1);
        self.in_flight.push(InFlight {
            token,
            kind,
            intended,
            sent: now,
            retransmissions_at_send: self.coap.retransmissions(),
        });
        self.events.push_back(Event::Sent(kind));
        self.coap
            .send_confirmable(now, to, packet, &self.config.coap, &mut self.rng);
    }

    fn on_response(&mut self, now: Instant, token: Token, packet: &Packet) {
        let Some(request) = self.in_flight.iter().find(|f| f.token == token).copied() else {
            self.events.push_back(Event::Dropped(Dropped::Unmatched));
            return;
        };
        let code = u8::from(packet.header.code);
        if request.kind == RequestKind::Send && self.on_send_block_answer(now, token, packet) {
            return;
        }
        self.complete(now, token, RequestOutcome::Response(code));
        match request.kind {
            RequestKind::Register => self.on_register_answer(now, code, packet),
            RequestKind::Update => self.on_update_answer(now, code),
            RequestKind::Deregister => self.on_deregister_answer(now),
            RequestKind::Notify | RequestKind::Send => {}
            RequestKind::Bootstrap => self.on_bootstrap_answer(now, code),
            RequestKind::Download => self.on_download_answer(now, code, packet),
        }
    }

    fn on_reset(&mut self, now: Instant, from: SocketAddr, token: Token) {
        let Some(request) = self.in_flight.iter().find(|f| f.token == token).copied() else {
            // An RST to a NON notification: its observer no longer wants it. The message layer
            // does not keep where a NON went; the observation does.
            let observer = self.observations.iter().find(|o| o.token == token);
            match observer.map(|o| o.observer == from) {
                Some(true) => self.cancel_observation(token),
                Some(false) => self.events.push_back(Event::Dropped(Dropped::ForeignReply)),
                None => self.events.push_back(Event::Dropped(Dropped::Unmatched)),
            }
            return;
        };
        self.complete(now, token, RequestOutcome::Reset);
        self.on_request_failed(now, request.kind, token);
    }

    /// Ends a request of ours: one event, exactly once.
    fn complete(&mut self, now: Instant, token: Token, outcome: RequestOutcome) {
        let Some(index) = self.in_flight.iter().position(|f| f.token == token) else {
            return;
        };
        let request = self.in_flight.swap_remove(index);
        if self.in_flight.is_empty() {
            // Idle clients vastly outnumber busy ones: give the buffer back.
            self.in_flight = Vec::new();
        }
        self.record_end(&request, now, outcome);
        if outcome == RequestOutcome::Timeout {
            if matches!(
                request.kind,
                RequestKind::Register | RequestKind::Update | RequestKind::Bootstrap
            ) {
                self.forget_session();
            }
            self.on_request_failed(now, request.kind, token);
        }
        if request.kind == RequestKind::Notify {
            self.on_notification_done(token, outcome);
        }
    }

    fn on_request_failed(&mut self, now: Instant, kind: RequestKind, token: Token) {
        match kind {
            RequestKind::Register => self.on_register_failed(now),
            RequestKind::Update => self.on_update_failed(now),
            RequestKind::Deregister => self.on_deregister_answer(now),
            RequestKind::Notify => self.cancel_observation(token),
            RequestKind::Bootstrap => self.on_bootstrap_request_failed(now),
            // A lost Send is not retried: the next one carries fresher values.
            RequestKind::Send => {}
            RequestKind::Download => self.on_download_failed(now),
        }
    }

    /// Records a request that ended before it could be sent.
    fn record_unsent(&mut self, kind: RequestKind, intended: Instant, now: Instant) {
        self.events.push_back(Event::Request(RequestRecord {
            kind,
            intended,
            sent: now,
            completed: now,
            outcome: RequestOutcome::Unsent,
            retransmissions: 0,
        }));
    }

    /// Ends every queued and in-flight request with `Aborted` (going offline).
    fn abort_queued(&mut self, now: Instant) {
        for queued in std::mem::take(&mut self.queue) {
            let kind = match queued.what {
                Outgoing::Bootstrap => RequestKind::Bootstrap,
                Outgoing::Register => RequestKind::Register,
                Outgoing::Update => RequestKind::Update,
                Outgoing::Deregister => RequestKind::Deregister,
                Outgoing::Notify(token) => {
                    self.on_notification_done(token, RequestOutcome::Aborted);
                    RequestKind::Notify
                }
                Outgoing::Send => RequestKind::Send,
                Outgoing::Download => RequestKind::Download,
                // A block of a Send in flight, which ends with the in-flight requests.
                Outgoing::SendBlock => continue,
            };
            self.record_unsent(kind, queued.intended, now);
        }
        self.queue = VecDeque::new();
    }

    /// On the way out, notifications are not worth waiting for: a server that never
    /// acknowledges a CON notification would hold the De-register behind it (NSTART 1).
    fn abort_notifications(&mut self, now: Instant) {
        self.clear_observations();
        let (notifications, requests): (Vec<InFlight>, Vec<InFlight>) =
            std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|f| f.kind == RequestKind::Notify);
        self.in_flight = requests;
        for notification in notifications {
            self.coap.give_up(notification.token);
            self.record_end(&notification, now, RequestOutcome::Aborted);
        }
    }

    fn abort_in_flight(&mut self, now: Instant) {
        for request in std::mem::take(&mut self.in_flight) {
            self.record_end(&request, now, RequestOutcome::Aborted);
        }
    }

    /// The one event a sent request ends with (and the end of its blocks, for a block-wise Send).
    fn record_end(&mut self, request: &InFlight, now: Instant, outcome: RequestOutcome) {
        if request.kind == RequestKind::Send {
            self.end_send_blocks(request.token);
        }
        let retransmissions = self.coap.retransmissions() - request.retransmissions_at_send;
        self.events.push_back(Event::Request(RequestRecord {
            kind: request.kind,
            intended: request.intended,
            sent: request.sent,
            completed: now,
            outcome,
            retransmissions: u8::try_from(retransmissions).unwrap_or(u8::MAX),
        }));
    }

    /// Drops the session: registration, observations and exchanges are gone.
    fn go_offline(&mut self, now: Instant, state: ClientState) {
        self.firmware_offline(now, state == ClientState::Stopped);
        self.abort_bootstrap(now);
        self.abort_queued(now);
        self.abort_in_flight(now);
        self.coap.reset();
        self.clear_observations();
        self.attributes.clear();
        self.block1 = None;
        self.location = None;
        self.update_at = None;
        self.register_at = None;
        self.send_at = None;
        self.awake_until = None;
        self.end_session(now, state != ClientState::Rebooting);
        self.set_state(state);
    }

    /// Schedules `action` after the current answer; an Update never replaces a pending reboot,
    /// factory reset or disable (they re-register anyway).
    fn defer(&mut self, action: Deferred, now: Instant) {
        let pending_stronger = self
            .deferred
            .is_some_and(|(pending, _)| pending != Deferred::Update);
        if action != Deferred::Update || !pending_stronger {
            self.deferred = Some((action, now));
        }
    }

    fn run_deferred(&mut self, now: Instant, action: Deferred) {
        match action {
            Deferred::Update => self.enqueue_update(now),
            Deferred::Reboot | Deferred::FactoryReset => {
                if action == Deferred::FactoryReset {
                    self.device.factory_reset();
                    self.lifetime = self.config.lifetime;
                }
                self.go_offline(now, ClientState::Rebooting);
                self.register_failures = 0;
                // A factory reset forgets what bootstrap wrote: it bootstraps again.
                if action == Deferred::Reboot || !self.factory_bootstrap(now) {
                    self.register_at = Some(now + self.config.reboot_time);
                }
            }
            Deferred::Bootstrapped => self.apply_bootstrap(now),
            Deferred::Bootstrap => {
                self.bootstrap_again(now);
            }
            Deferred::FirmwareUpdate => self.apply_firmware(now),
            Deferred::Disable => {
                let timeout = self.disable_timeout();
                self.update_at = None;
                self.abort_queued(now);
                self.enqueue(Outgoing::Deregister, now);
                self.set_state(ClientState::Deregistering);
                self.deferred = Some((Deferred::Reboot, now + timeout));
            }
        }
    }

    /// Records activity: in queue mode the awake window restarts.
    fn touch(&mut self, now: Instant) {
        if self.config.queue_mode {
            self.awake_until = Some(now + self.config.awake_window);
        }
    }

    /// When the radio may go off: past the awake window, and only once nothing is queued or in
    /// flight (until then the window's end is no deadline: it would be due again at once).
    fn sleep_deadline(&self) -> Option<Instant> {
        // A firmware download keeps the radio on between its paced GETs.
        let idle = self.queue.is_empty()
            && self.in_flight.is_empty()
            && self.coap.can_send_confirmable()
            && !self.firmware_downloading();
        if self.state != ClientState::Registered || !idle {
            return None;
        }
        self.awake_until
    }

    fn maybe_sleep(&mut self, now: Instant) {
        if self.sleep_deadline().is_some_and(|at| at <= now) {
            self.set_state(ClientState::Sleeping);
        }
    }

    /// Queue mode: wakes for a request due at `intended`; the Update goes first.
    fn wake_for(&mut self, intended: Instant) {
        if self.state == ClientState::Sleeping {
            self.set_state(ClientState::Registered);
            self.events.push_back(Event::Woke);
            self.enqueue_update(intended);
        }
    }
}
