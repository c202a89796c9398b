//! Everything counted so far, by kind: what a [`super::Recorder`] hands out and shards merge.
//! The text forms (progress line, end-of-run table) are in `crate::report::summary`.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::latency_histogram;
use super::{BootstrapStats, FirmwareStats, HandshakeStats};
use crate::client::{
    CLIENT_STATES, ClientState, OPERATION_KINDS, OperationKind, REQUEST_KINDS, RequestKind,
    operation_index, request_index, state_index,
};
use crate::transport::impairment::ImpairmentStats;

/// One kind of client-initiated request.
/// `sent = ok + error + timeout + aborted + unacknowledged + in_flight`.
#[derive(Clone, Debug)]
pub struct RequestStats {
    pub sent: u64,
    /// 2.xx answers and ACKs of CON notifications.
    pub ok: u64,
    /// 4.xx/5.xx answers and RSTs.
    pub error: u64,
    pub timeout: u64,
    /// In flight when the client went offline (reboot, stop).
    pub aborted: u64,
    /// NON notifications: done once sent, with no answer to count as ok or error.
    pub unacknowledged: u64,
    /// Dropped before sending (not part of `sent`).
    pub unsent: u64,
    pub retransmissions: u64,
    /// Answer codes (class*32+detail; 0 for a bare ACK) and RSTs (`None`), with counts.
    pub codes: Vec<(Option<u8>, u64)>,
    /// From when the request was due (corrected for coordinated omission).
    pub latency: Histogram<u64>,
    /// From when it was actually sent.
    pub service: Histogram<u64>,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            sent: 0,
            ok: 0,
            error: 0,
            timeout: 0,
            aborted: 0,
            unacknowledged: 0,
            unsent: 0,
            retransmissions: 0,
            codes: Vec::new(),
            latency: latency_histogram(),
            service: latency_histogram(),
        }
    }
}

impl RequestStats {
    /// Requests sent that have not ended yet.
    pub fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.ended())
    }

    /// Requests that ended one way or another: answered, timed out, aborted, or sent NON.
    pub fn ended(&self) -> u64 {
        self.ok + self.error + self.timeout + self.aborted + self.unacknowledged
    }

    /// The p99 from the due time and from the send, when they differ enough to matter (by more
    /// than a tenth and a millisecond): the sign of coordinated omission being corrected.
    pub fn omission_gap(&self) -> Option<(u64, u64)> {
        if self.latency.is_empty() {
            return None;
        }
        let due = self.latency.value_at_quantile(0.99);
        let sent = self.service.value_at_quantile(0.99);
        (due > sent + sent / 10 && due - sent > 1000).then_some((due, sent))
    }

    fn merge(&mut self, other: &RequestStats) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.error += other.error;
        self.timeout += other.timeout;
        self.aborted += other.aborted;
        self.unacknowledged += other.unacknowledged;
        self.unsent += other.unsent;
        self.retransmissions += other.retransmissions;
        for (code, n) in &other.codes {
            match self.codes.iter_mut().find(|(c, _)| c == code) {
                Some((_, m)) => *m += n,
                None => self.codes.push((*code, *n)),
            }
        }
        // Same bounds on both sides: addition cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
    }
}

/// Server-initiated operations of one kind: how the clients answered, and how long a client
/// took to handle one (from the datagram in to the answer queued, in µs).
#[derive(Clone, Debug)]
pub struct ServerOperationStats {
    pub total: u64,
    /// Answered 2.xx.
    pub ok: u64,
    pub error: u64,
    pub handling: Histogram<u64>,
}

impl Default for ServerOperationStats {
    fn default() -> Self {
        ServerOperationStats {
            total: 0,
            ok: 0,
            error: 0,
            handling: latency_histogram(),
        }
    }
}

/// Datagrams and what became of them (serialised as is in the JSON report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrafficStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Received for an address no client of this run has (or one not started yet).
    pub unmatched: u64,
    /// From another host while the server is on loopback: dropped.
    pub foreign: u64,
    /// Longer than the receive slot: cut, not processed.
    pub truncated: u64,
    /// The kernel would not send them (counted and dropped; CoAP retransmits CON).
    pub send_errors: u64,
    /// Dropped by the kernel because a receive buffer was full.
    pub kernel_drops: u64,
    /// Datagrams the clients did not process, by reason.
    pub asleep: u64,
    pub offline: u64,
    pub malformed: u64,
    pub duplicate: u64,
    pub client_unmatched: u64,
    /// Requests from a source the client's `accept_requests` does not admit.
    #[serde(default)]
    pub foreign_requests: u64,
    /// ACKs, RSTs and responses from an endpoint no exchange went to.
    #[serde(default)]
    pub foreign_replies: u64,
    /// What the emulated link (`[network]`) did; absent in older reports: read as zero.
    #[serde(default)]
    pub network: ImpairmentStats,
}

