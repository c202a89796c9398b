//! DTLS handshakes: how long the good ones took, why the others failed, sessions lost later.

use std::fmt;

use hdrhistogram::Histogram;

use super::{latency_histogram, micros, ms};
use crate::client::{HandshakeOutcome, HandshakeRecord};
use crate::dtls::Failure;

/// Every handshake that started ends once: `started = ok + failed + aborted + in progress`.
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
        match r.outcome {
            HandshakeOutcome::Connected => {
                self.ok += 1;
                let took = r.completed.saturating_since(r.started);
                self.latency.saturating_record(micros(took));
            }
            HandshakeOutcome::Failed(failure) => {
                self.failed += 1;
                count(&mut self.failures, failure.name(), 1);
            }
            HandshakeOutcome::Aborted => self.aborted += 1,
        }
    }

    pub(super) fn session_lost(&mut self, failure: Failure) {
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
        write!(
            f,
            "dtls handshakes: ok {}, failed {}, aborted {}",
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
            write!(f, "; sessions lost: {}", reasons(&self.lost))?;
        }
        Ok(())
    }
}
