//! `run`'s reports end to end: the binary on a small fleet against the embedded server, with
//! `--json`, `--hdr-log`, `--plot`, `--threshold`, and `report` reading back (`--prometheus`:
//! tests/prometheus.rs).

use std::path::PathBuf;
use std::process::Command;

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use cli::{swarm, text};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use lwm2m_swarm::cli::exit;
use lwm2m_swarm::report::{Report, schema};

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fleet(name: &str, hold: &str, extra_load: &str) -> String {
    let path = dir().join(name);
    let body = format!(
        "[client]\nlifetime = \"60s\"\n[[population]]\nname = \"s\"\nshare = 1.0\n\
         template = \"environment-sensor\"\n[load]\nclients = 10\nrate = 100\nhold = \"{hold}\"\n\
         stop_timeout = \"2s\"\n{extra_load}"
    );
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

fn out(name: &str) -> String {
    dir().join(name).to_str().unwrap().to_string()
}

#[test]
fn a_passing_run_writes_json_interval_log_and_plot_and_report_merges_them() {
    let fleet = fleet(
        "pass.toml",
        "2s",
        "thresholds = [\"register.error_rate<=0%\"]\n",
    );
    let (json, log, svg) = (out("pass.json"), out("pass.hlog"), out("pass.svg"));
    let run = swarm(&[
        "run",
        &fleet,
        "--ports",
        "23000-23099",
        "--json",
        &json,
        "--hdr-log",
        &log,
        "--plot",
        &svg,
        "--threshold",
        "register.p99<10s",
        "--threshold",
        "register.sent>=10",
    ]);
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("thresholds: 3 passed, 0 FAILED"),
        "{stdout}"
    );

    let report = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let register = &report.requests["register"];
    assert_eq!(
        (register.sent, register.ok, register.in_flight),
        (10, 10, 0)
    );
    assert_eq!(register.latency_us.count, 10);
    assert_eq!(schema::decode(&register.hdr).unwrap().len(), 10);
    assert_eq!(report.requests["deregister"].ok, 10);
    assert_eq!(report.clients.peak["registered"], 10);
    assert_eq!(report.config.clients, 10);
    assert_eq!(report.config.ports.as_deref(), Some("23000-23099"));
    assert_eq!(report.thresholds.len(), 3);
    assert!(report.thresholds.iter().all(|t| t.passed));
    // About one interval per second of a ~2.1 s run, and every register is in one of them.
    let intervals = &report.intervals;
    assert!((2..=6).contains(&intervals.len()), "{intervals:?}");
    let sent: u64 = intervals.iter().map(|i| i.requests["register"].sent).sum();
    assert_eq!(sent, 10);
    assert!(
        intervals
            .windows(2)
            .all(|w| w[1].elapsed_s > w[0].elapsed_s)
    );

    check_interval_log(&log, &register.hdr);

    let plot = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&plot).expect("the plot is XML");
    let curves: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("curve"))
        .filter_map(|n| n.attribute("data-op"))
        .collect();
    assert_eq!(curves, ["register", "deregister"]);

    // The same shard twice is refused; results of no test (here the same one, its `test`
    // taken out) merge: twice the counts, the same percentiles.
    let twice = swarm(&["report", &json, &json]);
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice).1);
    let mut untested: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    untested.as_object_mut().unwrap().remove("test");
    let copy = out("pass-untested.json");
    std::fs::write(&copy, untested.to_string()).unwrap();
    let merged = swarm(&["report", &copy, &copy, "--threshold", "register.sent>=20"]);
    let (stdout, stderr) = text(&merged);
    assert!(merged.status.success(), "{stdout}\n{stderr}");
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("register "))
        .expect("a register row")
        .split_whitespace()
        .collect();
    assert_eq!(&row[1..3], ["20", "20"], "{stdout}");
    let p99 = format!("{:.2}", register.latency_us.p99 as f64 / 1000.0);
    // Columns: name, sent, ok, error, timeout, aborted, flight, retrans, p50, p90, p99...
    assert_eq!(row[10], p99, "{stdout}");
    assert!(stdout.contains("thresholds: 1 passed"), "{stdout}");
}

