//! One 4,000-client fleet run as 4 shards at once on this host (`--shard k/4`, own `--ports`,
//! one `--start-at`) against one `serve`, then in one process against the same server: the server
//! holds the whole fleet at once, and `report` merges the shards into the one-process counts.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod serve;

use cli::{scratch, swarm, text};
use lwm2m_swarm::report::Report;
use serve::{Serve, peak_registered, registered_now};

const CLIENTS: u64 = 4000;
const SHARDS: u32 = 4;
/// A 2 s ramp, 3 s of hold (slack for a shard that starts a little late), no Update meanwhile.
const FLEET: &str = "[client]\nlifetime = \"24h\"\nendpoint_prefix = \"e2e-\"\nwidth = 4\nseed = 7\n\
    [[population]]\nname = \"sensors\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 4000\nrate = 2000\nhold = \"3s\"\nstop_timeout = \"10s\"\n";
/// Time for the four processes to start and open their sockets before the load begins.
const START_AHEAD: Duration = Duration::from_secs(3);
/// Far more than a run takes (about 7 s).
const RUN_DEADLINE: Duration = Duration::from_secs(40);

/// A `run` in the background, its output in files; killed if the test ends first.
struct Run {
    child: Child,
    name: String,
    out: PathBuf,
    err: PathBuf,
}

impl Run {
    fn start(dir: &Path, name: &str, args: &[String]) -> Run {
        let (out, err) = (
            dir.join(format!("{name}.out")),
            dir.join(format!("{name}.err")),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("the binary runs");
        Run {
            child,
            name: name.to_string(),
            out,
            err,
        }
    }

    /// Polls until it ends, which it must, successfully, by `deadline`.
    fn finish(&mut self, deadline: Instant) {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} failed: {status}\n{}",
                    self.name,
                    self.output()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs after its deadline:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}\n{}", read(&self.out), read(&self.err))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_args(fleet: &Path, server: &str, ports: &str, json: &Path) -> Vec<String> {
    [
        "run",
        fleet.to_str().unwrap(),
        "--server",
        server,
        "--ports",
        ports,
        "--no-tui",
        "--json",
        json.to_str().unwrap(),
    ]
    .map(str::to_string)
    .to_vec()
}

