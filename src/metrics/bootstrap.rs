//! Bootstraps: how long the good ones took (Bootstrap-Request due to Bootstrap-Finish), why
//! the others failed.

use hdrhistogram::Histogram;

use super::handshake::count;
use super::{latency_histogram, micros};
use crate::client::{BootstrapOutcome, BootstrapRecord};

/// Every bootstrap attempt that started ends once: `finished + failed + aborted`.
#[derive(Clone, Debug)]
pub struct BootstrapStats {
    pub finished: u64,
    pub failed: u64,
    /// The client stopped first.
    pub aborted: u64,
    /// Failed attempts by reason (`finish-timeout`, `rejected`...), with counts.
    pub failures: Vec<(String, u64)>,
    /// From when the Bootstrap-Request was due to the Bootstrap-Finish, finished ones only (µs).
    pub duration: Histogram<u64>,
}

impl Default for BootstrapStats {
    fn default() -> Self {
        BootstrapStats {
            finished: 0,
            failed: 0,
            aborted: 0,
            failures: Vec::new(),
            duration: latency_histogram(),
        }
    }
}

impl BootstrapStats {
    pub fn total(&self) -> u64 {
        self.finished + self.failed + self.aborted
    }

    pub(super) fn record(&mut self, r: &BootstrapRecord) {
        match r.outcome {
            BootstrapOutcome::Finished => {
                self.finished += 1;
                let took = r.completed.saturating_since(r.started);
                self.duration.saturating_record(micros(took));
            }
            BootstrapOutcome::Failed(failure) => {
                self.failed += 1;
                count(&mut self.failures, failure.name(), 1);
            }
            BootstrapOutcome::Aborted => self.aborted += 1,
        }
    }

    pub(super) fn merge(&mut self, other: &BootstrapStats) {
        self.finished += other.finished;
        self.failed += other.failed;
        self.aborted += other.aborted;
        for (reason, n) in &other.failures {
            count(&mut self.failures, reason, *n);
        }
        // Same bounds on both sides: addition cannot fail.
        let _ = self.duration.add(&other.duration);
    }
}
