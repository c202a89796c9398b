//! `check` (and `run`, which refuses the same) as a user meets it: refusals exit 2 in words,
//! warnings go to stderr with exit 0, the traffic at full fleet, error texts with the right
//! line, and no panic when the reader of stdout goes away.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[path = "support/cli.rs"]
mod cli;
use cli::{scratch, swarm, text};

const ONE_POPULATION: &str = "[[population]]\nname = \"s\"\nshare = 1.0\n\
    template = \"environment-sensor\"\n";

/// A fleet of one population with this `[load]` body (and a 5-minute lifetime).
fn fleet(dir: &std::path::Path, name: &str, load: &str) -> String {
    let path = dir.join(name);
    let body = format!("[client]\nlifetime = \"5m\"\n{ONE_POPULATION}[load]\n{load}\n");
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    // Enough populations that the plan outgrows the pipe's buffer: the writes after the reader
    // left fail for sure.
    let dir = scratch("closed-stdout");
    let populations: Vec<String> = (0..2000)
        .map(|i| {
            format!("[[population]]\nname = \"p{i}\"\ncount = 1\ntemplate = \"smart-meter\"\n")
        })
        .collect();
    let body = format!(
        "{}[load]\nrate = 100\nhold = \"1m\"\n",
        populations.concat()
    );
    let path = dir.join("many.toml");
    std::fs::write(&path, body).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"))
        .args(["check", path.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader (here, like `head -1`) is dropped: the pipe is closed.
    assert!(first.starts_with("fleet "), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn check_prints_the_thresholds_the_embedded_load_and_the_traffic() {
    let dir = scratch("check-traffic");
    let path = fleet(
        &dir,
        "traffic.toml",
        "clients = 1000\nrate = 50\nhold = \"10m\"\nthresholds = [\"register.p99<500ms\"]",
    );
    let out = swarm(&["check", &path, "--read", "/3/0/0@10s"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("  thresholds register.p99<500ms\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  embedded  read /3/0/0 every 10s\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Register       50/s during the ramp"),
        "{stdout}"
    );
    // 1000 clients, an Update every 207 s (5 min less MAX_TRANSMIT_WAIT, before 80 %).
    assert!(stdout.contains("Update         4.83/s"), "{stdout}");
    assert!(
        stdout.contains("Read           100/s from the server"),
        "{stdout}"
    );
}

#[test]
fn a_threshold_on_requests_the_run_never_makes_is_refused_by_check_and_run() {
    let dir = scratch("check-never");
    let path = fleet(
        &dir,
        "short.toml",
        "clients = 10\nrate = 10\nhold = \"25s\"\nthresholds = [\"update.error_rate<1%\"]",
    );
    for args in [vec!["check", &path], vec!["run", &path, "--no-tui"]] {
        let command = args[0];
        let out = swarm(&args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains(
                "threshold update.error_rate<1% cannot pass: no update request happens in this run"
            ),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("run at least 3m32s"), "{stderr}");
    }
    // The command line's thresholds too.
    let path = fleet(
        &dir,
        "plain.toml",
        "clients = 10\nrate = 10\nhold = \"25s\"",
    );
    let out = swarm(&["check", &path, "--threshold", "send.p99<1s"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("(no population has `send`)"), "{stderr}");
    // A count only warns: it is 0, which may be the point.
    let path = fleet(
        &dir,
        "count.toml",
        "clients = 10\nrate = 10\nhold = \"25s\"\nthresholds = [\"send.sent<1\"]",
    );
    let out = swarm(&["check", &path]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: threshold send.sent<1: no send request happens in this run"),
        "{stderr}"
    );
}

#[test]
fn the_embedded_load_with_an_external_server_is_refused() {
    let dir = scratch("check-load");
    let path = fleet(&dir, "f.toml", "clients = 10\nrate = 10\nhold = \"5s\"");
    for command in ["check", "run"] {
        let out = swarm(&[
            command,
            &path,
            "--server",
            "coap://127.0.0.1:9",
            "--read",
            "/3/0/0@1m",
            "--observe",
            "/3/0/13",
        ]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains(
                "--read and --observe apply to the embedded server only, and this run \
                 targets coap://127.0.0.1:9, which decides"
            ),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn an_unresolvable_host_warns_in_check_and_is_refused_by_run() {
    let dir = scratch("check-host");
    let path = fleet(&dir, "f.toml", "clients = 10\nrate = 10\nhold = \"5s\"");
    let server = "coap://no-such-host.invalid:5683";
    let out = swarm(&["check", &path, "--server", server]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Register "), "{stdout}");
    assert!(stderr.contains("warning: server coap://no-such-host.invalid:5683: cannot resolve"));
    assert!(
        stderr.contains("`run` on this host would refuse it"),
        "{stderr}"
    );
    let out = swarm(&["run", &path, "--server", server, "--no-tui"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
}

#[test]
fn a_duration_shorter_than_the_ramp_warns_how_many_clients_start() {
    let dir = scratch("check-duration");
    let path = fleet(&dir, "f.toml", "clients = 100\nrate = 10\nhold = \"5s\"");
    let out = swarm(&["check", &path, "--duration", "4s"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: --duration 4s stops before the ramp ends (10s): about 40 of the 100 \
             clients start"
        ),
        "{stderr}"
    );
}

#[test]
fn error_texts_point_at_the_line_in_plain_words() {
    let dir = scratch("check-errors");
    let syntax = dir.join("syntax.toml");
    std::fs::write(&syntax, "[client]\nlifetime = \"5m\n").unwrap();
    let out = swarm(&["check", syntax.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("syntax.toml:2:15: not valid TOML: invalid basic string"));
    assert!(
        stderr.contains(" 2 | lifetime = \"5m\n   |               ^"),
        "{stderr}"
    );

    let share = fleet(&dir, "share.toml", "clients = 10\nrate = 10\nhold = \"5s\"");
    let text_60 = std::fs::read_to_string(&share)
        .unwrap()
        .replace("share = 1.0", "share = 60");
    std::fs::write(&share, text_60).unwrap();
    let out = swarm(&["check", &share]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("share.toml:5: field `share`: 60 is not a share"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean 0.6 (60%)?"), "{stderr}");

    let kind = fleet(
        &dir,
        "kind.toml",
        "clients = 10\nrate = 10\nhold = \"5s\"\nthresholds = [\"regster.p99<1s\"]",
    );
    let out = swarm(&["check", &kind]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kind.toml:11: field `thresholds`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean \"register\"?"), "{stderr}");

    for (flag, value, says) in [
        ("--rate", "-1", "a rate must be more than 0 clients/s"),
        ("--clients", "0", "expected a whole number of at least 1"),
    ] {
        let out = swarm(&["check", "fleets/demo.toml", flag, value]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("'-- -1'"), "{stderr}");
        assert!(!stderr.contains("18446744073709551615"), "{stderr}");
    }
}
