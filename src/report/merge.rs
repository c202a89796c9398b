//! `report FILE...`: `--json` results merged into one. The shards of one test (the same
//! `test.id`) merge as that test: each shard at most once, their intervals aligned on wall-clock
//! seconds so the clients per state add up second by second and the peaks are those of the sum,
//! and the result names the shards it covers so it merges again. Results without a test
//! identity (runs on their own) merge their totals only: peaks add, intervals are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::client::{CLIENT_STATES, state_index, state_name};
use crate::metrics::Snapshot;

use super::schema::{
    FirmwareCampaign, Interval, IntervalRequest, Report, TestIdentity, ThresholdResult,
};
use super::threshold::Threshold;
use super::{ReportError, io_error};

const SECOND_MS: u64 = 1000;
/// The longest a merged test may span, start to end: past it, a start time is wrong, not long.
const MAX_SPAN_MS: u64 = 31 * 24 * 3600 * SECOND_MS;

/// Why files were not merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Read(#[from] ReportError),
    #[error("{path}: field `test`: {message}")]
    BadTest { path: String, message: String },
    #[error("{path}: field `thresholds`: {message}")]
    BadThreshold { path: String, message: String },
    #[error(
        "{first} is from test {first_id} and {other} from test {other_id}: only the shards of \
         one test merge"
    )]
    DifferentTests {
        first: String,
        first_id: String,
        other: String,
        other_id: String,
    },
    #[error(
        "{with} is from test {id} but {without} is from no test (it has no `test` field): only \
         the shards of one test merge"
    )]
    MixedTests {
        with: String,
        id: String,
        without: String,
    },
    #[error(
        "{first} says test {id} has {first_count} shards but {other} says {other_count}: they \
         are not shards of one test"
    )]
    ShardCounts {
        id: String,
        first: String,
        first_count: u32,
        other: String,
        other_count: u32,
    },
    #[error(
        "{last} ends {days} days after {first} starts: the shards of one test run together \
         (field `test.started_unix_ms`)"
    )]
    Span {
        first: String,
        last: String,
        days: u64,
    },
    #[error(
        "{first} and {other} both hold shard {shard} of {count} of test {id}: give each shard once"
    )]
    SameShard {
        id: String,
        shard: u32,
        count: u32,
        first: String,
        other: String,
    },
}

/// Shards of the test that no file held: the merge is partial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingShards {
    pub id: String,
    /// Ascending runs of shard numbers.
    pub missing: Vec<RangeInclusive<u32>>,
    pub count: u32,
    /// How many shards the merge holds.
    pub covered: usize,
}

impl fmt::Display for MissingShards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = matches!(self.missing.as_slice(), [r] if r.start() == r.end());
        write!(
            f,
            "missing shard{} {} of {} (test {}): the result covers {} of {} shards",
            if one { "" } else { "s" },
            ranges_text(&self.missing),
            self.count,
            self.id,
            self.covered,
            self.count
        )
    }
}

/// `1, 2, 5-9`: runs of three or more as ranges.
pub fn ranges_text(ranges: &[RangeInclusive<u32>]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| match r.end() - r.start() {
            0 => r.start().to_string(),
            1 => format!("{}, {}", r.start(), r.end()),
            _ => format!("{}-{}", r.start(), r.end()),
        })
        .collect();
    parts.join(", ")
}

/// The runs of consecutive numbers in `sorted` (ascending, without repeats).
pub fn ranges(sorted: &[u32]) -> Vec<RangeInclusive<u32>> {
    let mut runs: Vec<RangeInclusive<u32>> = Vec::new();
    for &n in sorted {
        match runs.last_mut() {
            Some(run) if run.end().checked_add(1) == Some(n) => *run = *run.start()..=n,
            _ => runs.push(n..=n),
        }
    }
    runs
}

/// The numbers 0 to `count - 1` not in `sorted` (ascending, without repeats, all below
/// `count`), as runs: no walk through `count`, which a file sets.
fn gaps(sorted: &[u32], count: u32) -> Vec<RangeInclusive<u32>> {
    let mut gaps = Vec::new();
    let mut next = 0;
    for &n in sorted {
        if n > next {
            gaps.push(next..=n - 1);
        }
        // n < count <= u32::MAX: no overflow.
        next = n + 1;
    }
    if next < count {
        gaps.push(next..=count - 1);
    }
    gaps
}

