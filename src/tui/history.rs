//! What the dashboard remembers of the run: the latest cumulative snapshot, and a few counters
//! once a second for rates and sparklines.
//!
//! Only counters are kept per second, not whole snapshots: a snapshot holds eight histograms of
//! ~130 KB each, so ten minutes of them would cost ~600 MB on a box meant to run 100k clients.

use std::collections::VecDeque;
use std::time::Duration;

use crate::client::{CLIENT_STATES, OPERATION_KINDS, REQUEST_KINDS};
use crate::metrics::Snapshot;

/// Ten minutes of seconds: wider than any terminal's sparkline.
pub const DEFAULT_CAPACITY: usize = 600;

/// The counters of one cumulative snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub elapsed: Duration,
    /// Requests sent, per kind (in [`REQUEST_KINDS`] order).
    pub sent: [u64; REQUEST_KINDS.len()],
    /// Server-initiated operations the clients answered, per kind (in [`OPERATION_KINDS`]
    /// order).
    pub operations: [u64; OPERATION_KINDS.len()],
    /// Clients by state at that moment (in [`CLIENT_STATES`] order).
    pub states: [u64; CLIENT_STATES.len()],
    /// Datagrams the clients received and sent.
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// DTLS handshakes completed.
    pub handshakes_ok: u64,
}

impl Sample {
    pub fn of(s: &Snapshot) -> Sample {
        let mut sent = [0; REQUEST_KINDS.len()];
        for (n, r) in sent.iter_mut().zip(&s.requests) {
            *n = r.sent;
        }
        let mut operations = [0; OPERATION_KINDS.len()];
        for (n, o) in operations.iter_mut().zip(&s.operations) {
            *n = o.total;
        }
        Sample {
            elapsed: s.elapsed,
            sent,
            operations,
            states: s.states,
            datagrams_in: s.traffic.datagrams_in,
            datagrams_out: s.traffic.datagrams_out,
            handshakes_ok: s.handshakes.ok,
        }
    }

    /// Datagrams the clients received and sent.
    pub fn datagrams(&self) -> u64 {
        self.datagrams_in + self.datagrams_out
    }

    /// Server-initiated operations the clients answered, all kinds.
    pub fn server_ops(&self) -> u64 {
        self.operations.iter().sum()
    }
}

#[derive(Clone, Debug)]
pub struct History {
    latest: Snapshot,
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl Default for History {
    fn default() -> Self {
        History::new(DEFAULT_CAPACITY)
    }
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History {
            latest: Snapshot::default(),
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(2),
        }
    }

    /// Takes the engine's latest cumulative snapshot; keeps its counters if a second has passed
    /// since the last ones kept.
    pub fn push(&mut self, snapshot: Snapshot) {
        let due = self
            .samples
            .back()
            .is_none_or(|last| snapshot.elapsed >= last.elapsed + Duration::from_secs(1));
        if due {
            if self.samples.len() == self.capacity {
                self.samples.pop_front();
            }
            self.samples.push_back(Sample::of(&snapshot));
        }
        self.latest = snapshot;
    }

    pub fn latest(&self) -> &Snapshot {
        &self.latest
    }

    pub fn samples(&self) -> impl ExactSizeIterator<Item = &Sample> {
        self.samples.iter()
    }

    /// Per second over the last kept second (0 before there are two samples).
    pub fn rate(&self, count: impl Fn(&Sample) -> u64) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        per_second(&self.samples[n - 2], &self.samples[n - 1], &count)
    }

    /// Requests of kind `index` (into [`REQUEST_KINDS`]) sent per second over the last kept
    /// second.
    pub fn request_rate(&self, index: usize) -> f64 {
        self.rate(|s| s.sent[index])
    }

    /// Requests of kind `index` sent per second, one value per kept second, oldest first; at
    /// most the last `width`.
    pub fn request_series(&self, index: usize, width: usize) -> Vec<u64> {
        debug_assert!(index < REQUEST_KINDS.len());
        self.rate_series(width, |s| s.sent[index])
    }

    /// `count` per second, one value per kept second, oldest first; at most the last `width`.
    pub fn rate_series(&self, width: usize, count: impl Fn(&Sample) -> u64) -> Vec<u64> {
        let pairs = self.samples.len().saturating_sub(1);
        let skip = pairs.saturating_sub(width);
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .skip(skip)
            .map(|(a, b)| per_second(a, b, &count).round() as u64)
            .collect()
    }

    /// The kept samples, at most the last `width`, oldest first.
    pub fn last_samples(&self, width: usize) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .skip(self.samples.len().saturating_sub(width))
    }
}

fn per_second(a: &Sample, b: &Sample, count: impl Fn(&Sample) -> u64) -> f64 {
    // Samples are at least a second apart, but not exactly: divide by the true interval.
    let seconds = b.elapsed.saturating_sub(a.elapsed).as_secs_f64().max(1e-3);
    count(b).saturating_sub(count(a)) as f64 / seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(ms: u64, updates: u64, ops: u64) -> Snapshot {
        let mut s = Snapshot {
            elapsed: Duration::from_millis(ms),
            ..Snapshot::default()
        };
        s.requests[1].sent = updates;
        s.operations[0].total = ops;
        s
    }

    #[test]
    fn keeps_one_sample_a_second_and_rates_come_from_the_last_two() {
        let mut h = History::new(10);
        assert!(h.request_rate(1).abs() < 1e-12);
        h.push(snapshot(0, 0, 0));
        h.push(snapshot(250, 10, 1));
        h.push(snapshot(500, 20, 2));
        assert_eq!(
            h.samples().len(),
            1,
            "less than a second: only the latest moves"
        );
        assert_eq!(h.latest().requests[1].sent, 20);
        h.push(snapshot(1_000, 40, 4));
        h.push(snapshot(2_500, 100, 7));
        assert_eq!(h.samples().len(), 3);
        // 60 updates over 1.5 s.
        assert!((h.request_rate(1) - 40.0).abs() < 1e-9);
        assert!((h.rate(Sample::server_ops) - 2.0).abs() < 1e-9);
        assert_eq!(h.request_series(1, 10), vec![40, 40]);
        assert_eq!(h.request_series(1, 1), vec![40], "the last `width` only");
    }

    #[test]
    fn samples_keep_clients_by_state_operations_by_kind_and_datagrams() {
        let mut h = History::new(10);
        for second in 0..3 {
            let mut s = snapshot(second * 1_000, 0, second * 5);
            s.operations[7].total = second;
            s.states[3] = 100 + second;
            s.traffic.datagrams_in = second * 40;
            s.traffic.datagrams_out = second * 60;
            h.push(s);
        }
        let last = h.samples().last().copied().unwrap();
        assert_eq!(last.states[3], 102);
        assert_eq!(last.server_ops(), 12);
        assert_eq!(h.rate_series(10, Sample::datagrams), vec![100, 100]);
        assert_eq!(h.rate_series(10, |s| s.operations[7]), vec![1, 1]);
        let states: Vec<u64> = h.last_samples(2).map(|s| s.states[3]).collect();
        assert_eq!(states, vec![101, 102], "the last two");
    }

    #[test]
    fn forgets_the_oldest_seconds_beyond_its_capacity() {
        let mut h = History::new(3);
        for second in 0..10 {
            h.push(snapshot(second * 1_000, second * second, 0));
        }
        let kept: Vec<u64> = h.samples().map(|s| s.elapsed.as_secs()).collect();
        assert_eq!(kept, vec![7, 8, 9]);
        // 64 -> 81: 17/s, 49 -> 64: 15/s.
        assert_eq!(h.request_series(1, 100), vec![15, 17]);
    }
}
