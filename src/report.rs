//! Results beyond the summary table: the `--json` report, the `--hdr-log` interval log, the
//! `--intervals` table, the `--plot` charts, `--threshold` pass/fail criteria, the
//! `--prometheus` endpoint, and `report`, which merges JSON results from several shards or
//! machines.
//!
//! The CLI feeds a [`Collector`] every snapshot it takes; once a second of run time the collector
//! keeps what happened in that second (counts, and latency from histograms subtracted from the
//! cumulative ones), appends it to the interval log and publishes it to Prometheus.

pub mod capacity;
mod hdr_log;
pub mod intervals;
pub mod merge;
pub mod plot;
pub mod prometheus;
pub mod schema;
mod summary;
pub mod threshold;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;
use hdrhistogram::Histogram;

use crate::client::{CLIENT_STATES, REQUEST_KINDS, request_name, state_name};
use crate::metrics::Snapshot;

pub use hdr_log::HdrLog;
pub use merge::{MergeError, Merged, merge_files};
pub use prometheus::{Exporter, Identity};
pub use schema::{
    FirmwareCampaign, Interval, IntervalRequest, Report, RunConfig, SchemaError, TestIdentity,
    ThresholdResult,
};
pub use summary::{SUMMARY_WIDTH, fit};
pub use threshold::{Threshold, Verdict};

/// How often the collector keeps an interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// `run`'s report options.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Output")]
pub struct ReportArgs {
    /// Write the result as JSON (schema: docs/report-schema.md); `-`: to stdout, the
    /// summary and every other line then going to stderr.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write an HDR histogram interval log: each second, one histogram per request kind (µs).
    #[arg(long, value_name = "PATH")]
    pub hdr_log: Option<PathBuf>,
    /// Write SVG charts: latency by percentile, then clients by state, requests per second and
    /// p99 latency over time.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// Write one row per second (clients by state; each request kind's sent, ok, error,
    /// timeout, NON, p50 and p99; datagrams in and out) when the run ends: CSV for a `.csv`
    /// PATH, else JSON Lines.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub intervals: Option<PathBuf>,
    /// A pass/fail criterion, repeatable: `register.p99<500ms`, `update.error_rate<1%`. Any
    /// failing one makes the run exit 4. Added to the thresholds of the fleet's load table.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = clap::value_parser!(Threshold))]
    pub thresholds: Vec<Threshold>,
    /// Serve Prometheus metrics (GET /metrics) on ADDR while the run lasts, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<SocketAddr>,
}

