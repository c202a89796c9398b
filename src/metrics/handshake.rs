//! DTLS handshakes, and TCP/TLS connection setups (connect, TLS handshake, CSM exchange),
//! counted alike: how long the good ones took, why the others failed, sessions lost later.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::{latency_histogram, micros};
use crate::client::{
    ConnectionFailure, ConnectionOutcome, ConnectionRecord, HandshakeOutcome, HandshakeRecord,
};
use crate::security::dtls::Failure;

/// Every handshake (or connection setup) that started ends once: `started = ok + failed +
/// aborted + in progress`.
#[derive(Clone, Debug)]
pub struct HandshakeStats {
    /// Begun (a `ClientHello` queued); 0 in reports read back, which count ended ones only.
    pub started: u64,
    pub ok: u64,
    pub failed: u64,
    /// The client stopped or went offline first.
    pub aborted: u64,
    /// Failed handshakes by reason (an alert's name, `timeout`, ...), with counts.
    pub failures: Vec<(String, u64)>,
    /// Sessions lost after their handshake, by reason.
    pub lost: Vec<(String, u64)>,
    /// First `ClientHello` to connected, successful handshakes only (µs).
    pub latency: Histogram<u64>,
}

impl Default for HandshakeStats {
    fn default() -> Self {
        HandshakeStats {
            started: 0,
            ok: 0,
            failed: 0,
            aborted: 0,
            failures: Vec::new(),
            lost: Vec::new(),
            latency: latency_histogram(),
        }
    }
}

/// Adds `n` to `reason`'s count (a handful of reasons: a list beats a map).
pub(crate) fn count(counts: &mut Vec<(String, u64)>, reason: &str, n: u64) {
    match counts.iter_mut().find(|(r, _)| r == reason) {
        Some((_, m)) => *m += n,
        None => counts.push((reason.to_string(), n)),
    }
}

impl HandshakeStats {
    /// Ended handshakes.
    pub fn total(&self) -> u64 {
        self.ok + self.failed + self.aborted
    }

    /// Begun and not ended yet.
    pub fn in_progress(&self) -> u64 {
        self.started.saturating_sub(self.total())
    }

    pub(super) fn record(&mut self, r: &HandshakeRecord) {
        let took = r.completed.saturating_since(r.started);
        match r.outcome {
            HandshakeOutcome::Connected => self.ended(Ok(took)),
            HandshakeOutcome::Failed(failure) => self.ended(Err(Some(failure.name()))),
            HandshakeOutcome::Aborted => self.ended(Err(None)),
        }
    }

    pub(super) fn record_connection(&mut self, r: &ConnectionRecord) {
        let took = r.completed.saturating_since(r.started);
        match r.outcome {
            ConnectionOutcome::Connected => self.ended(Ok(took)),
            ConnectionOutcome::Failed(failure) => self.ended(Err(Some(failure.name()))),
            ConnectionOutcome::Aborted => self.ended(Err(None)),
        }
    }

    /// One ended: `Ok(duration)` connected, `Err(Some(reason))` failed, `Err(None)` aborted.
    fn ended(&mut self, outcome: Result<Duration, Option<&str>>) {
        match outcome {
            Ok(took) => {
                self.ok += 1;
                self.latency.saturating_record(micros(took));
            }
            Err(Some(reason)) => {
                self.failed += 1;
                count(&mut self.failures, reason, 1);
            }
            Err(None) => self.aborted += 1,
        }
    }

    pub(super) fn session_lost(&mut self, failure: Failure) {
        count(&mut self.lost, failure.name(), 1);
    }

    pub(super) fn connection_lost(&mut self, failure: ConnectionFailure) {
        count(&mut self.lost, failure.name(), 1);
    }

    pub(super) fn merge(&mut self, other: &HandshakeStats) {
        self.started += other.started;
        self.ok += other.ok;
        self.failed += other.failed;
        self.aborted += other.aborted;
        for (reason, n) in &other.failures {
            count(&mut self.failures, reason, *n);
        }
        for (reason, n) in &other.lost {
            count(&mut self.lost, reason, *n);
        }
        // Same bounds on both sides: addition cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}
