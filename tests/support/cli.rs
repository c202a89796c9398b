//! Running the `lwm2m-swarm` binary from a test, as a user does.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs the binary from the crate's root (so `fleets/...` resolves); a run must end within 60 s.
pub fn swarm(args: &[&str]) -> Output {
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

/// Its stdout and stderr, as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line starting with `prefix` and the lines continuing it (indented: the summary breaks
/// lines longer than 100 columns), joined by spaces; `None` without such a line.
pub fn broken_line(text: &str, prefix: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with(prefix))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with("  "))
        .map(|(_, l)| l.trim())
        .collect();
    (!lines.is_empty()).then(|| lines.join(" "))
}

/// A fresh, empty directory for this test process, named `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
