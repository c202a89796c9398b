use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::metrics::RequestStats;

fn registered() -> usize {
    crate::client::state_index(crate::client::ClientState::Registered)
}

fn stats(sent: u64, ok: u64, error: u64, latencies_us: impl Iterator<Item = u64>) -> RequestStats {
    let mut r = RequestStats {
        sent,
        ok,
        error,
        retransmissions: 3,
        codes: vec![(Some(0x41), ok), (Some(0x84), error)],
        ..RequestStats::default()
    };
    for us in latencies_us {
        r.latency.record(us).unwrap();
        r.service.record(us / 2 + 1).unwrap();
    }
    r
}

fn run_config() -> RunConfig {
    RunConfig {
        command: vec!["lwm2m-swarm".into(), "run".into()],
        security: None,
        fleet: "fleets/demo.toml".into(),
        server: "embedded 127.0.0.1:5683".into(),
        embedded_load: Some("registrations only".into()),
        clients: 10,
        ramp: "100 clients/s".into(),
        hold: "1s".into(),
        duration: Some("5s".into()),
        stop_timeout: "2s".into(),
        populations: vec![schema::Population {
            name: "s".into(),
            template: "environment-sensor".into(),
            behaviour: "always-on".into(),
            count: 10,
            seed: 1,
        }],
        transport: "shared".into(),
        bind: Some("loopback".into()),
        ports: Some("23000-23099".into()),
        ..RunConfig::default()
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swarm-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn two_results_merge_into_the_result_of_the_combined_data() {
    let (first, second) = (1..=1000u64, 500..=3000u64);
    let mut a = Snapshot::default();
    a.requests[0] = stats(1000, 990, 10, first.clone().map(|v| v * 37));
    a.peak_states[registered()] = 400;
    a.traffic.datagrams_out = 5000;
    (a.traffic.network.dropped, a.traffic.network.rebound) = (3, 1);
    a.elapsed = Duration::from_secs(30);
    let mut b = Snapshot::default();
    b.requests[0] = stats(2501, 2501, 0, second.clone().map(|v| v * 11));
    b.requests[3] = stats(7, 7, 0, [100, 200].into_iter());
    b.peak_states[registered()] = 600;
    b.traffic.datagrams_out = 7000;
    b.traffic.network.dropped = 4;
    b.elapsed = Duration::from_secs(31);
    b.operations[0].total = 4;

    // The same data as one run would have counted it.
    let mut combined = Snapshot::default();
    combined.requests[0] = stats(
        3501,
        3491,
        10,
        first.map(|v| v * 37).chain(second.map(|v| v * 11)),
    );
    combined.requests[0].retransmissions = 6;
    combined.requests[0].codes = vec![(Some(0x41), 3491), (Some(0x84), 10)];
    combined.requests[3] = b.requests[3].clone();
    combined.peak_states[registered()] = 1000;
    combined.traffic.datagrams_out = 12_000;
    (
        combined.traffic.network.dropped,
        combined.traffic.network.rebound,
    ) = (7, 1);
    combined.elapsed = Duration::from_secs(31);
    combined.operations[0].total = 4;

    let paths = [temp("a.json"), temp("b.json")];
    for (path, s) in paths.iter().zip([&a, &b]) {
        let report = Report::new(run_config(), s, Vec::new(), Vec::new());
        write_file(path, &report.to_json()).unwrap();
    }
    // Runs of no test: their totals add, peaks included.
    let files = merge_files(&paths).unwrap();
    assert_eq!(files.inputs.len(), 2);
    assert!(files.test().is_none() && files.missing.is_none());
    let written = files.report(Vec::new());
    assert_eq!(written.clients.peak["registered"], 1000, "the sum of peaks");
    assert!(written.test.is_none() && written.merged_shards.is_empty());
    assert!((written.elapsed_s - 31.0).abs() < 1e-9, "the longest");
    let merged = files.summary;
    let (merged_register, combined_register) = (
        merged.request(crate::client::RequestKind::Register),
        &combined.requests[0],
    );
    assert_eq!(
        (
            merged_register.sent,
            merged_register.ok,
            merged_register.error,
            merged_register.in_flight()
        ),
        (3501, 3491, 10, 0)
    );
    assert_eq!(
        merged_register.latency.len(),
        combined_register.latency.len()
    );
    for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
        assert_eq!(
            merged_register.latency.value_at_quantile(q),
            combined_register.latency.value_at_quantile(q),
            "q {q}"
        );
        assert_eq!(
            merged_register.service.value_at_quantile(q),
            combined_register.service.value_at_quantile(q),
            "q {q}"
        );
    }
    assert_eq!(merged_register.latency, combined_register.latency);
    // The summary table, codes, peaks and traffic included, is the combined run's.
    let mut codes = merged_register.codes.clone();
    codes.sort();
    assert_eq!(codes, [(Some(0x41), 3491), (Some(0x84), 10)]);
    let sorted = |s: &Snapshot| {
        let mut s = s.clone();
        for r in &mut s.requests {
            r.codes.sort();
        }
        s.to_string()
    };
    assert_eq!(sorted(&merged), sorted(&combined));
    assert!(merged.to_string().contains(
        "network (emulated): dropped 7, delayed 0, duplicated 0, reordered 0, rebound 1"
    ));
}

#[test]
fn a_report_round_trips_and_refuses_other_versions() {
    let mut s = Snapshot::default();
    s.requests[1] = stats(5, 4, 1, [1000, 2000, 3000, 4000, 90_000].into_iter());
    s.requests[1].codes.push((None, 2));
    s.states[registered()] = 3;
    s.connections.ok = 3;
    s.connections.failed = 1;
    s.connections.failures = vec![("refused".into(), 1)];
    s.connections.lost = vec![("reset".into(), 2)];
    s.connections.latency.record(1_500).unwrap();
    let report = Report::new(run_config(), &s, Vec::new(), Vec::new());
    let json = report.to_json();
    let back = Report::from_json(&json).unwrap();
    assert_eq!(back, report);
    let again = back.to_snapshot().unwrap();
    assert_eq!(again.requests[1].latency, s.requests[1].latency);
    assert_eq!(again.to_string(), s.to_string());
    let update = &report.requests["update"];
    assert_eq!(update.codes["2.01"], 4);
    assert_eq!(update.codes["RST"], 2);
    assert_eq!(update.latency_us.max, s.requests[1].latency.max());
    assert_eq!(update.latency_us.count, 5);

    // The shard's identity round-trips; a file without it (older) reads as `None`.
    let mut shard = report.clone();
    shard.test = Some(schema::TestIdentity {
        id: "ab".repeat(32),
        shard_index: 2,
        shard_count: 3,
        started_unix_ms: 1_795_615_016_150,
        late_start_ms: 250,
    });
    assert_eq!(Report::from_json(&shard.to_json()).unwrap(), shard);
    let mut value: Value = serde_json::from_str(&shard.to_json()).unwrap();
    value.as_object_mut().unwrap().remove("test");
    assert_eq!(Report::from_json(&value.to_string()).unwrap().test, None);

    let newer = schema::SCHEMA_VERSION + 1;
    let newer_json = json.replacen(
        &format!("\"version\": {}", schema::SCHEMA_VERSION),
        &format!("\"version\": {newer}"),
        1,
    );
    let err = Report::from_json(&newer_json).unwrap_err().to_string();
    assert!(err.contains(&format!("version {newer}")), "{err}");
    let broken = json.replacen("\"hdr\": \"", "\"hdr\": \"!!", 1);
    let err = Report::from_json(&broken)
        .unwrap()
        .to_snapshot()
        .unwrap_err();
    assert!(err.to_string().contains("not base64"), "{err}");
}

fn at(ms: u64, sent: u64, latencies_us: &[u64]) -> Snapshot {
    let mut s = Snapshot {
        elapsed: Duration::from_millis(ms),
        ..Snapshot::default()
    };
    s.requests[0].sent = sent;
    s.requests[0].ok = latencies_us.len() as u64;
    for us in latencies_us {
        s.requests[0].latency.record(*us).unwrap();
    }
    s
}

#[test]
fn the_collector_keeps_one_interval_per_second_with_that_seconds_latency() {
    let log = temp("collector.hlog");
    let args = ReportArgs {
        hdr_log: Some(log.clone()),
        ..ReportArgs::default()
    };
    let mut c = Collector::new(SystemTime::now(), &args, &Identity::default()).unwrap();
    assert!(!c.tick(&at(500, 1, &[])));
    assert!(c.tick(&at(1100, 10, &[100; 10])));
    assert!(!c.tick(&at(1600, 12, &[100; 10])));
    // Ten fast answers in the first second, then ten slow ones.
    let mut slow = vec![100; 10];
    slow.extend([50_000; 10]);
    assert!(c.tick(&at(2050, 25, &slow)));
    let mut last = slow.clone();
    last.push(7);
    let (intervals, log_error) = c.finish(&at(2300, 25, &last));
    assert!(log_error.is_none());
    let register = |i: usize| intervals[i].requests["register"];
    assert_eq!(intervals.len(), 3);
    assert_eq!(
        (register(0).sent, register(1).sent, register(2).sent),
        (10, 15, 0)
    );
    assert_eq!(register(0).p99_us, Some(100));
    // Only the second second's answers: all slow.
    let h = &at(0, 0, &[50_000]).requests[0].latency;
    assert_eq!(register(1).p50_us, Some(h.highest_equivalent(50_000)));
    assert_eq!(register(2).p50_us, Some(7));
    assert_eq!(intervals[1].requests["update"].p50_us, None);
    assert!((intervals[1].length_s - 0.95).abs() < 1e-9);
    assert!((intervals[2].elapsed_s - 2.3).abs() < 1e-9);

    let bytes = std::fs::read(&log).unwrap();
    let registers: Vec<u64> =
        hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&bytes)
            .filter_map(|e| match e.unwrap() {
                hdrhistogram::serialization::interval_log::LogEntry::Interval(i)
                    if i.tag().map(|t| t.as_str()) == Some("register") =>
                {
                    Some(schema::decode(i.encoded_histogram()).unwrap().len())
                }
                _ => None,
            })
            .collect();
    assert_eq!(registers, [10, 10, 1]);
}