#[test]
fn a_failing_threshold_exits_with_its_own_code_and_is_recorded() {
    let fleet = fleet("fail.toml", "1s", "");
    let json = out("fail.json");
    let run = swarm(&[
        "run",
        &fleet,
        "--ports",
        "23100-23199",
        "--json",
        &json,
        "--threshold",
        "register.p99<1us",
        "--threshold",
        "register.ok>=10",
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
    assert!(stdout.contains("FAILED  register.p99<1us"), "{stdout}");
    assert!(
        stderr.contains("1 of 2 thresholds failed: register.p99<1us"),
        "{stderr}"
    );
    let report = Report::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let failed: Vec<&str> = report
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.threshold.as_str())
        .collect();
    assert_eq!(failed, ["register.p99<1us"]);
}

#[test]
fn bad_thresholds_and_unreadable_results_are_bad_input() {
    let fleet = fleet("bad.toml", "1s", "");
    let run = swarm(&["run", &fleet, "--threshold", "register.p99<500"]);
    let (_, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("register.p99<500"), "{stderr}");
    assert!(stderr.contains("with its unit"), "{stderr}");

    let in_file = self::fleet("bad-file.toml", "1s", "thresholds = [\"notify.p42<1s\"]\n");
    let run = swarm(&["check", &in_file]);
    let (_, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad-file.toml:12: field `thresholds`"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown metric \"p42\""), "{stderr}");

    let not_json = out("not.json");
    std::fs::write(&not_json, "{}").unwrap();
    let run = swarm(&["report", &not_json]);
    let (_, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not.json"), "{stderr}");
    let run = swarm(&["run", &fleet, "--json", "/no/such/dir/r.json"]);
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn report_reads_a_version_1_file() {
    let run = swarm(&[
        "report",
        "tests/fixtures/report-v1.json",
        "--threshold",
        "register.sent>=10",
    ]);
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("register "))
        .expect("a register row");
    assert_eq!(row.split_whitespace().nth(1), Some("10"), "{stdout}");
    assert!(stdout.contains("thresholds: 1 passed"), "{stdout}");
}

/// The interval log reads back with the Rust `HdrHistogram` parser and with its Python port:
/// ten registers, one tag per request kind, the same highest value as the JSON's histogram.
fn check_interval_log(log: &str, register_hdr: &str) {
    let bytes = std::fs::read(log).unwrap();
    let mut registers = 0;
    let mut tags = std::collections::BTreeSet::new();
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(i) = entry.expect("a well-formed log") {
            let tag = i
                .tag()
                .expect("every interval is tagged")
                .as_str()
                .to_string();
            if tag == "register" {
                registers += schema::decode(i.encoded_histogram()).unwrap().len();
            }
            tags.insert(tag);
        }
    }
    assert_eq!(registers, 10);
    assert_eq!(
        tags.into_iter().collect::<Vec<_>>(),
        ["deregister", "notify", "register", "update"]
    );
    // And with HdrHistogram's Python port, a reader nobody on this project wrote.
    let read = peers::read_hdr_log(std::path::Path::new(log));
    assert_eq!(read["register"]["count"], 10, "{read}");
    assert_eq!(read["deregister"]["count"], 10, "{read}");
    let max_us = read["register"]["max"].as_u64().unwrap();
    let ours = schema::decode(register_hdr).unwrap().max();
    // The same histogram, so the same highest value (to its 3 significant digits).
    assert!(
        max_us.abs_diff(ours) * 1000 <= ours,
        "python {max_us} us, ours {ours} us"
    );
}

#[test]
fn a_run_killed_before_its_end_leaves_no_report_behind() {
    use std::io::{BufRead, BufReader};
    let fleet = fleet("killed.toml", "60s", "");
    let json = out("killed.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args([
            "run",
            &fleet,
            "--ports",
            "23400-23499",
            "--no-tui",
            "--json",
            &json,
        ])
        .args(["--progress-every", "200ms"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // The first progress line: the path was checked and the clients are running.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let progress = stdout
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with('['));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(progress.is_some(), "the run printed no progress line");
    assert!(
        !std::path::Path::new(&json).exists(),
        "a killed run left {json} behind"
    );
}

#[test]
fn a_report_path_that_cannot_be_written_is_refused_before_anything_starts() {
    let fleet = fleet("nowhere.toml", "1s", "");
    let json = dir().join("no-such-dir").join("result.json");
    let run = swarm(&["run", &fleet, "--no-tui", "--json", json.to_str().unwrap()]);
    let (stdout, stderr) = text(&run);
    assert_eq!(
        run.status.code(),
        Some(i32::from(exit::BAD_INPUT)),
        "{stderr}"
    );
    assert!(stderr.contains("no-such-dir does not exist"), "{stderr}");
    // Neither the embedded server nor the clients started.
    assert!(stdout.is_empty(), "{stdout}");
}