/// The files merged.
pub struct Merged {
    /// The merged counters and histograms: what the summary table shows.
    pub summary: Snapshot,
    /// The files' reports, in the order given.
    pub inputs: Vec<Report>,
    /// Shards of the test that no file held.
    pub missing: Option<MissingShards>,
    /// The thresholds recorded in the shards' files (the fleet's and the command line's), to
    /// be checked on the merge; none for results of no test.
    pub recorded_thresholds: Vec<Threshold>,
    /// The merged result, its `thresholds` still empty.
    report: Report,
}

impl Merged {
    /// The test merged and the shards covered; `None` for results of no test.
    pub fn test(&self) -> Option<(&TestIdentity, &[u32])> {
        self.report
            .test
            .as_ref()
            .map(|t| (t, self.report.merged_shards.as_slice()))
    }

    /// The recorded thresholds, then `given` ones not among them (by their text).
    pub fn thresholds(&self, given: &[Threshold]) -> Vec<Threshold> {
        let mut all = self.recorded_thresholds.clone();
        for t in given {
            if !all.iter().any(|a| a.text == t.text) {
                all.push(t.clone());
            }
        }
        all
    }

    /// The merged intervals, one per second (none when results of no test were merged).
    pub fn intervals(&self) -> &[Interval] {
        &self.report.intervals
    }

    /// The merged result with the verdicts of the thresholds checked on it.
    pub fn report(&self, thresholds: Vec<ThresholdResult>) -> Report {
        Report {
            thresholds,
            ..self.report.clone()
        }
    }
}

/// Reads JSON results and merges them: the shards of one test as that test, results of no test
/// by adding their totals. Refuses results of different tests, and a shard given twice.
pub fn merge_files(paths: &[PathBuf]) -> Result<Merged, MergeError> {
    // Each file's totals are added as it is read (its histograms are not kept); of its peaks
    // only the highest per state over the files.
    let mut summary = Snapshot::default();
    let mut shard_peaks = [0; CLIENT_STATES.len()];
    let mut inputs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        let schema = |source| ReportError::Schema {
            path: path.display().to_string(),
            source,
        };
        let report = Report::from_json(&text).map_err(schema)?;
        let totals = report.to_snapshot().map_err(schema)?;
        summary.merge(&totals);
        for (peak, of_file) in shard_peaks.iter_mut().zip(totals.peak_states) {
            *peak = (*peak).max(of_file);
        }
        inputs.push(report);
    }
    let Some(shards) = shard_set(paths, &inputs)? else {
        // Runs of no test: totals only; one file keeps its intervals.
        let intervals = match inputs.as_slice() {
            [one] => one.intervals.clone(),
            _ => Vec::new(),
        };
        let config = inputs.first().map(|r| r.config.clone()).unwrap_or_default();
        let mut report = Report::new(config, &summary, intervals, Vec::new());
        report.campaign = campaigns(&inputs);
        return Ok(Merged {
            summary,
            inputs,
            missing: None,
            recorded_thresholds: Vec::new(),
            report,
        });
    };
    merge_shards(paths, inputs, shard_peaks, summary, shards)
}

/// The shards of one test, their totals in `summary` already and their own highest peaks in
/// `shard_peaks`.
fn merge_shards(
    paths: &[PathBuf],
    inputs: Vec<Report>,
    shard_peaks: [u64; CLIENT_STATES.len()],
    mut summary: Snapshot,
    shards: ShardSet,
) -> Result<Merged, MergeError> {
    // Every input has a test here: shard_set refuses a mix.
    let starts: Vec<u64> = inputs
        .iter()
        .map(|r| r.test.as_ref().map_or(0, |t| t.started_unix_ms))
        .collect();
    let ends: Vec<u64> = inputs
        .iter()
        .zip(&starts)
        .map(|(r, start)| {
            let intervals = r.intervals.iter().map(|i| wall_ms(*start, i.elapsed_s));
            intervals.fold(wall_ms(*start, r.elapsed_s), u64::max)
        })
        .collect();
    let first = (0..inputs.len()).min_by_key(|i| starts[*i]).unwrap_or(0);
    let last = (0..inputs.len()).max_by_key(|i| ends[*i]).unwrap_or(0);
    let (origin, end) = (starts[first], ends[last]);
    if end - origin > MAX_SPAN_MS {
        return Err(MergeError::Span {
            first: paths[first].display().to_string(),
            last: paths[last].display().to_string(),
            days: (end - origin) / (24 * 3600 * SECOND_MS),
        });
    }
    let timelines: Vec<(u64, &[Interval])> = starts
        .iter()
        .zip(&inputs)
        .map(|(start, r)| (*start, r.intervals.as_slice()))
        .collect();
    let intervals = aligned(&timelines, origin, end);

    summary.elapsed = std::time::Duration::from_millis(end - origin);
    // The peak of the sum, sampled once a second; no less than a shard's own peak, which its
    // run sampled more often.
    for state in CLIENT_STATES {
        let i = state_index(state);
        let of_sum = intervals
            .iter()
            .filter_map(|iv| iv.clients.get(state_name(state)))
            .copied()
            .max()
            .unwrap_or(0);
        summary.peak_states[i] = of_sum.max(shard_peaks[i]);
    }

    let recorded_thresholds = recorded_thresholds(paths, &inputs)?;
    let lowest = shards.holder_of_lowest;
    let mut report = Report::new(
        inputs[lowest].config.clone(),
        &summary,
        intervals,
        Vec::new(),
    );
    report.test = Some(TestIdentity {
        id: shards.id.clone(),
        shard_index: shards.covered.first().copied().unwrap_or(0),
        shard_count: shards.count,
        started_unix_ms: origin,
        late_start_ms: inputs
            .iter()
            .filter_map(|r| r.test.as_ref().map(|t| t.late_start_ms))
            .max()
            .unwrap_or(0),
    });
    let missing = gaps(&shards.covered, shards.count);
    let missing = (!missing.is_empty()).then_some(MissingShards {
        id: shards.id,
        missing,
        count: shards.count,
        covered: shards.covered.len(),
    });
    report.merged_shards = shards.covered;
    report.campaign = campaigns(&inputs);
    Ok(Merged {
        summary,
        inputs,
        missing,
        recorded_thresholds,
        report,
    })
}

