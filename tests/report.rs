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
    // The percentile chart's curves, then those over time.
    assert!(
        curves.starts_with(&["register", "deregister"]),
        "{curves:?}"
    );

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
    // The counts row, then the latency row.
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("register "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!(&rows[0][1..3], ["20", "20"], "{stdout}");
    let p99 = format!("{:.2}", register.latency_us.p99 as f64 / 1000.0);
    // Columns: name, answered, p50, p90, p99...
    assert_eq!(rows[1][1], "20", "{stdout}");
    assert_eq!(rows[1][4], p99, "{stdout}");
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

/// The words of the first line after the line starting with `header` whose first word is `name`.
fn row_under<'a>(text: &'a str, header: &str, name: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.starts_with(header))
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} row under {header:?}:\n{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn a_10s_run_shows_dashes_non_notifications_apart_json_on_stdout_and_intervals() {
    // NON notifications every second or two; a 60 s lifetime: no Update within 10 s.
    let fleet = fleet("ten.toml", "60s", "");
    let csv = out("ten.csv");
    let run = swarm(&[
        "run",
        &fleet,
        "--no-tui",
        "--duration",
        "10s",
        "--ports",
        "23200-23299",
        "--observe",
        "/3/0/13",
        "--pmin",
        "1",
        "--pmax",
        "2",
        "--read",
        "/3/0/0@1s",
        "--json",
        "-",
        "--intervals",
        &csv,
    ]);
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    // stdout is the JSON alone; the summary went to stderr.
    let report = Report::from_json(&stdout).expect("stdout is the JSON result");
    let summary = &stderr[stderr.find("elapsed ").expect("a summary on stderr")..];
    let wide: Vec<&str> = summary
        .lines()
        .filter(|l| l.chars().count() > 100)
        .collect();
    assert!(
        wide.is_empty(),
        "lines over 100 columns: {wide:#?}\n{summary}"
    );

    // Nothing answered: no latency, `-` in every column.
    for kind in ["update", "notify"] {
        let latency = row_under(summary, "latency ms", kind);
        assert_eq!(latency[1..], ["0", "-", "-", "-", "-", "-"], "{summary}");
    }
    // The notifications were NON: sent, none ok, all in `non`.
    let notify = &report.requests["notify"];
    assert!(notify.sent >= 10, "{notify:?}");
    assert_eq!(
        (notify.ok, notify.unacknowledged),
        (0, notify.sent),
        "{notify:?}"
    );
    let counts = row_under(summary, "request", "notify");
    assert_eq!(counts[2], "0", "{summary}");
    assert_eq!(counts[6], notify.sent.to_string(), "{summary}");
    // Elapsed time and achieved rates.
    assert!(summary.starts_with("elapsed 1"), "{summary}");
    let total = row_under(summary, "request", "total");
    let sent: u64 = report.requests.values().map(|r| r.sent).sum();
    let rate = sent as f64 / report.elapsed_s;
    assert_eq!(total[1], sent.to_string(), "{summary}");
    assert_eq!(total[9], format!("{rate:.1}"), "{summary}");
    assert!(summary.contains("datagrams: out "), "{summary}");

    // The server's reads were timed, and the engine's real shard count recorded.
    let read = &report.server_operations["read"];
    assert!(
        read.total >= 10 && read.handling_us.count == read.total,
        "{read:?}"
    );
    assert!(report.config.shards >= 1, "{:?}", report.config);

    check_interval_table(&csv, &report);
    check_report_command(&stdout, &report);
}

/// One CSV row per second of the run (the last one shorter), as the JSON's intervals.
fn check_interval_table(csv: &str, report: &Report) {
    let notify = &report.requests["notify"];
    let table = std::fs::read_to_string(csv).unwrap();
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len() - 1, report.intervals.len(), "{table}");
    assert!((10..=14).contains(&report.intervals.len()), "{table}");
    let column = |name: &str| rows[0].iter().position(|h| *h == name).unwrap();
    let elapsed: Vec<f64> = rows[1..]
        .iter()
        .map(|r| r[column("elapsed_s")].parse().unwrap())
        .collect();
    assert!(
        elapsed
            .windows(2)
            .all(|w| w[1] > w[0] && w[1] - w[0] <= 1.5),
        "{table}"
    );
    let non: u64 = rows[1..]
        .iter()
        .map(|r| r[column("notify_non")].parse::<u64>().unwrap())
        .sum();
    assert_eq!(non, notify.unacknowledged, "{table}");
    assert!(
        rows[1..].iter().any(|r| r[column("datagrams_in")] != "0"),
        "{table}"
    );
}

/// `report` shows the handling times and engine shards it read, and writes JSON to stdout too.
fn check_report_command(json_text: &str, report: &Report) {
    let read = &report.server_operations["read"];
    let json = out("ten.json");
    std::fs::write(&json, json_text).unwrap();
    let merged = swarm(&["report", &json, "--json", "-"]);
    let (merged_out, merged_err) = text(&merged);
    assert!(merged.status.success(), "{merged_err}");
    let again = Report::from_json(&merged_out).expect("report's stdout is the JSON result");
    assert_eq!(again.config.shards, report.config.shards);
    let shards = match report.config.shards {
        1 => "1 engine shard)".to_string(),
        n => format!("{n} engine shards)"),
    };
    assert!(merged_err.contains(&shards), "{merged_err}");
    // One unsharded run: `shard 0/1` as `--shard` would say it, not `shards 0 of 1`.
    let test_line = merged_err
        .lines()
        .find(|l| l.starts_with("test "))
        .expect("the test's line");
    assert!(test_line.ends_with(": shard 0/1"), "{merged_err}");
    let wide: Vec<&str> = merged_err
        .lines()
        .filter(|l| l.chars().count() > 100)
        .collect();
    assert!(wide.is_empty(), "lines over 100 columns: {wide:#?}");
    let read_row = row_under(&merged_err, "server operation", "read");
    assert_eq!(read_row[1], read.total.to_string(), "{merged_err}");
    assert_eq!(
        read_row[4],
        read.handling_us.p50.to_string(),
        "{merged_err}"
    );
}
