//! `lwm2m-swarm serve` as a child of a test: its address, its status lines as they come, and a
//! kill when the test ends (also when it fails).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Serve {
    child: Child,
    /// Where it listens, as it says on its first line (`--bind ...:0` picks a free port).
    pub addr: String,
    stdout: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Serve {
    /// Starts `command`, a `serve` command line, and waits for the line naming its address.
    /// Its stderr goes to the test's.
    pub fn start(mut command: Command) -> Serve {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        let _ = stdout.read_line(&mut first);
        let addr = first
            .strip_prefix("LWM2M server on ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not say where it listens: {first:?} (its stderr is above)");
        };
        let lines = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Serve {
            child,
            addr,
            stdout: lines,
            reader: Some(reader),
        }
    }

    /// Its stdout after the address line, so far.
    pub fn status(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Polls its stdout until `done` holds of it; panics naming `what` after `deadline`.
    pub fn wait_for(&self, what: &str, deadline: Duration, done: impl Fn(&str) -> bool) {
        let started = Instant::now();
        while !done(&self.status()) {
            assert!(
                started.elapsed() < deadline,
                "serve: no {what} within {deadline:?}; its status lines:\n{}",
                self.status()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it; all it printed after the address line.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stdout reader");
        }
        self.status()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The highest `registered N` among status lines.
pub fn peak_registered(status: &str) -> u64 {
    status
        .split("registered ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

/// The `registered N` of the last status line; `None` before the first.
pub fn registered_now(status: &str) -> Option<u64> {
    status
        .lines()
        .rev()
        .find(|line| line.contains("registered "))
        .map(peak_registered)
}