/// The shards the files hold, checked: one test, one shard count, each shard once.
struct ShardSet {
    id: String,
    count: u32,
    /// Ascending.
    covered: Vec<u32>,
    /// The input holding the lowest shard: its configuration is the merge's.
    holder_of_lowest: usize,
}

/// `None` when no file is from a test.
fn shard_set(paths: &[PathBuf], inputs: &[Report]) -> Result<Option<ShardSet>, MergeError> {
    let shown = |i: usize| paths[i].display().to_string();
    let Some(first) = inputs.iter().position(|r| r.test.is_some()) else {
        return Ok(None);
    };
    let first_test = inputs[first].test.as_ref().expect("found with a test");
    let mut holders: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, report) in inputs.iter().enumerate() {
        let Some(test) = &report.test else {
            return Err(MergeError::MixedTests {
                with: shown(first),
                id: first_test.id.clone(),
                without: shown(i),
            });
        };
        if test.id != first_test.id {
            return Err(MergeError::DifferentTests {
                first: shown(first),
                first_id: first_test.id.clone(),
                other: shown(i),
                other_id: test.id.clone(),
            });
        }
        if test.shard_count != first_test.shard_count {
            return Err(MergeError::ShardCounts {
                id: test.id.clone(),
                first: shown(first),
                first_count: first_test.shard_count,
                other: shown(i),
                other_count: test.shard_count,
            });
        }
        for shard in covered(&paths[i], report, test)? {
            if let Some(before) = holders.insert(shard, i) {
                return Err(MergeError::SameShard {
                    id: test.id.clone(),
                    shard,
                    count: test.shard_count,
                    first: shown(before),
                    other: shown(i),
                });
            }
        }
    }
    let (_, &holder_of_lowest) = holders
        .first_key_value()
        .expect("every test file holds one");
    Ok(Some(ShardSet {
        id: first_test.id.clone(),
        count: first_test.shard_count,
        covered: holders.into_keys().collect(),
        holder_of_lowest,
    }))
}

/// The shards a file holds: `merged_shards` in a merged result, else its own.
fn covered(path: &Path, report: &Report, test: &TestIdentity) -> Result<Vec<u32>, MergeError> {
    let bad = |message: String| MergeError::BadTest {
        path: path.display().to_string(),
        message,
    };
    let count = test.shard_count;
    if count == 0 {
        return Err(bad("shard_count is 0".to_string()));
    }
    let shards = if report.merged_shards.is_empty() {
        vec![test.shard_index]
    } else {
        report.merged_shards.clone()
    };
    if let Some(k) = shards.iter().find(|k| **k >= count) {
        return Err(bad(format!(
            "shard {k} is not below shard_count {count} (shards count from 0)"
        )));
    }
    if shards.iter().collect::<BTreeSet<_>>().len() != shards.len() {
        return Err(bad(format!(
            "merged_shards lists a shard twice: {}",
            ranges_text(&ranges(&shards))
        )));
    }
    Ok(shards)
}

