//! DTLS handshakes, and TCP/TLS connection setups (connect, TLS handshake, CSM exchange),
//! counted alike: how long the good ones took, why the others failed, sessions lost later.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{latency_histogram, micros, ms};
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

fn reasons(counts: &[(String, u64)]) -> String {
    let shown: Vec<String> = counts.iter().map(|(r, n)| format!("{r} x{n}")).collect();
    shown.join(", ")
}

/// One summary line, e.g. `dtls handshakes: ok 200, failed 0, aborted 0; p50 1.20 ms ...`.
impl fmt::Display for HandshakeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_line(f, "dtls handshakes", "sessions lost")
    }
}

impl HandshakeStats {
    /// The summary line of TCP/TLS connection setups, e.g. `tcp connections: ok 200, ...`.
    pub fn connections_line(&self) -> String {
        struct Line<'a>(&'a HandshakeStats);
        impl fmt::Display for Line<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write_line(f, "tcp connections", "connections lost")
            }
        }
        Line(self).to_string()
    }

    fn write_line(&self, f: &mut fmt::Formatter<'_>, what: &str, lost: &str) -> fmt::Result {
        write!(
            f,
            "{what}: ok {}, failed {}, aborted {}",
            self.ok, self.failed, self.aborted
        )?;
        if !self.latency.is_empty() {
            let h = &self.latency;
            write!(
                f,
                "; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            )?;
        }
        if !self.failures.is_empty() {
            write!(f, "; failures: {}", reasons(&self.failures))?;
        }
        if !self.lost.is_empty() {
            write!(f, "; {lost}: {}", reasons(&self.lost))?;
        }
        Ok(())
    }
}
