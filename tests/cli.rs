//! The `lwm2m-swarm` binary as a user runs it: exit codes, messages, the summary.

use std::net::UdpSocket;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn swarm(args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{args:?} took {:?}",
        started.elapsed()
    );
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_fleet(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

const SMALL: &str = "[client]\nlifetime = \"60s\"\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 10\nrate = 100\nhold = \"1s\"\nstop_timeout = \"2s\"\n";

#[test]
fn check_prints_the_plan_of_every_shipped_fleet() {
    for fleet in [
        "fleets/demo.toml",
        "fleets/sleepy-meters.toml",
        "fleets/registration-storm.toml",
        "fleets/notification-flood.toml",
    ] {
        let out = swarm(&["check", fleet]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{fleet}: {stderr}");
        assert!(stdout.contains("clients"), "{stdout}");
        assert!(stdout.contains("addresses 127.0.0.1:"), "{stdout}");
    }
    // Overrides show in the plan.
    let out = swarm(&[
        "check",
        "fleets/demo.toml",
        "--clients",
        "50",
        "--rate",
        "5",
        "--duration",
        "30s",
    ]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("clients   50 "), "{stdout}");
    assert!(stdout.contains("ramp      5 clients/s"), "{stdout}");
    assert!(stdout.contains("duration  30s"), "{stdout}");
}

#[test]
fn bad_input_exits_2_naming_file_line_and_field() {
    let broken = write_fleet("broken.toml", &SMALL.replace("rate = 100", "rate = -1"));
    let out = swarm(&["check", broken.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.toml:"), "{stderr}");
    assert!(stderr.contains("field `rate`"), "{stderr}");

    let unknown = write_fleet("unknown.toml", &format!("{SMALL}colour = \"red\"\n"));
    let out = swarm(&["run", unknown.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");

    let out = swarm(&["run", "fleets/demo.toml", "--duration", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let out = swarm(&["run", "fleets/demo.toml", "--server", "http://x"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("coap://"), "{stderr}");
    let out = swarm(&["check", "fleets/no-such-fleet.toml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no-such-fleet.toml"), "{stderr}");
}

#[test]
fn run_against_the_embedded_server_prints_progress_and_a_summary() {
    let fleet = write_fleet("small.toml", SMALL);
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--no-tui",
        "--ports",
        "22000-22099",
        "--progress-every",
        "500ms",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("embedded LWM2M server on 127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("registered 10"), "{stdout}");
    let register = stdout
        .lines()
        .find(|l| l.starts_with("register "))
        .expect("a register row");
    let numbers: Vec<&str> = register.split_whitespace().collect();
    assert_eq!(&numbers[1..3], ["10", "10"], "{register}");
    let deregister = stdout
        .lines()
        .find(|l| l.starts_with("deregister "))
        .expect("a deregister row");
    assert!(deregister.contains(" 10 "), "{deregister}");
    assert!(
        stdout.contains("embedded server: registered 0, registers 10"),
        "{stdout}"
    );
}

#[test]
fn a_server_that_never_answers_exits_3() {
    // A bound socket that never reads: datagrams to it vanish without an ICMP error.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uri = format!("coap://{}", silent.local_addr().unwrap());
    let fleet = write_fleet("silent.toml", SMALL);
    let out = swarm(&[
        "run",
        fleet.to_str().unwrap(),
        "--server",
        &uri,
        "--duration",
        "1s",
        "--ports",
        "22100-22199",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("never answered"), "{stderr}");
    // Every Register is accounted for: aborted at the end of the stop timeout, none in flight.
    let register = stdout
        .lines()
        .find(|l| l.starts_with("register "))
        .expect("a register row");
    let numbers: Vec<u64> = register
        .split_whitespace()
        .skip(1)
        .take(6)
        .map(|n| n.parse().unwrap())
        .collect();
    let [sent, ok, error, timeout, aborted, in_flight] = numbers[..] else {
        panic!("{register}");
    };
    assert_eq!(sent, 10, "{register}");
    assert_eq!((ok, error, in_flight), (0, 0, 0), "{register}");
    assert_eq!(timeout + aborted, 10, "{register}");
}

#[test]
fn serve_runs_alone_for_a_while() {
    let out = swarm(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "1s",
        "--read",
        "/3/0/0@10s",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("LWM2M server on 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("read /3/0/0 every 10s"), "{stdout}");
    assert!(stdout.contains("registers 0"), "{stdout}");
}

#[test]
fn ctrl_c_deregisters_everyone_and_exits_130() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let fleet = write_fleet("interrupted.toml", SMALL);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args([
            "run",
            fleet.to_str().unwrap(),
            "--duration",
            "1h",
            "--ports",
            "22200-22299",
            "--progress-every",
            "200ms",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("registered 10 ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(line) = lines.recv_timeout(left) {
            seen.push(line);
        } else {
            let _ = child.kill();
            panic!("never saw 10 registered clients: {seen:#?}");
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(15)) {
        seen.push(line);
    }
    let exit = child.wait().unwrap();
    let all = seen.join("\n");
    assert_eq!(exit.code(), Some(130), "{all}");
    assert!(all.contains("interrupted: de-registering"), "{all}");
    let deregister = seen
        .iter()
        .find(|l| l.starts_with("deregister "))
        .unwrap_or_else(|| panic!("no summary: {all}"));
    let numbers: Vec<&str> = deregister.split_whitespace().collect();
    assert_eq!(&numbers[1..3], ["10", "10"], "{deregister}");
}
