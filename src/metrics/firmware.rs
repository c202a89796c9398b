//! Firmware updates (object 5): downloads started and completed, updates done, failures by
//! reason, and how long downloads and updates took.

use hdrhistogram::Histogram;

use super::handshake::count;
use super::micros;

/// Downloads over NB-IoT take minutes, updates as long as a template says: up to a day, at 1%.
pub const FIRMWARE_TIME_MAX_US: u64 = 24 * 3600 * 1_000_000;

fn time_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, FIRMWARE_TIME_MAX_US, 2).expect("static bounds are valid")
}
use crate::client::{FirmwareRecord, FirmwareStep};

/// Every download that starts ends `downloaded` or failed; every update (Execute) ends
/// `updated` or failed (`update-failed`).
#[derive(Clone, Debug)]
pub struct FirmwareStats {
    pub started: u64,
    pub downloaded: u64,
    pub updated: u64,
    /// Failures by reason (`integrity`, `out-of-storage`, `connection-lost`...), with counts.
    pub failed: Vec<(String, u64)>,
    /// From a download's start to its last byte (µs, up to [`FIRMWARE_TIME_MAX_US`]).
    pub download_time: Histogram<u64>,
    /// From the Execute to the Register with the new version answered (µs).
    pub update_time: Histogram<u64>,
}

impl Default for FirmwareStats {
    fn default() -> Self {
        FirmwareStats {
            started: 0,
            downloaded: 0,
            updated: 0,
            failed: Vec::new(),
            download_time: time_histogram(),
            update_time: time_histogram(),
        }
    }
}

impl FirmwareStats {
    /// Whether any client did anything with firmware (the report shows the section only then).
    pub fn any(&self) -> bool {
        self.started > 0 || self.updated > 0 || !self.failed.is_empty()
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().map(|(_, n)| n).sum()
    }

    pub(super) fn record(&mut self, r: &FirmwareRecord) {
        let took = micros(r.at.saturating_since(r.started));
        match r.step {
            FirmwareStep::Started(_) => self.started += 1,
            FirmwareStep::Downloaded { .. } => {
                self.downloaded += 1;
                self.download_time.saturating_record(took);
            }
            FirmwareStep::Updated => {
                self.updated += 1;
                self.update_time.saturating_record(took);
            }
            FirmwareStep::Failed(failure) => count(&mut self.failed, failure.name(), 1),
        }
    }

    pub(super) fn merge(&mut self, other: &FirmwareStats) {
        self.started += other.started;
        self.downloaded += other.downloaded;
        self.updated += other.updated;
        for (reason, n) in &other.failed {
            count(&mut self.failed, reason, *n);
        }
        // Same bounds on both sides: addition cannot fail.
        let _ = self.download_time.add(&other.download_time);
        let _ = self.update_time.add(&other.update_time);
    }
}
