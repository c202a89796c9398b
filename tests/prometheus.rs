//! `run --prometheus` end to end: a short DTLS bootstrap run of the binary against the embedded
//! servers, scraped while it runs and after it ended (`--prometheus-linger`, ended by Ctrl-C);
//! and `promtool check metrics` on that final scrape.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long the whole run, from start to the lingering endpoint, may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

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

/// Ends on Ctrl-C's signal within the deadline; its exit status must be success.
fn interrupt_and_wait(child: &mut Child, started: Instant) {
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
    let _ = child.kill();
    panic!("the run went on lingering after Ctrl-C");
}

/// One run for every test here: 10 clients bootstrap and register over DTLS, hold 3 s and stop.
/// Returns the scrape taken while the endpoint lingered after the run.
fn final_scrape() -> &'static str {
    static SCRAPE: OnceLock<String> = OnceLock::new();
    SCRAPE.get_or_init(|| {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
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
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
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
        interrupt_and_wait(&mut child, started);
        assert!(
            scrape(&addr).is_none(),
            "the endpoint closes with the process"
        );
        last
    })
}

#[test]
fn the_final_scrape_has_the_runs_end_in_histograms_labelled_by_shard() {
    let text = final_scrape();
    for sample in [
        "lwm2m_swarm_info{shard=\"0/1\",version=\"0.1.0\",test_hash=\"\"} 1",
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
