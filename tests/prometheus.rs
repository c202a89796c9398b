//! `run --prometheus` end to end: a short DTLS bootstrap run of the binary against the embedded
//! servers, scraped while it runs and after it ended (`--prometheus-linger`, ended by Ctrl-C);
//! `promtool check metrics` on that final scrape; and the Grafana dashboard's queries checked
//! against the metric names it holds.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the whole run, from start to the lingering endpoint, may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
const DASHBOARD: &str = "deploy/grafana/lwm2m-swarm.json";

/// The body of a `GET /metrics`, or `None` while nothing listens there.
fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    Some(body.to_string())
}

/// The next stdout line holding `needle`, within the run's deadline.
fn wait_for_line(lines: &Receiver<String>, needle: &str, started: Instant) -> String {
    loop {
        let left = RUN_DEADLINE.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {needle:?} on stdout ({e})"),
        }
    }
}

/// The run, killed if a failed check leaves it lingering.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Ends on Ctrl-C's signal within the deadline; its exit status must be success.
fn interrupt_and_wait(Run(child): &mut Run, started: Instant) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    while started.elapsed() < RUN_DEADLINE {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the run exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the run went on lingering after Ctrl-C");
}

/// One run for every test here: 10 clients bootstrap and register over DTLS, hold 3 s and stop.
/// Returns the scrape taken while the endpoint lingered after the run.
fn final_scrape() -> &'static str {
    static SCRAPE: OnceLock<String> = OnceLock::new();
    SCRAPE.get_or_init(|| {
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
            .args([
                "run",
                "fleets/bootstrap-dtls-demo.toml",
                "--clients",
                "10",
                "--duration",
                "3s",
                "--no-tui",
                "--ports",
                "23200-23299",
                "--prometheus",
                "127.0.0.1:0",
                "--prometheus-linger",
                "5m",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut run = Run(child);
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(run.0.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let announced = wait_for_line(&lines, "Prometheus metrics on http://", started);
        let addr = announced
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("no address in {announced:?}"))
            .to_string();

        // While the run lasts, the live numbers: every client registered at some point.
        let registered = "lwm2m_swarm_clients{shard=\"0/1\",state=\"registered\"} 10\n";
        let mut live = String::new();
        while started.elapsed() < RUN_DEADLINE && !live.contains(registered) {
            live = scrape(&addr).expect("the endpoint serves while the run lasts");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(live.contains(registered), "{live}");

        // After it: the final numbers, for as long as the linger lasts or until Ctrl-C.
        wait_for_line(&lines, "Prometheus metrics stay on", started);
        let last = scrape(&addr).expect("the endpoint lingers after the run");
        interrupt_and_wait(&mut run, started);
        assert!(
            scrape(&addr).is_none(),
            "the endpoint closes with the process"
        );
        last
    })
}

/// Metric names of the sample lines (`_bucket`, `_sum`, `_count` as they appear).
fn names(exposition: &str) -> BTreeSet<&str> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect()
}

/// Label names of the sample lines.
fn label_names(exposition: &str) -> BTreeSet<&str> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('{').and_then(|(_, rest)| rest.split_once('}')))
        .flat_map(|(labels, _)| labels.split(',').filter_map(|kv| kv.split_once('=')))
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn the_final_scrape_has_the_runs_end_in_histograms_labelled_by_shard() {
    let text = final_scrape();
    for sample in [
        "lwm2m_swarm_clients{shard=\"0/1\",state=\"stopped\"} 10",
        "lwm2m_swarm_requests_total{shard=\"0/1\",op=\"register\",outcome=\"ok\"} 10",
        "lwm2m_swarm_answers_total{shard=\"0/1\",op=\"register\",code=\"2.01\"} 10",
        "lwm2m_swarm_latency_seconds_count{shard=\"0/1\",op=\"bootstrap\"} 10",
        "lwm2m_swarm_latency_seconds_bucket{shard=\"0/1\",op=\"register\",le=\"+Inf\"} 10",
        "lwm2m_swarm_bootstrap_duration_seconds_count{shard=\"0/1\"} 10",
        "lwm2m_swarm_dtls_handshakes_total{shard=\"0/1\",outcome=\"ok\"} 20",
        "lwm2m_swarm_dtls_handshake_duration_seconds_count{shard=\"0/1\"} 20",
    ] {
        assert!(
            text.lines().any(|l| l == sample),
            "{sample} missing:\n{text}"
        );
    }
    // The test's identity, as the run's --json records it: a SHA-256 in hex.
    let prefix = format!(
        "lwm2m_swarm_info{{shard=\"0/1\",version=\"{}\",test_hash=\"",
        env!("CARGO_PKG_VERSION")
    );
    let info = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no info metric:\n{text}"));
    let (hash, rest) = info.split_once('"').expect("a closed label");
    assert_eq!(rest, "} 1");
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("lwm2m_swarm_"), "{line}");
        assert!(line.contains("shard=\"0/1\""), "no shard label: {line}");
    }
    // No update was due in 3 s: no update latency series, rather than made-up zeros.
    assert!(
        !text.contains("lwm2m_swarm_latency_seconds_bucket{shard=\"0/1\",op=\"update\""),
        "{text}"
    );
}

