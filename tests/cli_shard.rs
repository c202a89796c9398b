//! `--shard K/N` and `--start-at` as a user runs them: the slice `check` prints, the slice
//! `credentials` exports, a port clash between shards, and the shard fields of `--json`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "support/cli.rs"]
mod cli;
use cli::{scratch, swarm, text};

const SMALL: &str = "[client]\nlifetime = \"60s\"\n\
    [[population]]\nname = \"s\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
    [load]\nclients = 10\nrate = 100\nhold = \"1s\"\nstop_timeout = \"2s\"\n";

#[test]
fn check_prints_the_slice_and_bad_shards_are_plain_errors() {
    let out = swarm(&["check", "fleets/registration-storm.toml", "--shard", "1/4"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let shard = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("shard "))
        .unwrap_or_else(|| panic!("no shard line: {stdout}"));
    assert!(shard.contains("1/4: 25000 clients"), "{shard}");
    assert!(shard.contains("every 4 from client 1"), "{shard}");
    assert!(stdout.contains("this shard "), "{stdout}");

    for (shard, says) in [
        ("4/4", "shard 4 does not exist: shards of 4 are 0 to 3"),
        ("0/0", "the shard count N must be at least 1"),
        ("one/4", "expected K/N"),
        ("1", "expected K/N"),
    ] {
        let out = swarm(&["check", "fleets/demo.toml", "--shard", shard]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{shard}: {stderr}");
        assert!(stderr.contains(says), "{shard}: {stderr}");
    }
    let out = swarm(&[
        "check",
        "fleets/demo.toml",
        "--clients",
        "3",
        "--shard",
        "3/4",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no client for shard 3"), "{stderr}");
    let out = swarm(&["run", "fleets/demo.toml", "--start-at", "half past ten"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("expected an RFC 3339 time"), "{stderr}");
}

#[test]
fn credentials_of_the_shards_are_the_fleets_once() {
    let rows = |extra: &[&str]| {
        let mut args = vec!["credentials", "fleets/dtls-psk.toml", "--clients", "20"];
        args.extend_from_slice(extra);
        let out = swarm(&args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        stdout
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let whole = rows(&[]);
    assert_eq!(whole.len(), 20);
    // Every third row, from row k: the three shards are the whole export once.
    for k in 0..3 {
        let shard = format!("{k}/3");
        let part = rows(&["--shard", &shard]);
        let expected: Vec<String> = whole.iter().skip(k).step_by(3).cloned().collect();
        assert_eq!(part, expected, "shard {shard}");
    }
}

/// Shard 0 waits for `--start-at` holding its ports: shard 1 on the same ports fails at once
/// naming them; on its own ports it runs, and both reports carry the same test id.
#[test]
fn shards_on_one_host_need_their_own_ports_and_report_one_test() {
    let dir = scratch("shards");
    let fleet = dir.join("small.toml");
    std::fs::write(&fleet, SMALL).unwrap();
    let fleet = fleet.to_str().unwrap();
    let start_at = SystemTime::now() + Duration::from_secs(4);
    let start_s = start_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let start_arg = format!("{start_s:.3}");
    let json = |k: u32| dir.join(format!("shard-{k}.json"));
    let run_args = |k: u32, ports: &'static str| {
        let path = json(k);
        vec![
            "run".to_string(),
            fleet.to_string(),
            "--no-tui".into(),
            "--shard".into(),
            format!("{k}/2"),
            "--ports".into(),
            ports.into(),
            "--start-at".into(),
            start_arg.clone(),
            "--json".into(),
            path.to_str().unwrap().to_string(),
        ]
    };
    let mut first = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args(run_args(0, "28900-28999"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdout = BufReader::new(first.stdout.take().unwrap());
    let mut seen = String::new();
    // Its sockets are open once it says it waits.
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut stderr = String::new();
            first
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("shard 0 ended before waiting: {seen}\n{stderr}");
        }
        seen.push_str(&line);
        if line.starts_with("waiting for --start-at ") {
            break;
        }
    }

    let args = run_args(1, "28900-28999");
    let clash = swarm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (_, stderr) = text(&clash);
    assert_eq!(clash.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(":28900"), "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains("its own --ports"), "{stderr}");

    let args = run_args(1, "29000-29099");
    let second = swarm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (second_out, stderr) = text(&second);
    assert!(second.status.success(), "{second_out}\n{stderr}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let status = first.wait().unwrap();
    assert!(status.success(), "{seen}");
    assert!(
        seen.contains("on --start-at") || seen.contains("after --start-at"),
        "{seen}"
    );

    let start_at_ms = (start_s * 1000.0).round() as u64;
    let mut ids = Vec::new();
    for k in 0..2 {
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json(k)).unwrap()).unwrap();
        let test = &report["test"];
        assert_eq!(test["shard_index"], k, "{test}");
        assert_eq!(test["shard_count"], 2, "{test}");
        let started = test["started_unix_ms"].as_u64().unwrap();
        // Not before --start-at (to the ms, which both sides round), not long after.
        assert!(started + 1 >= start_at_ms, "{test}");
        assert!(started < start_at_ms + 10_000, "{test}");
        let late = test["late_start_ms"].as_u64().unwrap();
        // Rounding to ms on both sides: within one.
        assert!(
            late.abs_diff(started.saturating_sub(start_at_ms)) <= 1,
            "{test}"
        );
        assert_eq!(report["clients"]["started"], 5, "{report}");
        ids.push(test["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0].len(), 64);
    assert_eq!(ids[0], ids[1]);
}