fn read_report(path: &Path) -> Report {
    Report::from_json(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Per request kind: sent, ok, error, timeout, aborted.
fn counts(report: &Report) -> Vec<(String, [u64; 5])> {
    report
        .requests
        .iter()
        .map(|(kind, r)| (kind.clone(), [r.sent, r.ok, r.error, r.timeout, r.aborted]))
        .collect()
}

#[test]
fn status_lines_are_read() {
    let lines = "[ 2.0s] registered 10, registers 10\n[ 4.0s] registered 25, registers 25\n\
                 registered 3, registers 25, deregisters 22";
    assert_eq!(peak_registered(lines), 25);
    assert_eq!(registered_now(lines), Some(3));
    assert_eq!(peak_registered("no registrations yet"), 0);
    assert_eq!(registered_now("no registrations yet"), None);
}

/// `report FILES... --json OUT`, which must succeed: the merge and stderr.
fn merge(files: &[&str], out: &Path) -> (Report, String) {
    let mut args = vec!["report"];
    args.extend_from_slice(files);
    args.extend(["--json", out.to_str().unwrap()]);
    let run = swarm(&args);
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{args:?}:\n{stdout}\n{stderr}");
    (read_report(out), stderr)
}

/// The shards, at once: disjoint ports on this one host, their ramps aligned. Their `--json`
/// files, once all ended; the server held all their clients at once.
fn run_shards(dir: &Path, fleet: &Path, server: &Serve) -> Vec<String> {
    let uri = format!("coap://{}", server.addr);
    let start_at = SystemTime::now() + START_AHEAD;
    let start_s = start_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let json = |k: u32| dir.join(format!("shard-{k}.json"));
    let mut shards: Vec<Run> = (0..SHARDS)
        .map(|k| {
            let ports = format!("{}-{}", 30_000 + 100 * k, 30_099 + 100 * k);
            let mut args = run_args(fleet, &uri, &ports, &json(k));
            args.extend([
                "--shard".into(),
                format!("{k}/{SHARDS}"),
                "--start-at".into(),
                format!("{start_s:.3}"),
            ]);
            Run::start(dir, &format!("shard-{k}"), &args)
        })
        .collect();
    let deadline = Instant::now() + START_AHEAD + RUN_DEADLINE;
    for shard in &mut shards {
        shard.finish(deadline);
    }
    let status = server.status();
    assert_eq!(
        peak_registered(&status),
        CLIENTS,
        "the four shards' clients were never all registered at once:\n{status}"
    );
    for (k, shard) in (0..SHARDS).zip(&shards) {
        let output = shard.output();
        assert!(output.contains("waiting for --start-at "), "{output}");
        let test = read_report(&json(k)).test.expect("a shard's test identity");
        assert_eq!((test.shard_index, test.shard_count), (k, SHARDS));
        println!("shard {k}: late_start_ms {}", test.late_start_ms);
    }
    (0..SHARDS)
        .map(|k| json(k).to_str().unwrap().to_string())
        .collect()
}

#[test]
fn four_shards_at_once_are_the_fleet_once() {
    let started = Instant::now();
    let dir = scratch("shard-e2e");
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, FLEET).unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"));
    serve
        .args(["serve", "--bind", "127.0.0.1:0", "--status-every", "200ms"])
        // Ends by itself should the test be killed before it can.
        .args(["--duration", "120s"]);
    let server = Serve::start(serve);

    let files = run_shards(&dir, &fleet, &server);
    let shards_took = started.elapsed();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();

    // The same fleet in one process, once the server has seen the shards' clients go.
    server.wait_for("registered 0 after the shards", RUN_DEADLINE, |s| {
        registered_now(s) == Some(0)
    });
    let mark = server.status().len();
    let single_json = dir.join("single.json");
    let uri = format!("coap://{}", server.addr);
    let args = run_args(&fleet, &uri, "30500-30599", &single_json);
    Run::start(&dir, "single", &args).finish(Instant::now() + RUN_DEADLINE);
    let status = server.stop();
    assert_eq!(peak_registered(&status[mark..]), CLIENTS, "{status}");
    let single = read_report(&single_json);

    let (merged, stderr) = merge(&files, &dir.join("merged.json"));
    assert!(!stderr.contains("missing"), "{stderr}");
    assert_eq!(merged.merged_shards, [0, 1, 2, 3]);
    // One test: the shards' identity is the one-process run's (`--shard`, `--ports` and
    // `--start-at` are not part of it).
    let id = |r: &Report| r.test.as_ref().expect("a test identity").id.clone();
    assert_eq!(id(&merged), id(&single));
    // Every request of the one-process run succeeded: with timeouts or errors the two runs'
    // counts could differ by chance, not by a fault of the shards or the merge, so the
    // equality below is meaningful because the runs are all-ok.
    for (kind, [sent, ok, error, timeout, aborted]) in counts(&single) {
        assert_eq!((ok, error, timeout, aborted), (sent, 0, 0, 0), "{kind}");
    }
    assert_eq!(counts(&merged), counts(&single), "merged, then one process");
    let register = &merged.requests["register"];
    assert_eq!((register.sent, register.ok), (CLIENTS, CLIENTS));
    assert_eq!(merged.requests["deregister"].ok, CLIENTS);

    // A shard given twice (a copy under another name) is refused, naming both files.
    let copy = dir.join("copy-of-shard-1.json");
    std::fs::copy(files[1], &copy).unwrap();
    let copy = copy.to_str().unwrap();
    let out = swarm(&["report", files[0], files[1], copy, files[2], files[3]]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(files[1]) && stderr.contains(copy),
        "{stderr}"
    );
    assert!(stderr.contains("shard 1 of 4"), "{stderr}");

    // One left out: merged all the same, with a warning naming it.
    let (partial, stderr) = merge(&[files[0], files[1], files[3]], &dir.join("partial.json"));
    assert!(stderr.contains("missing shard 2 of 4"), "{stderr}");
    assert_eq!(partial.merged_shards, [0, 1, 3]);
    assert_eq!(partial.requests["register"].ok, 3 * CLIENTS / 4);

    println!(
        "shards took {shards_took:?} ({START_AHEAD:?} of it before the start), all {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(dir);
}