#[test]
fn promtool_accepts_the_final_scrape() {
    let text = final_scrape();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool: {e} (scripts/install-peers installs it: Debian package prometheus)")
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `expr` in the dashboard, with where it is.
fn exprs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => found.push((at.to_string(), e.clone())),
                    _ => exprs(v, &format!("{at}.{key}"), found),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                exprs(v, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The identifiers in a query (`PromQL`) outside strings, and the labels of its `by (...)`.
fn identifiers(expr: &str) -> (Vec<&str>, Vec<&str>) {
    let mut words = Vec::new();
    let mut in_string = false;
    let mut start = None;
    for (i, c) in expr.char_indices() {
        let word_char = c.is_ascii_alphanumeric() || c == '_' || c == ':';
        if let Some(s) = start.filter(|_| !word_char) {
            words.push(&expr[s..i]);
            start = None;
        }
        if c == '"' {
            in_string = !in_string;
        } else if !in_string && word_char && start.is_none() {
            start = Some(i);
        }
    }
    words.extend(start.map(|s| &expr[s..]));
    let grouped = expr
        .split("by (")
        .skip(1)
        .filter_map(|rest| rest.split_once(')'))
        .flat_map(|(labels, _)| labels.split(',').map(str::trim))
        .collect();
    (words, grouped)
}

#[test]
fn the_grafana_dashboard_queries_only_what_a_run_exports() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "{DASHBOARD}: no Prometheus datasource variable"
    );
    let mut found = Vec::new();
    exprs(&dashboard, "", &mut found);
    assert!(found.len() >= 10, "{DASHBOARD}: {} queries", found.len());

    let scrape = final_scrape();
    let (exported, labels) = (names(scrape), label_names(scrape));
    let mut used = BTreeSet::new();
    for (at, expr) in &found {
        let (words, grouped) = identifiers(expr);
        let metrics: Vec<&str> = words
            .into_iter()
            .filter(|w| w.starts_with("lwm2m_"))
            .collect();
        assert!(
            !metrics.is_empty(),
            "{DASHBOARD} {at}: no metric in {expr:?}"
        );
        for m in metrics {
            assert!(
                exported.contains(m),
                "{DASHBOARD} {at}: {m} is not in a scrape of a run ({expr:?})"
            );
            used.insert(m);
        }
        for label in grouped {
            // Summed over shards and pods: never grouped by them.
            assert!(
                labels.contains(label) && label != "shard",
                "{DASHBOARD} {at}: by ({label}) in {expr:?}"
            );
        }
    }
    for wanted in [
        "lwm2m_swarm_clients",
        "lwm2m_swarm_requests_total",
        "lwm2m_swarm_latency_seconds_bucket",
        "lwm2m_swarm_answers_total",
        "lwm2m_swarm_retransmissions_total",
        "lwm2m_swarm_dtls_handshakes_total",
        "lwm2m_swarm_bootstraps_total",
    ] {
        assert!(
            used.contains(wanted),
            "{DASHBOARD} has no panel on {wanted}"
        );
    }
}

#[test]
fn promql_identifiers_skip_strings_and_find_grouping_labels() {
    let (words, grouped) = identifiers(
        "histogram_quantile(0.99, sum by (le, op) (rate(lwm2m_swarm_latency_seconds_bucket\
         {code=~\"lwm2m_x\"}[$__rate_interval])))",
    );
    assert!(words.contains(&"lwm2m_swarm_latency_seconds_bucket"));
    assert!(!words.contains(&"lwm2m_x"), "{words:?}");
    assert_eq!(grouped, ["le", "op"]);
}