fn recorded_thresholds(paths: &[PathBuf], inputs: &[Report]) -> Result<Vec<Threshold>, MergeError> {
    let mut all: Vec<Threshold> = Vec::new();
    for (path, report) in paths.iter().zip(inputs) {
        for recorded in &report.thresholds {
            let threshold: Threshold =
                recorded
                    .threshold
                    .parse()
                    .map_err(|message| MergeError::BadThreshold {
                        path: path.display().to_string(),
                        message,
                    })?;
            if !all.iter().any(|t| t.text == threshold.text) {
                all.push(threshold);
            }
        }
    }
    Ok(all)
}

/// `elapsed_s` after `start_ms`, on the wall clock in ms. A hand-edited file may hold anything:
/// negative, huge or NaN values saturate rather than panic.
fn wall_ms(start_ms: u64, elapsed_s: f64) -> u64 {
    start_ms.saturating_add((elapsed_s.max(0.0) * 1000.0).round() as u64)
}

/// One interval per wall-clock second from `origin_ms` (the earliest start) to `end_ms` (the
/// latest end): each input's intervals are placed in the second they end in (whole Unix
/// seconds, so merged results merge again into the same seconds), their counts added and their
/// percentiles the highest of them (the merged percentile is at most that). An input's clients
/// count from its first interval to its last, the latest state carried through seconds it
/// closed none in.
fn aligned(inputs: &[(u64, &[Interval])], origin_ms: u64, end_ms: u64) -> Vec<Interval> {
    let first_second = origin_ms / SECOND_MS + 1;
    let placed: Vec<BTreeMap<u64, Vec<&Interval>>> = inputs
        .iter()
        .map(|(start, intervals)| {
            let mut by_second: BTreeMap<u64, Vec<&Interval>> = BTreeMap::new();
            for interval in *intervals {
                let second = wall_ms(*start, interval.elapsed_s)
                    .div_ceil(SECOND_MS)
                    .max(first_second);
                by_second.entry(second).or_default().push(interval);
            }
            by_second
        })
        .collect();
    let Some(last_second) = placed.iter().filter_map(|p| p.keys().next_back()).max() else {
        return Vec::new();
    };
    let all = || inputs.iter().flat_map(|(_, intervals)| intervals.iter());
    let states: BTreeSet<&String> = all().flat_map(|i| i.clients.keys()).collect();
    let kinds: BTreeSet<&String> = all().flat_map(|i| i.requests.keys()).collect();

    let mut carried: Vec<Option<&BTreeMap<String, u64>>> = vec![None; inputs.len()];
    let mut previous_end = origin_ms;
    let mut merged = Vec::new();
    for second in first_second..=*last_second {
        let end = (second * SECOND_MS).min(end_ms);
        let mut clients: BTreeMap<String, u64> = states.iter().map(|s| ((*s).clone(), 0)).collect();
        let mut requests: BTreeMap<String, IntervalRequest> = kinds
            .iter()
            .map(|k| ((*k).clone(), IntervalRequest::default()))
            .collect();
        let (mut datagrams_in, mut datagrams_out) = (0, 0);
        for (input, by_second) in placed.iter().enumerate() {
            if by_second
                .keys()
                .next_back()
                .is_none_or(|last| second > *last)
            {
                continue;
            }
            if let Some(closed) = by_second.get(&second) {
                for interval in closed {
                    datagrams_in += interval.datagrams_in;
                    datagrams_out += interval.datagrams_out;
                    for (kind, op) in &interval.requests {
                        add(requests.entry(kind.clone()).or_default(), op);
                    }
                }
                carried[input] = closed.last().map(|i| &i.clients);
            }
            for (state, n) in carried[input].into_iter().flatten() {
                *clients.entry(state.clone()).or_default() += n;
            }
        }
        merged.push(Interval {
            elapsed_s: seconds(end.saturating_sub(origin_ms)),
            length_s: seconds(end.saturating_sub(previous_end)),
            clients,
            requests,
            datagrams_in,
            datagrams_out,
        });
        previous_end = end;
    }
    merged
}

fn add(into: &mut IntervalRequest, op: &IntervalRequest) {
    into.sent += op.sent;
    into.ok += op.ok;
    into.error += op.error;
    into.timeout += op.timeout;
    into.unacknowledged += op.unacknowledged;
    // `None` (no answer) orders below any value.
    into.p50_us = into.p50_us.max(op.p50_us);
    into.p99_us = into.p99_us.max(op.p99_us);
}