#[test]
fn a_version_1_report_reads_its_operations_as_requests() {
    let v1 = include_str!("../../tests/fixtures/report-v1.json");
    assert!(v1.contains("\"version\": 1") && v1.contains("\"operations\""));
    let report = Report::from_json(v1).unwrap();
    assert_eq!(report.version, schema::SCHEMA_VERSION);
    let register = &report.requests["register"];
    assert_eq!(
        (register.sent, register.ok, register.codes["2.01"]),
        (10, 10, 10)
    );
    assert_eq!(report.intervals[0].requests["register"].p99_us, Some(2007));
    let s = report.to_snapshot().unwrap();
    assert_eq!(
        s.request(crate::client::RequestKind::Register)
            .latency
            .len(),
        10
    );
    // Written back, it is a current report.
    let json = report.to_json();
    assert!(json.contains("\"requests\"") && !json.contains("\"operations\""));
    assert_eq!(Report::from_json(&json).unwrap(), report);
}

/// Key paths of a JSON value; the keys of maps keyed by name (requests, states, codes) are `*`.
fn shape(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    const BY_NAME: [&str; 7] = [
        "requests",
        "server_operations",
        "clients.peak",
        "clients.at_end",
        "requests.*.codes",
        "intervals[].clients",
        "intervals[].requests",
    ];
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let key = if BY_NAME.contains(&path) {
                    "*"
                } else {
                    k.as_str()
                };
                let sub = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(sub.clone());
                shape(child, &sub, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_documented_schema_is_the_schema() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/report-schema.md"
    ))
    .unwrap();
    let example = doc
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/report-schema.md has a ```json example");
    // The example is a valid report...
    let parsed = Report::from_json(example).expect("the documented example parses");
    parsed.to_snapshot().expect("its histograms decode");
    // ...with exactly the fields a run writes.
    let mut s = at(1500, 3, &[100, 200]);
    s.requests[0].codes.push((Some(0x41), 2));
    let (interval, _) = interval(&Snapshot::default(), &s);
    let verdicts = check_thresholds(&["register.p99<1s".parse().unwrap()], &s);
    let mut written = Report::new(
        run_config(),
        &s,
        vec![interval],
        threshold_results(&verdicts),
    );
    written.test = Some(schema::TestIdentity {
        id: "0".repeat(64),
        shard_index: 1,
        shard_count: 2,
        started_unix_ms: 1_795_615_016_150,
        late_start_ms: 3,
    });
    let (mut documented, mut actual) = (BTreeSet::new(), BTreeSet::new());
    shape(&serde_json::from_str(example).unwrap(), "", &mut documented);
    shape(&serde_json::to_value(&written).unwrap(), "", &mut actual);
    assert_eq!(documented, actual);
    // And every field is described in the table.
    for path in &actual {
        let field = path.rsplit('.').next().unwrap();
        if field != "*" {
            assert!(
                doc.contains(&format!("`{field}`")),
                "{path} is not described"
            );
        }
    }
    assert!(doc.contains(&format!("\"version\": {}", schema::SCHEMA_VERSION)));
}

#[test]
fn a_test_id_is_the_sha256_of_its_parts_kept_apart() {
    let id = schema::TestIdentity::id_of(&["plan", "load"]);
    assert_eq!(id.len(), 64);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(id, schema::TestIdentity::id_of(&["plan", "load"]));
    assert_ne!(id, schema::TestIdentity::id_of(&["plan", "load2"]));
    // Where one part ends matters.
    assert_ne!(id, schema::TestIdentity::id_of(&["pla", "nload"]));
    // SHA-256 of nothing at all.
    assert_eq!(
        schema::TestIdentity::id_of(&[]),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn reports_appear_whole_and_checking_a_path_creates_nothing() {
    let dir = temp("atomic");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("result.json");
    check_writable(&path).unwrap();
    assert!(
        !path.exists(),
        "checking must not leave an empty report behind"
    );
    write_file(&path, "first").unwrap();
    write_file(&path, "second, longer").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "second, longer");
    // Readable by others as a file written by `std::fs::write` (under a usual umask) would be.
    let plain = dir.join("plain");
    std::fs::write(&plain, "x").unwrap();
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&path), mode(&plain));
    std::fs::remove_file(&plain).unwrap();
    // Only the report: no temporary file left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["result.json"]);
    let missing = dir.join("no-such-dir").join("result.json");
    let err = check_writable(&missing).unwrap_err().to_string();
    assert!(err.starts_with(&missing.display().to_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_report_is_attempted_and_every_failure_named() {
    let dir = temp("all-attempted");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a-directory")).unwrap();
    let missing = dir.join("no-such-dir").join("result.json");
    let occupied = dir.join("a-directory");
    let good = dir.join("latency.svg");
    let errors = write_files([
        (missing.as_path(), "json".to_string()),
        (good.as_path(), "svg".to_string()),
        (occupied.as_path(), "log".to_string()),
    ]);
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&missing.display().to_string()),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with(&occupied.display().to_string()),
        "{errors:?}"
    );
    // The one between the failures was written, and no temporary file was left.
    assert_eq!(std::fs::read_to_string(&good).unwrap(), "svg");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["a-directory", "latency.svg"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_notifications_and_handling_times_round_trip_and_a_version_2_file_reads_them_as_none() {
    let notify = crate::client::request_index(crate::client::RequestKind::Notify);
    let read = crate::client::operation_index(crate::client::OperationKind::Read);
    let mut s = at(1500, 3, &[100]);
    s.requests[notify].sent = 7;
    s.requests[notify].unacknowledged = 7;
    s.operations[read].total = 2;
    s.operations[read].ok = 2;
    s.operations[read].handling.record(40).unwrap();
    s.operations[read].handling.record(90).unwrap();
    let report = Report::new(run_config(), &s, Vec::new(), Vec::new());
    assert_eq!(report.requests["notify"].in_flight, 0);
    let back = Report::from_json(&report.to_json())
        .unwrap()
        .to_snapshot()
        .unwrap();
    assert_eq!(back.requests[notify].unacknowledged, 7);
    assert_eq!(back.operations[read].handling.len(), 2);
    assert_eq!(report.server_operations["read"].handling_us.count, 2);

    // Version 2 had neither field: they read as nothing, not as an error.
    let mut v2: Value = serde_json::from_str(&report.to_json()).unwrap();
    v2["version"] = 2.into();
    for r in v2["requests"].as_object_mut().unwrap().values_mut() {
        r.as_object_mut().unwrap().remove("unacknowledged");
    }
    for o in v2["server_operations"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        let o = o.as_object_mut().unwrap();
        o.remove("handling_us");
        o.remove("hdr");
    }
    let old = Report::from_json(&v2.to_string()).unwrap();
    assert_eq!(old.requests["notify"].unacknowledged, 0);
    let old = old.to_snapshot().unwrap();
    assert!(old.operations[read].handling.is_empty());
    assert_eq!(old.operations[read].total, 2);
}
