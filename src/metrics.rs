//! What happened in a run, counted: per-shard [`Recorder`]s fed from client events without locks,
//! merged into a [`Snapshot`] that the progress line, the summary and later the dashboard read.

use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;

mod bootstrap;
mod handshake;

pub use bootstrap::BootstrapStats;
pub use handshake::HandshakeStats;

use crate::client::{
    ClientState, Dropped, Event, OperationKind, Outcome, RequestKind, RequestRecord,
};

/// Latencies are recorded in µs from 1 µs to 60 s at 3 significant digits.
const LATENCY_MAX_US: u64 = 60_000_000;

pub const REQUEST_KINDS: [RequestKind; 5] = [
    RequestKind::Register,
    RequestKind::Update,
    RequestKind::Deregister,
    RequestKind::Notify,
    RequestKind::Bootstrap,
];

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

pub const OPERATION_KINDS: [OperationKind; 11] = [
    OperationKind::Read,
    OperationKind::Discover,
    OperationKind::Write,
    OperationKind::WriteAttributes,
    OperationKind::Execute,
    OperationKind::Create,
    OperationKind::Delete,
    OperationKind::Observe,
    OperationKind::CancelObservation,
    OperationKind::BootstrapFinish,
    OperationKind::Other,
];

pub fn request_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Register => "register",
        RequestKind::Update => "update",
        RequestKind::Deregister => "deregister",
        RequestKind::Notify => "notify",
        RequestKind::Bootstrap => "bootstrap",
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
        OperationKind::BootstrapFinish => "bootstrap-finish",
        OperationKind::Other => "other",
    }
}

fn request_index(kind: RequestKind) -> usize {
    REQUEST_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

pub fn state_index(state: ClientState) -> usize {
    CLIENT_STATES.iter().position(|s| *s == state).unwrap_or(0)
}

fn operation_index(kind: OperationKind) -> usize {
    OPERATION_KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static bounds are valid")
}

/// One kind of client-initiated request. `sent = ok + error + timeout + aborted + in_flight`.
#[derive(Clone, Debug)]
pub struct RequestStats {
    pub sent: u64,
    /// 2.xx answers, ACKs of CON notifications, NON notifications sent.
    pub ok: u64,
    /// 4.xx/5.xx answers and RSTs.
    pub error: u64,
    pub timeout: u64,
    /// In flight when the client went offline (reboot, stop).
    pub aborted: u64,
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
            unsent: 0,
            retransmissions: 0,
            codes: Vec::new(),
            latency: latency_histogram(),
            service: latency_histogram(),
        }
    }
}