/// `report`'s options.
#[derive(Args, Clone, Debug)]
pub struct MergeArgs {
    /// JSON results of `run --json`, merged into one: the shards of one test (each at most
    /// once) as that test, results of no test by adding their totals.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A pass/fail criterion checked on the merged result, as for `run` (exit 4 when one
    /// fails), with the thresholds recorded in the shards' files.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = clap::value_parser!(Threshold),
          help_heading = "Output")]
    pub thresholds: Vec<Threshold>,
    /// Write the SVG charts of the merged result, as `run --plot` does.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub plot: Option<PathBuf>,
    /// Write the merged result as JSON, in `run --json`'s schema (so it merges again); `-`:
    /// to stdout, the summary then going to stderr.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {}", crate::plain::io_error(source))]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Schema { path: String, source: SchemaError },
    #[error("{path}: {reason}")]
    Path { path: String, reason: String },
    #[error("cannot serve Prometheus metrics on {addr}: {source}")]
    Prometheus {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Keeps one interval per second of run time from the cumulative snapshots it is given.
pub struct Collector {
    /// The cumulative snapshot at the end of the last interval.
    previous: Snapshot,
    next: Duration,
    intervals: Vec<Interval>,
    hdr_log: Option<(HdrLog, PathBuf)>,
    /// The first failure to append to the log; the log stops there and the run goes on.
    hdr_error: Option<ReportError>,
    exporter: Option<Exporter>,
}

impl Collector {
    /// Opens the interval log and starts the Prometheus endpoint, if asked for, its series
    /// labelled with `identity`.
    pub fn new(
        started: SystemTime,
        args: &ReportArgs,
        identity: &Identity,
    ) -> Result<Collector, ReportError> {
        let hdr_log = args
            .hdr_log
            .as_ref()
            .map(|path| {
                HdrLog::create(path, started)
                    .map(|log| (log, path.clone()))
                    .map_err(io_error(path))
            })
            .transpose()?;
        let exporter = args
            .prometheus
            .map(|addr| {
                Exporter::start(addr, identity)
                    .map_err(|source| ReportError::Prometheus { addr, source })
            })
            .transpose()?;
        Ok(Collector {
            previous: Snapshot::default(),
            next: INTERVAL,
            intervals: Vec::new(),
            hdr_log,
            hdr_error: None,
            exporter,
        })
    }

    /// Give it every snapshot taken; it keeps one interval per second of run time (the first
    /// snapshot at or past each whole second closes the interval). True when it kept one.
    pub fn tick(&mut self, snapshot: &Snapshot) -> bool {
        if snapshot.elapsed < self.next {
            return false;
        }
        self.record(snapshot);
        let whole = Duration::from_secs(snapshot.elapsed.as_secs());
        self.next = whole + INTERVAL;
        true
    }

    /// The intervals kept so far, oldest first.
    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    /// The embedded server's campaign counts now, for Prometheus.
    pub fn campaign(&self, campaign: FirmwareCampaign) {
        if let Some(exporter) = &self.exporter {
            exporter.publish_campaign(campaign);
        }
    }

    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.exporter.as_ref().map(Exporter::local_addr)
    }

    /// Closes the last (partial) interval with the run's summary (which Prometheus then serves),
    /// puts the interval log in place, and returns the intervals, with the first error writing
    /// the log if there was one (then no log is left: a log with gaps would mislead; the
    /// intervals are whole either way, so the other reports need not be lost with it).
    pub fn finish(&mut self, summary: &Snapshot) -> (Vec<Interval>, Option<ReportError>) {
        if summary.elapsed > self.previous.elapsed {
            self.record(summary);
        }
        let mut error = self.hdr_error.take();
        if let Some((log, path)) = self.hdr_log.take()
            && error.is_none()
        {
            error = log.finish().err().map(io_error(&path));
        }
        (std::mem::take(&mut self.intervals), error)
    }

    /// Keeps serving Prometheus for `how_long` (the last scrape of a run sees its end), or until
    /// `interrupted` says so; then stops. Returns at once without an endpoint.
    pub fn linger(self, how_long: Duration, interrupted: impl Fn() -> bool) {
        if let Some(exporter) = self.exporter {
            exporter.linger(how_long, interrupted);
        }
    }

    fn record(&mut self, now: &Snapshot) {
        let (interval, histograms) = interval(&self.previous, now);
        if let (Some((log, path)), None) = (&mut self.hdr_log, &self.hdr_error) {
            let start = self.previous.elapsed;
            // Bootstrap histograms only in runs that bootstrap, like the summary's rows.
            let used: Vec<_> = now.kinds_used().collect();
            let tagged: Vec<(&str, &Histogram<u64>)> = REQUEST_KINDS
                .iter()
                .zip(&histograms)
                .filter(|(k, _)| used.contains(k))
                .map(|(k, h)| (request_name(*k), h))
                .collect();
            if let Err(e) = log.write(start, now.elapsed.saturating_sub(start), &tagged) {
                self.hdr_error = Some(io_error(path)(e));
            }
        }
        if let Some(exporter) = &self.exporter {
            exporter.publish(now.clone());
        }
        self.intervals.push(interval);
        self.previous.clone_from(now);
    }
}

