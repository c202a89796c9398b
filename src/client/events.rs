//! What a client reports happened ([`Event`]), and the names and orders of its kinds that
//! metrics, reports and the dashboard list them by.

use crate::clock::Instant;
use crate::model::Path;

use super::{BootstrapRecord, ConnectionFailure, ConnectionRecord, HandshakeRecord};

/// What the client is doing, as a dashboard counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Not started yet.
    Starting,
    /// A Bootstrap-Request is queued or in flight, the bootstrap server is configuring the
    /// client, or the client waits to try again.
    Bootstrapping,
    /// A Register is queued or in flight, or the client waits to retry one.
    Registering,
    Registered,
    /// Registered, in queue mode, radio off.
    Sleeping,
    /// Offline after a Reboot (or Disable), registers again afterwards.
    Rebooting,
    /// De-registering on shutdown.
    Deregistering,
    /// Stopped: de-registered, or never registered when stopped.
    Stopped,
    /// The registration procedure gave up.
    Failed,
}

/// Client-initiated requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    Register,
    Update,
    Deregister,
    Notify,
    /// The Bootstrap-Request (`POST /bs`).
    Bootstrap,
    /// Send (`POST /dp`, LWM2M 1.1).
    Send,
    /// A Block2 GET of a firmware package from its Package URI (`/5/0/1`).
    Download,
}

/// How a client-initiated request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// The server answered with this code (class*32+detail, e.g. 0x41 for 2.01); for a CON
    /// notification an ACK counts as 0x00.
    Response(u8),
    /// No answer after the last retransmission (or no separate response in time).
    Timeout,
    /// The server answered with RST.
    Reset,
    /// The client went offline (reboot) or stopped before an answer came.
    Aborted,
    /// The client went offline before the request was sent (it waited for its turn).
    Unsent,
    /// A NON notification (and over TCP every notification): sent, never answered.
    Unconfirmed,
}

impl RequestOutcome {
    /// A 2.xx answer, an ACK, or a NON sent.
    pub fn is_success(self) -> bool {
        match self {
            RequestOutcome::Response(code) => code >> 5 <= 2,
            RequestOutcome::Unconfirmed => true,
            RequestOutcome::Timeout
            | RequestOutcome::Reset
            | RequestOutcome::Aborted
            | RequestOutcome::Unsent => false,
        }
    }
}

/// One client-initiated request, from when it was due to when it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub kind: RequestKind,
    /// When the schedule said it was due (latency is measured from here: no coordinated omission).
    pub intended: Instant,
    pub sent: Instant,
    pub completed: Instant,
    pub outcome: RequestOutcome,
    pub retransmissions: u8,
}

/// Server-initiated operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationKind {
    Read,
    Discover,
    Write,
    WriteAttributes,
    Execute,
    Create,
    Delete,
    Observe,
    /// Cancel Observation, of a plain observation (GET) or a composite one (FETCH).
    CancelObservation,
    /// LWM2M 1.1 FETCH of the `SenML` paths listed.
    ReadComposite,
    /// LWM2M 1.1 iPATCH of `SenML` records, all or nothing.
    WriteComposite,
    /// LWM2M 1.1 FETCH with Observe 0.
    ObserveComposite,
    /// A bootstrap server's Bootstrap-Finish (`POST /bs`).
    BootstrapFinish,
    /// A request LWM2M does not define (unknown paths, FETCH or iPATCH to a 1.0 client...).
    Other,
}

/// One server-initiated operation and the code the client answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationRecord {
    pub kind: OperationKind,
    pub path: Path,
    pub code: u8,
    pub received: Instant,
}

/// Why a datagram for this client was not processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// Queue mode: the radio was off.
    Asleep,
    /// Offline (rebooting, stopped, failed).
    Offline,
    Malformed,
    /// An ACK or RST that matched nothing, or a ping.
    Unmatched,
    /// A retransmitted request answered from the cache.
    Duplicate,
    /// A request (or ping) from a source `accept_requests` does not admit: unanswered.
    ForeignRequest,
    /// An ACK, RST or response from an endpoint none of the client's exchanges went to.
    ForeignReply,
}