/// Everything one shard (or, merged, the whole run) counted since the start.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Time since the run started.
    pub elapsed: Duration,
    pub requests: [RequestStats; REQUEST_KINDS.len()],
    pub operations: [ServerOperationStats; OPERATION_KINDS.len()],
    /// Clients by state now.
    pub states: [u64; CLIENT_STATES.len()],
    /// Highest count ever seen per state (a sum over shards when merged).
    pub peak_states: [u64; CLIENT_STATES.len()],
    pub traffic: TrafficStats,
    /// Clients started so far (restarts after churn included).
    pub started: u64,
    /// Queue mode: wake-ups.
    pub woke: u64,
    /// Queue mode: from a client waking to the first request the server sent it (µs); wake-ups
    /// the server sent nothing for are not counted.
    pub wake_to_request: Histogram<u64>,
    /// DTLS clients only.
    pub handshakes: HandshakeStats,
    /// Bootstrapping clients only.
    pub bootstrap: BootstrapStats,
    /// TCP/TLS clients only: connection setups (connect, TLS, CSM) and connections lost.
    pub connections: HandshakeStats,
    /// Firmware Update (object 5) downloads and updates.
    pub firmware: FirmwareStats,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            elapsed: Duration::ZERO,
            requests: Default::default(),
            operations: Default::default(),
            wake_to_request: latency_histogram(),
            states: [0; CLIENT_STATES.len()],
            peak_states: [0; CLIENT_STATES.len()],
            traffic: TrafficStats::default(),
            started: 0,
            woke: 0,
            handshakes: HandshakeStats::default(),
            bootstrap: BootstrapStats::default(),
            connections: HandshakeStats::default(),
            firmware: FirmwareStats::default(),
        }
    }
}

impl Snapshot {
    pub fn request(&self, kind: RequestKind) -> &RequestStats {
        &self.requests[request_index(kind)]
    }

    pub fn state(&self, state: ClientState) -> u64 {
        self.states[state_index(state)]
    }

    pub fn operation(&self, kind: OperationKind) -> &ServerOperationStats {
        &self.operations[operation_index(kind)]
    }

    /// Whether the server ever answered anything (a response, an ACK, an RST, a request).
    pub fn server_answered(&self) -> bool {
        self.requests.iter().any(|r| !r.codes.is_empty())
            || self.operations.iter().any(|o| o.total > 0)
            || self.handshakes.ok > 0
            || self.connections.ok > 0
    }

    /// Whether anything was tried toward the server: a request sent or a handshake begun.
    pub fn server_tried(&self) -> bool {
        self.requests.iter().any(|r| r.sent > 0)
            || self.handshakes.total() > 0
            || self.connections.total() > 0
    }

    /// The request kinds worth a row: all of them, but Bootstrap, Send and Download only in
    /// runs that bootstrap, send or download firmware.
    pub fn kinds_used(&self) -> impl Iterator<Item = RequestKind> + '_ {
        REQUEST_KINDS.into_iter().filter(|k| {
            let r = self.request(*k);
            !matches!(
                k,
                RequestKind::Bootstrap | RequestKind::Send | RequestKind::Download
            ) || r.sent + r.unsent > 0
        })
    }

    /// Adds another shard's counts.
    pub fn merge(&mut self, other: &Snapshot) {
        self.elapsed = self.elapsed.max(other.elapsed);
        for (a, b) in self.requests.iter_mut().zip(&other.requests) {
            a.merge(b);
        }
        for (a, b) in self.operations.iter_mut().zip(&other.operations) {
            a.total += b.total;
            a.ok += b.ok;
            a.error += b.error;
            let _ = a.handling.add(&b.handling);
        }
        let _ = self.wake_to_request.add(&other.wake_to_request);
        for i in 0..self.states.len() {
            self.states[i] += other.states[i];
            self.peak_states[i] += other.peak_states[i];
        }
        let (t, o) = (&mut self.traffic, &other.traffic);
        t.datagrams_in += o.datagrams_in;
        t.datagrams_out += o.datagrams_out;
        t.bytes_in += o.bytes_in;
        t.bytes_out += o.bytes_out;
        t.unmatched += o.unmatched;
        t.truncated += o.truncated;
        t.foreign += o.foreign;
        t.send_errors += o.send_errors;
        t.kernel_drops += o.kernel_drops;
        t.asleep += o.asleep;
        t.offline += o.offline;
        t.malformed += o.malformed;
        t.duplicate += o.duplicate;
        t.client_unmatched += o.client_unmatched;
        t.foreign_requests += o.foreign_requests;
        t.foreign_replies += o.foreign_replies;
        t.network.merge(&o.network);
        self.started += other.started;
        self.woke += other.woke;
        self.handshakes.merge(&other.handshakes);
        self.bootstrap.merge(&other.bootstrap);
        self.firmware.merge(&other.firmware);
        self.connections.merge(&other.connections);
    }
}