impl RequestStats {
    pub fn in_flight(&self) -> u64 {
        self.sent
            .saturating_sub(self.ok + self.error + self.timeout + self.aborted)
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

    fn record(&mut self, r: &RequestRecord) {
        match r.outcome {
            Outcome::Unsent => {
                self.unsent += 1;
                return;
            }
            Outcome::Aborted => self.aborted += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::Unconfirmed => self.ok += 1,
            Outcome::Reset => {
                self.error += 1;
                self.count_code(None);
            }
            Outcome::Response(code) => {
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
        if matches!(r.outcome, Outcome::Response(_) | Outcome::Reset) {
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

    fn merge(&mut self, other: &RequestStats) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.error += other.error;
        self.timeout += other.timeout;
        self.aborted += other.aborted;
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

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Server-initiated operations of one kind: how the clients answered, and how long a client
/// took to handle one (from the datagram in to the answer queued, in µs).
#[derive(Clone, Debug)]
pub struct OperationStats {
    pub total: u64,
    /// Answered 2.xx.
    pub ok: u64,
    pub error: u64,
    pub handling: Histogram<u64>,
}

impl Default for OperationStats {
    fn default() -> Self {
        OperationStats {
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
}

/// Everything one shard (or, merged, the whole run) counted since the start.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Time since the run started.
    pub elapsed: Duration,
    pub requests: [RequestStats; REQUEST_KINDS.len()],
    pub operations: [OperationStats; OPERATION_KINDS.len()],
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

    pub fn operation(&self, kind: OperationKind) -> &OperationStats {
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

    /// The request kinds worth a row: all of them, but Bootstrap only in runs that bootstrap.
    pub fn kinds_used(&self) -> impl Iterator<Item = RequestKind> + '_ {
        REQUEST_KINDS.into_iter().filter(|k| {
            let r = self.request(*k);
            *k != RequestKind::Bootstrap || r.sent + r.unsent > 0
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
        self.started += other.started;
        self.woke += other.woke;
        self.handshakes.merge(&other.handshakes);
        self.bootstrap.merge(&other.bootstrap);
        self.connections.merge(&other.connections);
    }

    /// A one-line account for logs: clients by state, request rates since `previous`, errors.
    pub fn progress_line(&self, previous: &Snapshot) -> String {
        let seconds = self
            .elapsed
            .saturating_sub(previous.elapsed)
            .as_secs_f64()
            .max(1e-3);
        let mut line = format!("[{:>6.1}s]", self.elapsed.as_secs_f64());
        for state in CLIENT_STATES {
            let n = self.state(state);
            if n > 0 {
                let _ = write!(line, " {} {n}", state_name(state));
            }
        }
        line.push_str(" |");
        for kind in self.kinds_used() {
            let now = self.request(kind);
            let before = previous.request(kind);
            let rate = (now.sent - before.sent) as f64 / seconds;
            let _ = write!(line, " {} {rate:.0}/s", request_name(kind));
        }
        let ops: u64 = self.operations.iter().map(|o| o.total).sum::<u64>()
            - previous.operations.iter().map(|o| o.total).sum::<u64>();
        let _ = write!(line, " server-ops {:.0}/s", ops as f64 / seconds);
        let failures =
            |s: &Snapshot| -> u64 { s.requests.iter().map(|r| r.error + r.timeout).sum() };
        let _ = write!(line, " | errors+timeouts {}", failures(self));
        if self.traffic.kernel_drops > 0 {
            let _ = write!(line, " kernel-drops {}", self.traffic.kernel_drops);
        }
        line
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The end-of-run table: one row per request kind, then server operations and traffic.
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_requests(f)?;
        self.fmt_operations(f)?;
        self.fmt_clients_and_traffic(f)
    }
}

impl Snapshot {
    fn fmt_requests(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<11} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "request",
            "sent",
            "ok",
            "error",
            "timeout",
            "aborted",
            "flight",
            "retrans",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        )?;
        for kind in self.kinds_used() {
            let r = self.request(kind);
            let h = &r.latency;
            let q = |x: f64| {
                if h.is_empty() {
                    0.0
                } else {
                    ms(h.value_at_quantile(x))
                }
            };
            writeln!(
                f,
                "{:<11} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                request_name(kind),
                r.sent,
                r.ok,
                r.error,
                r.timeout,
                r.aborted,
                r.in_flight(),
                r.retransmissions,
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                ms(h.max()),
            )?;
        }
        for kind in REQUEST_KINDS {
            let r = self.request(kind);
            if let Some((due, sent)) = r.omission_gap() {
                writeln!(
                    f,
                    "{}: p99 {:.2} ms from when requests were due, {:.2} ms from when they were \
                     sent: requests waited before going out",
                    request_name(kind),
                    ms(due),
                    ms(sent)
                )?;
            }
        }
        let codes: Vec<String> = REQUEST_KINDS
            .iter()
            .flat_map(|k| {
                let r = self.request(*k);
                r.codes
                    .iter()
                    .filter(|(c, _)| c.is_none_or(|c| c >> 5 > 2))
                    .map(move |(c, n)| match c {
                        Some(c) => format!("{} {}.{:02} x{n}", request_name(*k), c >> 5, c & 31),
                        None => format!("{} RST x{n}", request_name(*k)),
                    })
            })
            .collect();
        if !codes.is_empty() {
            writeln!(f, "error answers: {}", codes.join(", "))?;
        }
        Ok(())
    }

    fn fmt_operations(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<String> = OPERATION_KINDS
            .iter()
            .filter_map(|k| {
                let o = self.operation(*k);
                (o.total > 0).then(|| {
                    let h = &o.handling;
                    format!(
                        "{} {} ({} errors; handled in p50 {} us, p99 {} us)",
                        operation_name(*k),
                        o.total,
                        o.error,
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.99)
                    )
                })
            })
            .collect();
        if !ops.is_empty() {
            writeln!(f, "server operations: {}", ops.join(", "))?;
        }
        if self.woke > 0 {
            let h = &self.wake_to_request;
            writeln!(
                f,
                "queue mode: {} wake-ups; the server's first request came after {} of them, \
                 p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms after waking",
                self.woke,
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            )?;
        }
        Ok(())
    }

    fn fmt_clients_and_traffic(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let states: Vec<String> = CLIENT_STATES
            .iter()
            .filter(|s| self.peak_states[state_index(**s)] > 0)
            .map(|s| format!("{} {}", state_name(*s), self.peak_states[state_index(*s)]))
            .collect();
        writeln!(f, "peak clients by state: {}", states.join(", "))?;
        if self.handshakes.total() > 0 || !self.handshakes.lost.is_empty() {
            writeln!(f, "{}", self.handshakes)?;
        }
        if self.bootstrap.total() > 0 {
            writeln!(f, "{}", self.bootstrap)?;
        }
        if self.connections.total() > 0 || !self.connections.lost.is_empty() {
            writeln!(f, "{}", self.connections.connections_line())?;
        }
        let t = &self.traffic;
        write!(
            f,
            "datagrams: out {} ({} B), in {} ({} B); unmatched {}, foreign {}, send errors {}, \
             kernel drops {}; clients dropped: asleep {}, offline {}, malformed {}, duplicate {}",
            t.datagrams_out,
            t.bytes_out,
            t.datagrams_in,
            t.bytes_in,
            t.unmatched,
            t.foreign,
            t.send_errors,
            t.kernel_drops,
            t.asleep,
            t.offline,
            t.malformed,
            t.duplicate,
        )
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
                }
            }
            Event::Woke => s.woke += 1,
            Event::HandshakeStarted => s.handshakes.started += 1,
            Event::Handshake(h) => s.handshakes.record(h),
            Event::SessionLost(failure) => s.handshakes.session_lost(*failure),
            Event::Bootstrap(b) => s.bootstrap.record(b),
            Event::Connection(c) => s.connections.record_connection(c),
            Event::ConnectionLost(failure) => s.connections.connection_lost(*failure),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Instant;

    fn record(
        kind: RequestKind,
        outcome: Outcome,
        intended_ms: u64,
        sent_ms: u64,
        done_ms: u64,
    ) -> Event {
        let at = |ms| Instant::ZERO + Duration::from_millis(ms);
        Event::Request(RequestRecord {
            kind,
            intended: at(intended_ms),
            sent: at(sent_ms),
            completed: at(done_ms),
            outcome,
            retransmissions: 1,
        })
    }

    #[test]
    fn every_sent_request_is_accounted_for_and_latency_counts_from_the_due_time() {
        let mut rec = Recorder::new();
        for _ in 0..5 {
            rec.event(&Event::Sent(RequestKind::Register));
        }
        rec.event(&record(
            RequestKind::Register,
            Outcome::Response(0x41),
            0,
            100,
            110,
        ));
        rec.event(&record(
            RequestKind::Register,
            Outcome::Response(0xA0),
            0,
            0,
            20,
        ));
        rec.event(&record(
            RequestKind::Register,
            Outcome::Timeout,
            0,
            0,
            93_000,
        ));
        rec.event(&record(RequestKind::Register, Outcome::Reset, 0, 0, 5));
        rec.event(&record(RequestKind::Register, Outcome::Unsent, 0, 0, 0));
        let s = rec.snapshot(Duration::from_secs(1));
        let r = s.request(RequestKind::Register);
        assert_eq!(
            (r.sent, r.ok, r.error, r.timeout, r.unsent),
            (5, 1, 2, 1, 1)
        );
        assert_eq!(r.in_flight(), 1);
        assert_eq!(
            r.sent,
            r.ok + r.error + r.timeout + r.aborted + r.in_flight()
        );
        assert_eq!(r.retransmissions, 4);
        // The 2.01 was due at 0 and answered at 110 ms, though sent at 100 ms; the 5.00 and
        // RST (20 ms and 5 ms) were sent when due, so p99 differs: 110 ms from the due time, 20
        // ms from the send.
        assert!(r.omission_gap().is_some());
        assert_eq!(r.latency.max(), r.latency.highest_equivalent(110_000));
        assert_eq!(
            r.service.value_at_quantile(1.0),
            r.service.highest_equivalent(20_000)
        );
        assert!(r.codes.contains(&(Some(0xA0), 1)) && r.codes.contains(&(None, 1)));
        let table = s.to_string();
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        // "p50 ms" and friends are two words each.
        assert_eq!(header.len() - 5, row.len(), "{table}");
        assert_eq!(header[7], "retrans");
        assert_eq!(row[7], "4");
        assert!(table.contains("register 5.00 x1"), "{table}");
        assert!(
            table.contains("requests waited before going out"),
            "{table}"
        );
        assert!(table.contains("register RST x1"), "{table}");
    }

    #[test]
    fn merge_adds_shards_and_states_track_changes() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.state_change(None, Some(ClientState::Registering));
        a.state_change(
            Some(ClientState::Registering),
            Some(ClientState::Registered),
        );
        b.state_change(None, Some(ClientState::Registering));
        a.event(&Event::Sent(RequestKind::Update));
        b.event(&Event::Sent(RequestKind::Update));
        b.event(&record(
            RequestKind::Update,
            Outcome::Response(0x44),
            0,
            0,
            3,
        ));
        let mut total = a.snapshot(Duration::from_secs(2));
        total.merge(&b.snapshot(Duration::from_secs(1)));
        assert_eq!(total.elapsed, Duration::from_secs(2));
        assert_eq!(total.state(ClientState::Registered), 1);
        assert_eq!(total.state(ClientState::Registering), 1);
        assert_eq!(total.peak_states[state_index(ClientState::Registering)], 2);
        let u = total.request(RequestKind::Update);
        assert_eq!((u.sent, u.ok, u.in_flight()), (2, 1, 1));
        assert_eq!(u.latency.len(), 1);
        assert_eq!(u.omission_gap(), None, "sent when due: nothing to correct");
        assert!(total.server_answered());
        assert!(!Snapshot::default().server_answered());
    }
}
