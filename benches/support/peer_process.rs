//! The peer a harness measures against runs as a child process (this same bench binary, started
//! with a flag), so the parent's memory and CPU figures are the simulator's alone.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The child: prints the address it serves on, then serves until its parent closes stdin.
pub fn announce(addr: SocketAddr) {
    println!("{addr}");
    std::io::stdout().flush().expect("stdout");
}

/// Blocks until the parent closes stdin (the child's cue to stop).
pub fn wait_for_parent() {
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
}

/// The parent: starts this binary with `args` (a flag, and what configures the child) and reads
/// the address it announces.
pub fn spawn(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the peer process starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the peer's address");
    let addr = line.trim().parse().expect("the peer's address");
    (child, addr)
}

/// Closes the child's stdin and waits for it to end.
pub fn stop(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}
