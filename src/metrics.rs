//! What happened in a run, counted: per-shard [`Recorder`]s fed from client events without locks,
//! merged into a [`Snapshot`] that the progress line, the summary and the dashboard read.

use std::time::Duration;

use hdrhistogram::Histogram;

mod bootstrap;
mod firmware;
mod handshake;
mod recorder;
mod snapshot;

pub use bootstrap::BootstrapStats;
pub use firmware::FirmwareStats;
pub use handshake::HandshakeStats;
pub use recorder::Recorder;
pub use snapshot::{RequestStats, ServerOperationStats, Snapshot, TrafficStats};

/// Latencies are recorded in µs from 1 µs to 60 s at 3 significant digits.
const LATENCY_MAX_US: u64 = 60_000_000;

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests;
