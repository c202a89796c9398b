//! `report` merging the shards of one test: shard results are built through the run's own path
//! (cumulative snapshots fed to the `Collector`, `Report::new`, `to_json`), written to files and
//! merged by the binary.

use std::path::Path;
use std::time::{Duration, SystemTime};

#[path = "support/cli.rs"]
mod cli;

use cli::{scratch, swarm, text};
use lwm2m_swarm::cli::exit;
use lwm2m_swarm::client::{ClientState, RequestKind};
use lwm2m_swarm::client::{REQUEST_KINDS, state_index};
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::report::schema::{self, RunConfig, TestIdentity};
use lwm2m_swarm::report::{
    Collector, Identity, Report, ReportArgs, Threshold, check_thresholds, threshold_results,
};

/// A whole wall-clock second, ms since the Unix epoch: the first shard starts on it.
const T0_MS: u64 = 1_800_000_000_000;
const TEST: &str = "5f0c3a9e1b7d2c48";
/// Registers each shard sends (and has answered) per second.
const PER_SECOND: u64 = 10;

struct Shard<'a> {
    test: &'a str,
    index: u32,
    count: u32,
    /// Its start after `T0_MS`.
    offset_ms: u64,
    /// Clients registered at the end of each second of its run.
    registered: &'a [u64],
    /// Every register's latency.
    latency_us: u64,
    /// Checked on the shard and recorded in its result.
    thresholds: &'a [&'a str],
}

impl Shard<'_> {
    fn of(index: u32, count: u32, offset_ms: u64, registered: &[u64]) -> Shard<'_> {
        Shard {
            test: TEST,
            index,
            count,
            offset_ms,
            registered,
            latency_us: 1000,
            thresholds: &[],
        }
    }

    /// Its `--json` result: one snapshot a second through the collector, as a run takes them.
    fn report(&self) -> Report {
        let register = REQUEST_KINDS
            .iter()
            .position(|k| *k == RequestKind::Register)
            .unwrap();
        let registered = state_index(ClientState::Registered);
        let mut collector = Collector::new(
            SystemTime::now(),
            &ReportArgs::default(),
            &Identity::default(),
        )
        .unwrap();
        let mut s = Snapshot::default();
        for (second, n) in (1..).zip(self.registered) {
            s.elapsed = Duration::from_secs(second);
            let r = &mut s.requests[register];
            r.sent += PER_SECOND;
            r.ok += PER_SECOND;
            r.codes = vec![(Some(0x41), r.ok)];
            for _ in 0..PER_SECOND {
                r.latency.record(self.latency_us).unwrap();
                r.service.record(self.latency_us).unwrap();
            }
            s.states[registered] = *n;
            s.peak_states[registered] = s.peak_states[registered].max(*n);
            s.started = s.started.max(*n);
            assert!(collector.tick(&s), "one interval a second");
        }
        let (intervals, log_error) = collector.finish(&s);
        assert!(log_error.is_none());
        let thresholds: Vec<Threshold> =
            self.thresholds.iter().map(|t| t.parse().unwrap()).collect();
        let config = RunConfig {
            fleet: "fleets/shards.toml".into(),
            clients: 20,
            ..RunConfig::default()
        };
        let verdicts = check_thresholds(&thresholds, &s);
        let mut report = Report::new(config, &s, intervals, threshold_results(&verdicts));
        report.test = Some(TestIdentity {
            id: self.test.to_string(),
            shard_index: self.index,
            shard_count: self.count,
            started_unix_ms: T0_MS + self.offset_ms,
            late_start_ms: self.offset_ms,
        });
        report
    }

    fn write(&self, dir: &Path) -> String {
        let path = dir.join(format!("{}-shard-{}.json", self.test, self.index));
        std::fs::write(&path, self.report().to_json()).unwrap();
        shown(&path)
    }
}