/// The campaign sections of `reports` added up (each embedded server ran its own campaign); the
/// mean times weighted by the devices each counts; `None` when no report has one.
fn campaigns(reports: &[Report]) -> Option<FirmwareCampaign> {
    let mut sections = reports
        .iter()
        .filter_map(|r| r.campaign.as_ref())
        .peekable();
    sections.peek()?;
    let mut sum = FirmwareCampaign::default();
    let (mut download_us, mut update_us) = (0u128, 0u128);
    for c in sections {
        sum.targeted += c.targeted;
        sum.waiting += c.waiting;
        sum.started += c.started;
        sum.downloading += c.downloading;
        sum.downloaded += c.downloaded;
        sum.updated += c.updated;
        sum.failed += c.failed;
        for (reason, n) in &c.failures {
            *sum.failures.entry(reason.clone()).or_default() += n;
        }
        download_us += u128::from(c.download_time_mean_us) * u128::from(c.downloaded);
        update_us += u128::from(c.update_time_mean_us) * u128::from(c.updated);
        sum.download_time_max_us = sum.download_time_max_us.max(c.download_time_max_us);
        sum.update_time_max_us = sum.update_time_max_us.max(c.update_time_max_us);
        sum.blocks_served += c.blocks_served;
        sum.bytes_served += c.bytes_served;
    }
    let mean = |total: u128, n: u64| {
        u64::try_from(total.checked_div(u128::from(n)).unwrap_or(0)).unwrap_or(u64::MAX)
    };
    sum.download_time_mean_us = mean(download_us, sum.downloaded);
    sum.update_time_mean_us = mean(update_us, sum.updated);
    Some(sum)
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_numbers_read_as_runs() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), [1..=3, 5..=5, 7..=8]);
        assert_eq!(ranges_text(&ranges(&[1, 2, 3, 5, 7, 8])), "1-3, 5, 7, 8");
        assert_eq!(gaps(&[0, 2, 3, 5, 6, 7], 8), [1..=1, 4..=4]);
        assert_eq!(gaps(&[2, 3], 4), [0..=1]);
        assert_eq!(gaps(&[1], u32::MAX), [0..=0, 2..=u32::MAX - 1]);
        assert_eq!(gaps(&[u32::MAX - 1], u32::MAX), [0..=u32::MAX - 2]);
        assert!(gaps(&[0, 1], 2).is_empty());
        let missing = MissingShards {
            id: "t".into(),
            missing: gaps(&[2, 3, 4, 5, 6], 1000),
            count: 1000,
            covered: 5,
        };
        assert_eq!(
            missing.to_string(),
            "missing shards 0, 1, 7-999 of 1000 (test t): the result covers 5 of 1000 shards"
        );
    }

    #[test]
    fn campaign_sections_add_up_with_weighted_means() {
        let campaign = |updated: u64, mean_s: u64, failures: &[(&str, u64)]| FirmwareCampaign {
            targeted: updated + 2,
            started: updated + 2,
            downloaded: updated,
            updated,
            failed: 2,
            failures: failures.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            download_time_mean_us: mean_s * 1_000_000,
            download_time_max_us: mean_s * 2_000_000,
            update_time_mean_us: 1_000_000,
            update_time_max_us: 1_000_000,
            blocks_served: updated * 8,
            bytes_served: updated * 8192,
            ..FirmwareCampaign::default()
        };
        let with = |campaign: Option<FirmwareCampaign>| {
            let config = super::super::schema::RunConfig::default();
            let mut report = Report::new(config, &Snapshot::default(), Vec::new(), Vec::new());
            report.campaign = campaign;
            report
        };
        assert_eq!(campaigns(&[with(None), with(None)]), None);
        let reports = [
            with(Some(campaign(30, 10, &[("timeout", 2)]))),
            with(None),
            with(Some(campaign(
                10,
                30,
                &[("timeout", 1), ("integrity-check", 1)],
            ))),
        ];
        let sum = campaigns(&reports).unwrap();
        assert_eq!(
            (
                sum.targeted,
                sum.started,
                sum.downloaded,
                sum.updated,
                sum.failed
            ),
            (44, 44, 40, 40, 4)
        );
        assert_eq!(sum.failures["timeout"], 3);
        assert_eq!(sum.failures["integrity-check"], 1);
        // (30 × 10 s + 10 × 30 s) / 40 devices.
        assert_eq!(sum.download_time_mean_us, 15_000_000);
        assert_eq!(sum.download_time_max_us, 60_000_000);
        assert_eq!(sum.update_time_mean_us, 1_000_000);
        assert_eq!((sum.blocks_served, sum.bytes_served), (320, 327_680));
    }
}
