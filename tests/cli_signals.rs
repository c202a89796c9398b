//! Signals to a running `run`: SIGTERM stops it as Ctrl-C does but exits 143; a second Ctrl-C
//! during the stop ends it at once, exit 130. Either way every report is written whole, and
//! what it counts adds up.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/cli.rs"]
mod cli;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use lwm2m_swarm::client::RequestKind;
use lwm2m_swarm::metrics::Snapshot;

/// `clients` clients at `rate` a second, held an hour: only a signal ends it.
fn fleet(dir: &Path, clients: u64, rate: u64) -> PathBuf {
    let path = dir.join("fleet.toml");
    let text = format!(
        "[client]\nlifetime = \"60s\"\n\
         [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = {rate}\nhold = \"1h\"\nstop_timeout = \"30s\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A run writing every report into `dir`, its progress lines coming through the receiver.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(dir: &Path, fleet: &Path, ports: &str) -> Running {
        let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
            .args(["run", fleet.to_str().unwrap(), "--ports", ports])
            .args(["--progress-every", "200ms", "--json", &out("result.json")])
            .args([
                "--hdr-log",
                &out("result.hlog"),
                "--plot",
                &out("latency.svg"),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `text` (within 30 s).
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(line) = self.lines.recv_timeout(left) {
                self.seen.push(line);
            } else {
                let _ = self.child.kill();
                panic!("never saw {text:?}: {:#?}", self.seen);
            }
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-s", name, &pid]).status();
        assert!(status.unwrap().success(), "kill -s {name}");
    }

    /// Waits for the exit (within 30 s); the exit status and everything printed.
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.seen.extend(self.lines.iter());
                return (status, self.seen.join("\n"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the run did not exit: {:#?}", self.seen);
            }
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        }
    }
}

/// Every report is there whole and alone (no temporary file beside it); returns the JSON
/// result's counts, read back as `report` reads them.
fn complete_reports(dir: &Path) -> Snapshot {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["fleet.toml", "latency.svg", "result.hlog", "result.json"]
    );
    let svg = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    let log = std::fs::read_to_string(dir.join("result.hlog")).unwrap();
    assert!(log.starts_with("#[Logged with lwm2m-swarm"), "{log}");
    assert!(log.contains("Tag=register,"), "{log}");
    let json = dir.join("result.json");
    let text = std::fs::read_to_string(&json).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).expect("the JSON result is whole");
    lwm2m_swarm::report::merge_files(&[json])
        .unwrap_or_else(|e| panic!("{e}"))
        .summary
}

#[test]
fn sigterm_stops_the_run_gracefully_writes_every_report_and_exits_143() {
    let dir = cli::scratch("sigterm");
    let fleet = fleet(&dir, 10, 100);
    let mut run = Running::start(&dir, &fleet, "28600-28699");
    run.wait_for("registered 10 ");
    run.signal("TERM");
    let (status, out) = run.finish();
    assert_eq!(status.code(), Some(143), "{out}");
    assert!(out.contains("interrupted: de-registering"), "{out}");
    let s = complete_reports(&dir);
    accounting::assert_accounted(&s);
    let deregister = s.request(RequestKind::Deregister);
    assert_eq!((deregister.sent, deregister.ok), (10, 10), "{s}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_ctrl_c_during_the_stop_ends_the_run_at_once_with_whole_reports() {
    let dir = cli::scratch("sigint-twice");
    // The stop is paced like the ramp: 10 clients at 5 a second take 2 s to de-register.
    let clients = 10;
    let fleet = fleet(&dir, clients, 5);
    let mut run = Running::start(&dir, &fleet, "28700-28799");
    run.wait_for(&format!("registered {clients} "));
    run.signal("INT");
    run.wait_for("interrupted: de-registering");
    run.signal("INT");
    let (status, out) = run.finish();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains("interrupted again: stopping at once"), "{out}");
    let s = complete_reports(&dir);
    // Every request ended once: the De-registers the stop had sent before the second Ctrl-C
    // were answered or are counted as aborted.
    accounting::assert_accounted(&s);
    let deregister = s.request(RequestKind::Deregister);
    assert!(deregister.sent < clients, "the stop ran to its end: {s}");
    assert_eq!(s.request(RequestKind::Register).ok, clients, "{s}");
    std::fs::remove_dir_all(&dir).unwrap();
}