fn shown(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn read(path: &str) -> Report {
    Report::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `report FILES... --json OUT`, which must succeed; the merged result and stderr.
fn merge(files: &[&str], out: &Path) -> (Report, String) {
    let mut args = vec!["report"];
    args.extend(files);
    args.extend(["--json", out.to_str().unwrap()]);
    let run = swarm(&args);
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    (read(out.to_str().unwrap()), stderr)
}

fn registered_series(report: &Report) -> Vec<u64> {
    report
        .intervals
        .iter()
        .map(|i| i.clients["registered"])
        .collect()
}

fn register_sent_series(report: &Report) -> Vec<u64> {
    report
        .intervals
        .iter()
        .map(|i| i.requests["register"].sent)
        .collect()
}

/// `report FILES` is refused as bad input (exit 2) with `message` on stderr.
fn refused(files: &[&str], message: &str) {
    let mut args = vec!["report"];
    args.extend(files);
    let run = swarm(&args);
    let (_, stderr) = text(&run);
    assert_eq!(
        run.status.code(),
        Some(i32::from(exit::BAD_INPUT)),
        "{stderr}"
    );
    assert!(stderr.contains(message), "{message:?} not in: {stderr}");
}

#[test]
fn two_shards_add_their_counts_and_peak_at_the_peak_of_their_sum() {
    let dir = scratch("merge-two");
    // The second starts a second later: its 20 registered meet the first's 10, not its 20.
    let mut slow = Shard::of(1, 2, 1000, &[20, 10, 0]);
    slow.latency_us = 5000;
    let files = [
        Shard::of(0, 2, 0, &[20, 10, 0]).write(&dir),
        slow.write(&dir),
    ];
    let (merged, stderr) = merge(&[&files[0], &files[1]], &dir.join("merged.json"));
    assert!(!stderr.contains("missing"), "{stderr}");

    let register = &merged.requests["register"];
    assert_eq!((register.sent, register.ok), (60, 60));
    assert_eq!(register.codes["2.01"], 60);
    let histogram = schema::decode(&register.hdr).unwrap();
    assert_eq!(histogram.len(), 60);
    assert_eq!(histogram.count_between(1000, 1000), 30);
    assert_eq!(histogram.max(), histogram.highest_equivalent(5000));
    assert_eq!(register.latency_us.p50, histogram.highest_equivalent(1000));
    // Seconds 1-4 of the test: the first shard's 20, 10, 0 and the second's 20, 10, 0 a
    // second later.
    assert_eq!(registered_series(&merged), [20, 30, 10, 0]);
    assert_eq!(register_sent_series(&merged), [10, 20, 20, 10]);
    assert_eq!(merged.clients.peak["registered"], 30, "not 20 + 20");
    assert!(
        (merged.elapsed_s - 4.0).abs() < 1e-9,
        "{}",
        merged.elapsed_s
    );
    // The second second's p99 is the slow shard's, an upper bound of the merged one.
    let second = merged.intervals[1].requests["register"];
    assert_eq!(second.p99_us, Some(histogram.highest_equivalent(5000)));

    let test = merged.test.as_ref().unwrap();
    assert_eq!(
        (test.id.as_str(), test.shard_index, test.shard_count),
        (TEST, 0, 2)
    );
    assert_eq!((test.started_unix_ms, test.late_start_ms), (T0_MS, 1000));
    assert_eq!(merged.merged_shards, [0, 1]);
}

#[test]
fn four_shards_started_apart_align_on_the_wall_clock_and_merge_again_to_the_same_result() {
    let dir = scratch("merge-four");
    // Each shard: 10 registered for two seconds, then none; started 0, 0.5, 1 and 2.5 s apart.
    let shards = [0, 500, 1000, 2500]
        .iter()
        .zip(0..)
        .map(|(offset, k)| Shard::of(k, 4, *offset, &[10, 10, 0]).write(&dir))
        .collect::<Vec<_>>();
    let all: Vec<&str> = shards.iter().map(String::as_str).collect();
    let (direct, _) = merge(&all, &dir.join("all.json"));

    // An interval counts in the whole second it ends in: shard 1's end at 1.5, 2.5 and 3.5 s,
    // shard 3's at 3.5, 4.5 and 5.5 s.
    assert_eq!(registered_series(&direct), [10, 30, 20, 10, 10, 0]);
    assert_eq!(register_sent_series(&direct), [10, 30, 30, 30, 10, 10]);
    assert_eq!(direct.clients.peak["registered"], 30, "not 4 x 10");
    assert_eq!(direct.requests["register"].sent, 4 * 3 * PER_SECOND);
    assert_eq!(direct.requests["register"].latency_us.count, 120);
    let lengths: Vec<f64> = direct.intervals.iter().map(|i| i.length_s).collect();
    assert_eq!(lengths, [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]);
    assert!(
        (direct.elapsed_s - 5.5).abs() < 1e-9,
        "{}",
        direct.elapsed_s
    );
    assert_eq!(direct.test.as_ref().unwrap().late_start_ms, 2500);

    // Two halves merged, then merged together: the same result as all four at once.
    let (first_half, _) = merge(&all[..2], &dir.join("half-1.json"));
    assert_eq!(first_half.merged_shards, [0, 1]);
    let (second_half, stderr) = merge(&all[2..], &dir.join("half-2.json"));
    assert!(stderr.contains("missing shards 0, 1 of 4"), "{stderr}");
    let halves = [dir.join("half-2.json"), dir.join("half-1.json")].map(|p| shown(&p));
    let (again, stderr) = merge(&[&halves[0], &halves[1]], &dir.join("again.json"));
    assert!(!stderr.contains("missing"), "{stderr}");
    assert_eq!(second_half.merged_shards, [2, 3]);
    assert_eq!(again, direct);
    // And a merged result on its own merges to itself.
    let (alone, _) = merge(&[&shown(&dir.join("all.json"))], &dir.join("alone.json"));
    assert_eq!(alone, direct);
}

#[test]
fn a_shard_given_twice_is_refused_naming_both_files() {
    let dir = scratch("merge-twice");
    let shard = Shard::of(1, 4, 0, &[10, 0]);
    let first = shard.write(&dir);
    let copy = shown(&dir.join("copy-of-shard-1.json"));
    std::fs::copy(&first, &copy).unwrap();
    refused(
        &[&first, &copy],
        &format!("{first} and {copy} both hold shard 1 of 4 of test {TEST}"),
    );

    // A merged result holds its shards: another copy of one of them is refused too.
    let other = Shard::of(2, 4, 0, &[10, 0]).write(&dir);
    let merged = dir.join("1-and-2.json");
    merge(&[&first, &other], &merged);
    refused(
        &[&shown(&merged), &other],
        &format!("{} and {other} both hold shard 2 of 4", merged.display()),
    );
}

#[test]
fn results_of_different_tests_are_refused() {
    let dir = scratch("merge-tests");
    let ours = Shard::of(0, 2, 0, &[10, 0]).write(&dir);
    let theirs = Shard {
        test: "0123456789abcdef",
        ..Shard::of(1, 2, 0, &[10, 0])
    }
    .write(&dir);
    refused(
        &[&ours, &theirs],
        &format!("{ours} is from test {TEST} and {theirs} from test 0123456789abcdef"),
    );

    // A result of no test among shards.
    let mut lone = Shard::of(1, 2, 0, &[10, 0]).report();
    lone.test = None;
    let lone_path = shown(&dir.join("lone.json"));
    std::fs::write(&lone_path, lone.to_json()).unwrap();
    refused(
        &[&ours, &lone_path],
        &format!("{ours} is from test {TEST} but {lone_path} is from no test"),
    );

    // The same test split differently.
    let eight = Shard::of(1, 8, 0, &[10, 0]).write(&scratch("merge-eight"));
    refused(
        &[&ours, &eight],
        &format!("{ours} says test {TEST} has 2 shards but {eight} says 8"),
    );
}

#[test]
fn missing_shards_are_warned_by_number_and_the_rest_merged() {
    let dir = scratch("merge-missing");
    let given: Vec<String> = [0, 2, 3, 5, 6, 7]
        .iter()
        .map(|k| Shard::of(*k, 8, 0, &[10, 0]).write(&dir))
        .collect();
    let files: Vec<&str> = given.iter().map(String::as_str).collect();
    let (merged, stderr) = merge(&files, &dir.join("six.json"));
    assert!(
        stderr.contains(&format!(
            "warning: missing shards 1, 4 of 8 (test {TEST}): the result covers 6 of 8 shards"
        )),
        "{stderr}"
    );
    assert_eq!(merged.merged_shards, [0, 2, 3, 5, 6, 7]);
    assert_eq!(merged.test.as_ref().unwrap().shard_count, 8);
    assert_eq!(merged.requests["register"].sent, 6 * 2 * PER_SECOND);
    assert_eq!(registered_series(&merged), [60, 0]);

    let last = Shard::of(1, 8, 0, &[10, 0]).write(&dir);
    let (_, stderr) = merge(
        &[&shown(&dir.join("six.json")), &last],
        &dir.join("seven.json"),
    );
    assert!(stderr.contains("warning: missing shard 4 of 8"), "{stderr}");
}

#[test]
fn thresholds_recorded_by_the_shards_and_given_apply_to_the_merge() {
    let dir = scratch("merge-thresholds");
    // 30 registers each: the fleet's `register.sent>=50` failed on each shard alone.
    let recorded = &["register.sent>=50"];
    let fast = Shard {
        thresholds: recorded,
        ..Shard::of(0, 2, 0, &[10, 10, 0])
    };
    let slow = Shard {
        thresholds: recorded,
        latency_us: 5000,
        ..Shard::of(1, 2, 0, &[10, 10, 0])
    };
    assert!(!fast.report().thresholds[0].passed);
    let files = [fast.write(&dir), slow.write(&dir)];
    let out = dir.join("merged.json");
    let (merged, _) = merge(&[&files[0], &files[1]], &out);
    assert_eq!(merged.thresholds.len(), 1);
    assert!(merged.thresholds[0].passed, "{:?}", merged.thresholds);
    assert_eq!(merged.thresholds[0].value, Some(60.0));

    // Half the registers took 5 ms: the merged p99 does, though the fast shard's is 1 ms.
    let run = swarm(&[
        "report",
        &files[0],
        &files[1],
        "--threshold",
        "register.p99<2ms",
        "--json",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&run);
    assert_eq!(
        run.status.code(),
        Some(i32::from(exit::THRESHOLD_FAILED)),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("thresholds: 1 passed, 1 FAILED"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 of 2 thresholds failed: register.p99<2ms"),
        "{stderr}"
    );
    let written = read(out.to_str().unwrap());
    let verdicts: Vec<(&str, bool)> = written
        .thresholds
        .iter()
        .map(|t| (t.threshold.as_str(), t.passed))
        .collect();
    assert_eq!(
        verdicts,
        [("register.sent>=50", true), ("register.p99<2ms", false)]
    );
}

#[test]
fn impossible_test_identities_are_bad_input_naming_the_file_and_field() {
    let dir = scratch("merge-impossible");
    let one = Shard::of(0, 4, 0, &[10, 0]).write(&dir);
    let fifth = Shard::of(4, 4, 0, &[10, 0]).write(&dir);
    refused(
        &[&one, &fifth],
        &format!("{fifth}: field `test`: shard 4 is not below shard_count 4 (shards count from 0)"),
    );

    // Forty days apart: not one test, and not forty days of empty intervals either.
    let late = Shard::of(1, 4, 40 * 24 * 3600 * 1000, &[10, 0]).write(&dir);
    refused(
        &[&one, &late],
        &format!("{late} ends 40 days after {one} starts"),
    );
}