/// What happened between two cumulative snapshots, and each request kind's latency histogram of
/// that time (what `previous` had subtracted from what `now` has).
pub fn interval(
    previous: &Snapshot,
    now: &Snapshot,
) -> (Interval, [Histogram<u64>; REQUEST_KINDS.len()]) {
    let histograms = REQUEST_KINDS.map(|k| {
        let mut h = now.request(k).latency.clone();
        // Cumulative counts only grow, so this cannot fail; were it to, an empty interval is
        // shown rather than a wrong one.
        if h.subtract(&previous.request(k).latency).is_err() {
            h.reset();
        }
        h
    });
    let quantile = |h: &Histogram<u64>, q| (!h.is_empty()).then(|| h.value_at_quantile(q));
    let requests = REQUEST_KINDS
        .iter()
        .zip(&histograms)
        .map(|(k, h)| {
            let (a, b) = (previous.request(*k), now.request(*k));
            let request = IntervalRequest {
                sent: b.sent.saturating_sub(a.sent),
                ok: b.ok.saturating_sub(a.ok),
                error: b.error.saturating_sub(a.error),
                timeout: b.timeout.saturating_sub(a.timeout),
                unacknowledged: b.unacknowledged.saturating_sub(a.unacknowledged),
                p50_us: quantile(h, 0.5),
                p99_us: quantile(h, 0.99),
            };
            (request_name(*k).to_string(), request)
        })
        .collect();
    let clients: BTreeMap<String, u64> = CLIENT_STATES
        .iter()
        .map(|s| (state_name(*s).to_string(), now.state(*s)))
        .collect();
    let interval = Interval {
        elapsed_s: now.elapsed.as_secs_f64(),
        length_s: now.elapsed.saturating_sub(previous.elapsed).as_secs_f64(),
        clients,
        requests,
        datagrams_in: now
            .traffic
            .datagrams_in
            .saturating_sub(previous.traffic.datagrams_in),
        datagrams_out: now
            .traffic
            .datagrams_out
            .saturating_sub(previous.traffic.datagrams_out),
    };
    (interval, histograms)
}

/// Checks every threshold; the text lists each with its verdict.
pub fn check_thresholds(thresholds: &[Threshold], summary: &Snapshot) -> Vec<Verdict> {
    thresholds.iter().map(|t| t.check(summary)).collect()
}

/// `thresholds: 1 passed, 1 FAILED` and one line per threshold.
pub fn verdicts_text(verdicts: &[Verdict]) -> String {
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    let mut text = format!(
        "thresholds: {} passed, {failed} FAILED\n",
        verdicts.len() - failed
    );
    for v in verdicts {
        let _ = writeln!(text, "  {v}");
    }
    text
}

pub fn threshold_results(verdicts: &[Verdict]) -> Vec<ThresholdResult> {
    verdicts
        .iter()
        .map(|v| ThresholdResult {
            threshold: v.threshold.text.clone(),
            value: v.value,
            passed: v.passed,
        })
        .collect()
}

/// Writes `text` to `path` whole or not at all: to a temporary file beside it, then renamed.
pub fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    let mut file = temp_file_beside(path).map_err(io_error(path))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io_error(path))?;
    persist(file, path).map_err(io_error(path))
}

/// Writes every `(path, text)`, each attempted whatever became of the others; returns the
/// errors, all of them.
pub fn write_files<'a>(files: impl IntoIterator<Item = (&'a Path, String)>) -> Vec<ReportError> {
    files
        .into_iter()
        .filter_map(|(path, text)| write_file(path, &text).err())
        .collect()
}

/// A temporary file in `path`'s directory (`.lwm2m-swarm-*`, so a run killed while writing
/// leaves a name that says whose it is), to be renamed to `path` by [`persist`].
fn temp_file_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    // Readable as a plain file would be (0666 less the umask), not tempfile's owner-only 0600.
    tempfile::Builder::new()
        .prefix(".lwm2m-swarm-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(directory_of(path))
}

/// Puts a finished temporary file in place: on disk first, so the rename never exposes an
/// empty file after a crash.
fn persist(file: tempfile::NamedTempFile, path: &Path) -> std::io::Result<()> {
    file.as_file().sync_all()?;
    file.persist(path).map(drop).map_err(|e| e.error)
}

/// Whether a report can be written at `path` (its directory takes new files), found by making
/// and removing a temporary file there: the report itself appears only once written whole.
pub fn check_writable(path: &Path) -> Result<(), ReportError> {
    let refused = |reason: String| ReportError::Path {
        path: path.display().to_string(),
        reason,
    };
    if path.is_dir() {
        return Err(refused("is a directory".into()));
    }
    let dir = directory_of(path);
    if !dir.is_dir() {
        return Err(refused(format!(
            "directory {} does not exist",
            dir.display()
        )));
    }
    temp_file_beside(path).map(drop).map_err(io_error(path))
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests;