/// What happened, for metrics. Every request yields exactly one `Request`, every server
/// operation one `Operation`; every request that went on the wire one `Sent` first, so
/// `Sent` minus ended-and-not-`Unsent` requests is what is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Sent(RequestKind),
    Request(RequestRecord),
    Operation(OperationRecord),
    State(ClientState),
    Dropped(Dropped),
    /// Queue mode: awake again; the Update goes first.
    Woke,
    /// DTLS: a handshake began (its first `ClientHello` is queued).
    HandshakeStarted,
    /// DTLS: a handshake ended (every one that starts ends once).
    Handshake(HandshakeRecord),
    /// DTLS: an open session ended (alert, `close_notify`); a new handshake follows when needed.
    SessionLost(crate::security::dtls::Failure),
    /// A bootstrap attempt ended (every one that starts ends once).
    Bootstrap(BootstrapRecord),
    /// TCP/TLS: a connection setup ended (every one that starts ends once).
    Connection(ConnectionRecord),
    /// TCP/TLS: an open connection was lost; a registered client registers again on a new one.
    ConnectionLost(ConnectionFailure),
    /// Firmware Update (object 5): a download started, ended, or an update ended.
    Firmware(super::FirmwareRecord),
}

/// Every request kind, in the order metrics, reports and the dashboard list them.
pub const REQUEST_KINDS: [RequestKind; 7] = [
    RequestKind::Register,
    RequestKind::Update,
    RequestKind::Deregister,
    RequestKind::Notify,
    RequestKind::Bootstrap,
    RequestKind::Send,
    RequestKind::Download,
];

/// Every client state, in listing order.
pub const CLIENT_STATES: [ClientState; 9] = [
    ClientState::Starting,
    ClientState::Bootstrapping,
    ClientState::Registering,
    ClientState::Registered,
    ClientState::Sleeping,
    ClientState::Rebooting,
    ClientState::Deregistering,
    ClientState::Stopped,
    ClientState::Failed,
];

/// Every server operation kind, in listing order.
pub const OPERATION_KINDS: [OperationKind; 14] = [
    OperationKind::Read,
    OperationKind::Discover,
    OperationKind::Write,
    OperationKind::WriteAttributes,
    OperationKind::Execute,
    OperationKind::Create,
    OperationKind::Delete,
    OperationKind::Observe,
    OperationKind::CancelObservation,
    OperationKind::ReadComposite,
    OperationKind::WriteComposite,
    OperationKind::ObserveComposite,
    OperationKind::BootstrapFinish,
    OperationKind::Other,
];

/// The name in reports, metrics and thresholds (`register`...).
pub fn request_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Register => "register",
        RequestKind::Update => "update",
        RequestKind::Deregister => "deregister",
        RequestKind::Notify => "notify",
        RequestKind::Bootstrap => "bootstrap",
        RequestKind::Send => "send",
        RequestKind::Download => "download",
    }
}

pub fn state_name(state: ClientState) -> &'static str {
    match state {
        ClientState::Starting => "starting",
        ClientState::Bootstrapping => "bootstrapping",
        ClientState::Registering => "registering",
        ClientState::Registered => "registered",
        ClientState::Sleeping => "sleeping",
        ClientState::Rebooting => "rebooting",
        ClientState::Deregistering => "deregistering",
        ClientState::Stopped => "stopped",
        ClientState::Failed => "failed",
    }
}

pub fn operation_name(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Read => "read",
        OperationKind::Discover => "discover",
        OperationKind::Write => "write",
        OperationKind::WriteAttributes => "write-attributes",
        OperationKind::Execute => "execute",
        OperationKind::Create => "create",
        OperationKind::Delete => "delete",
        OperationKind::Observe => "observe",
        OperationKind::CancelObservation => "cancel-observation",
        OperationKind::ReadComposite => "read-composite",
        OperationKind::WriteComposite => "write-composite",
        OperationKind::ObserveComposite => "observe-composite",
        OperationKind::BootstrapFinish => "bootstrap-finish",
        OperationKind::Other => "other",
    }
}

/// The position in [`REQUEST_KINDS`] (and in per-kind arrays of counters).
pub fn request_index(kind: RequestKind) -> usize {
    REQUEST_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// The position in [`CLIENT_STATES`].
pub fn state_index(state: ClientState) -> usize {
    CLIENT_STATES.iter().position(|s| *s == state).unwrap_or(0)
}

/// The position in [`OPERATION_KINDS`].
pub fn operation_index(kind: OperationKind) -> usize {
    OPERATION_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}
