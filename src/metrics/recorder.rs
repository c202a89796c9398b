//! A shard's counters: fed from its clients' events on its own thread, no locks.

use std::time::Duration;

use super::{RequestStats, Snapshot, TrafficStats, micros};
use crate::client::{
    CLIENT_STATES, ClientState, Dropped, Event, OperationKind, RequestOutcome, RequestRecord,
    operation_index, request_index, state_index,
};

impl RequestStats {
    fn record(&mut self, r: &RequestRecord) {
        match r.outcome {
            RequestOutcome::Unsent => {
                self.unsent += 1;
                return;
            }
            RequestOutcome::Aborted => self.aborted += 1,
            RequestOutcome::Timeout => self.timeout += 1,
            RequestOutcome::Unconfirmed => self.unacknowledged += 1,
            RequestOutcome::Reset => {
                self.error += 1;
                self.count_code(None);
            }
            RequestOutcome::Response(code) => {
                if r.outcome.is_success() {
                    self.ok += 1;
                } else {
                    self.error += 1;
                }
                self.count_code(Some(code));
            }
        }
        self.retransmissions += u64::from(r.retransmissions);
        // Only answered requests have a latency; NON notifications have none to measure.
        if matches!(
            r.outcome,
            RequestOutcome::Response(_) | RequestOutcome::Reset
        ) {
            let corrected = r.completed.saturating_since(r.intended);
            let service = r.completed.saturating_since(r.sent);
            self.latency.saturating_record(micros(corrected));
            self.service.saturating_record(micros(service));
        }
    }

    fn count_code(&mut self, code: Option<u8>) {
        match self.codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => self.codes.push((code, 1)),
        }
    }
}

/// A shard's counters, written from its own thread only.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    snapshot: Snapshot,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder::default()
    }

    pub fn event(&mut self, event: &Event) {
        let s = &mut self.snapshot;
        match event {
            Event::Sent(kind) => s.requests[request_index(*kind)].sent += 1,
            Event::Request(r) => s.requests[request_index(r.kind)].record(r),
            Event::Operation(o) => {
                let stats = &mut s.operations[operation_index(o.kind)];
                stats.total += 1;
                if o.code >> 5 == 2 {
                    stats.ok += 1;
                } else {
                    stats.error += 1;
                }
            }
            Event::State(_) => {}
            Event::Dropped(reason) => {
                let t = &mut s.traffic;
                match reason {
                    Dropped::Asleep => t.asleep += 1,
                    Dropped::Offline => t.offline += 1,
                    Dropped::Malformed => t.malformed += 1,
                    Dropped::Duplicate => t.duplicate += 1,
                    Dropped::Unmatched => t.client_unmatched += 1,
                    Dropped::ForeignRequest => t.foreign_requests += 1,
                    Dropped::ForeignReply => t.foreign_replies += 1,
                }
            }
            Event::Woke => s.woke += 1,
            Event::HandshakeStarted => s.handshakes.started += 1,
            Event::Handshake(h) => s.handshakes.record(h),
            Event::SessionLost(failure) => s.handshakes.session_lost(*failure),
            Event::Bootstrap(b) => s.bootstrap.record(b),
            Event::Connection(c) => s.connections.record_connection(c),
            Event::ConnectionLost(failure) => s.connections.connection_lost(*failure),
            Event::Firmware(f) => s.firmware.record(f),
        }
    }

    /// A client moved from one state to another (`None`: it did not exist before / is gone).
    pub fn state_change(&mut self, from: Option<ClientState>, to: Option<ClientState>) {
        let s = &mut self.snapshot;
        if let Some(from) = from {
            s.states[state_index(from)] -= 1;
        }
        if let Some(to) = to {
            let i = state_index(to);
            s.states[i] += 1;
            s.peak_states[i] = s.peak_states[i].max(s.states[i]);
        }
    }

    /// Requests sent and not ended yet, all kinds.
    pub fn in_flight(&self) -> u64 {
        self.snapshot
            .requests
            .iter()
            .map(RequestStats::in_flight)
            .sum()
    }

    /// Clients neither stopped nor failed.
    pub fn live_clients(&self) -> u64 {
        CLIENT_STATES
            .iter()
            .filter(|s| !matches!(s, ClientState::Stopped | ClientState::Failed))
            .map(|s| self.snapshot.state(*s))
            .sum()
    }

    /// A server operation of `kind` took the client `took` to handle.
    pub fn handled(&mut self, kind: OperationKind, took: Duration) {
        self.snapshot.operations[operation_index(kind)]
            .handling
            .saturating_record(micros(took));
    }

    /// Queue mode: a client's first server request came `delay` after it woke.
    pub fn woke_to_request(&mut self, delay: Duration) {
        self.snapshot
            .wake_to_request
            .saturating_record(micros(delay));
    }

    pub fn started(&mut self) {
        self.snapshot.started += 1;
    }

    pub fn traffic(&mut self) -> &mut TrafficStats {
        &mut self.snapshot.traffic
    }

    /// A copy of everything counted so far.
    pub fn snapshot(&mut self, elapsed: Duration) -> Snapshot {
        self.snapshot.elapsed = elapsed;
        self.snapshot.clone()
    }

    /// Copies into `into`, reusing its histograms' memory.
    pub fn publish(&mut self, elapsed: Duration, into: &mut Snapshot) {
        self.snapshot.elapsed = elapsed;
        into.clone_from(&self.snapshot);
    }
}
